"""How every figure looks and is saved: one resolution, one set of palettes and markers.

Palettes are colour-blind safe: viridis for epochs, cividis for depth, seaborn's
`colorblind` for modes and estimators.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ..io import atomic_path  # noqa: E402

DPI = 110
EPOCH_CMAP = "viridis"
DEPTH_PALETTE = "cividis"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]


def categorical(n: int) -> list:
    """n distinct colours for modes or estimators."""
    return sns.color_palette("colorblind", max(n, 1))


def depth_colors(n: int) -> list:
    """n colours from shallow (dark) to deep (light)."""
    return sns.color_palette(DEPTH_PALETTE, max(n, 1))


def wrap(text: str, width: int = 100) -> str:
    return "\n".join(textwrap.wrap(text, width))


def save(fig, path: Path) -> Path:
    """Write the figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)
