"""The errors a user can act on. The CLI prints their message (no traceback) and exits 1;
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class InfoplaneError(Exception):
    """A problem the message explains, with what to do about it."""


class ConfigError(InfoplaneError, ValueError):
    """A config value that cannot run; the message names key, value and what is allowed."""


class CorruptFileError(InfoplaneError):
    """A file the pipeline wrote cannot be read back (truncated, corrupt, or of another format)."""


class DatasetNotFoundError(InfoplaneError, FileNotFoundError):
    """A data set's files are missing; the message says where they were looked for and how to get them."""


class DivergedError(InfoplaneError, RuntimeError):
    """Training produced a non-finite loss or non-finite activations."""


class MismatchedInputsError(InfoplaneError, ValueError):
    """Inputs that do not belong together (a snapshot of another eval set, snapshots of two runs)."""
