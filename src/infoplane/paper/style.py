"""How every figure looks and is saved: one resolution, one set of palettes and markers.

Palettes are colour-blind safe: viridis for epochs, cividis for depth, seaborn's
`colorblind` for modes and estimators, mako (a sequential, perceptually uniform map) for the
compression heat map; the permutation null is grey (NULL_COLOR) or a light band of the line's
colour. Line styles tell bandwidth rules apart (BANDWIDTH_STYLES), so no meaning rests on hue alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

matplotlib.rcParams["hatch.linewidth"] = 0.4  # null bands are hatched: keep the hatch light

from ..io import atomic_path  # noqa: E402

DPI = 110
EPOCH_CMAP = "viridis"
DEPTH_PALETTE = "cividis"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]
COMPRESSION_CMAP = "mako_r"
NULL_COLOR = "0.45"
#: Opaque fill of the information plane's null band (overlapping bands do not darken).
NULL_FILL = "0.87"
#: Alpha of a band of ± std over seeds, and of a null band.
SEED_ALPHA = 0.2
NULL_ALPHA = 0.12
#: Line style per bandwidth rule in the sensitivity figures (others: dotted).
BANDWIDTH_STYLES = {"fixed": "-", "median_scaled": "-.", "median": "--"}
#: A row of positive values spanning more than this factor gets a log axis.
LOG_SPAN = 30.0


def categorical(n: int) -> list:
    """n distinct colours for modes or estimators."""
    return sns.color_palette("colorblind", max(n, 1))


def depth_colors(n: int) -> list:
    """n colours from shallow (dark) to deep (light)."""
    return sns.color_palette(DEPTH_PALETTE, max(n, 1))


def compression_cmap():
    return sns.color_palette(COMPRESSION_CMAP, as_cmap=True)


def wants_log(values) -> bool:
    """Whether positive values span more than LOG_SPAN (decades: draw them on a log axis)."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return bool(arr.size) and bool((arr > 0).all()) and float(arr.max() / arr.min()) > LOG_SPAN


def wrap(text: str, width: int = 100) -> str:
    return "\n".join(textwrap.wrap(text, width))


def save(fig, path: Path) -> Path:
    """Write the figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)
