"""Information-plane and accuracy plots for one (dataset, arch).

    python -m infoplane.plots --hsic results/tables/hsic.parquet --metrics results/tables/metrics.parquet \
        --dataset mnist5k --arch lenet5 --infoplane out.png --accuracy out2.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import io  # noqa: E402

EPOCH_CMAP = "viridis"


def _settings_label(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    label = f"{first['estimator']}: k_x={first['kernel_x']}, k_y={first['kernel_y']}, k_z={first['kernel_z']}"
    label += f", σ={first['sigma']:g} ({first['bandwidth']}), ε={first['epsilon']:g}, m={first['batch_size']}"
    return label


def infoplane_figure(hsic: pd.DataFrame, dataset: str, arch: str) -> plt.Figure:
    """Rows = estimators, columns = modes; one trajectory per layer, points coloured by epoch.

    Values are means over seeds; the start (epoch 0) is a square, the end a star.
    """
    data = hsic[(hsic["dataset"] == dataset) & (hsic["arch"] == arch)]
    if data.empty:
        raise ValueError(f"no nHSIC rows for dataset {dataset!r}, arch {arch!r}")
    estimators = list(dict.fromkeys(data["estimator"]))
    modes = list(dict.fromkeys(data["mode"]))
    mean = data.groupby(["estimator", "mode", "layer", "layer_name", "epoch"], as_index=False)[
        ["nhsic_xz", "nhsic_yz"]
    ].mean()
    n_layers = data["layer"].nunique()
    layer_colors = sns.color_palette("colorblind", n_layers)
    norm = plt.Normalize(data["epoch"].min(), data["epoch"].max())
    fig, axes = plt.subplots(
        len(estimators), len(modes), figsize=(5.2 * len(modes), 4.4 * len(estimators)), squeeze=False, sharex="row", sharey="row"
    )
    for r, estimator in enumerate(estimators):
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            sub = mean[(mean["estimator"] == estimator) & (mean["mode"] == mode)]
            for (layer, name), traj in sub.groupby(["layer", "layer_name"]):
                traj = traj.sort_values("epoch")
                color = layer_colors[layer % len(layer_colors)]
                ax.plot(traj["nhsic_xz"], traj["nhsic_yz"], "-", color=color, lw=1.2, alpha=0.8, label=f"{layer}: {name}")
                ax.scatter(traj["nhsic_xz"], traj["nhsic_yz"], c=traj["epoch"], cmap=EPOCH_CMAP, norm=norm, s=18, zorder=3)
                ax.scatter(traj["nhsic_xz"].iloc[:1], traj["nhsic_yz"].iloc[:1], marker="s", s=50, facecolor="none", edgecolor=color, zorder=4)
                ax.scatter(traj["nhsic_xz"].iloc[-1:], traj["nhsic_yz"].iloc[-1:], marker="*", s=120, color=color, edgecolor="black", zorder=4)
            seeds = data[(data["mode"] == mode)]["seed"].nunique()
            ax.set_title(f"{mode} (mean of {seeds} seed{'s' if seeds != 1 else ''})")
            ax.set_xlabel("nHSIC(X; Z)")
            ax.set_ylabel("nHSIC(Y; Z)")
            ax.grid(alpha=0.3)
        axes[r][-1].legend(title="layer", fontsize=7, title_fontsize=8, loc="best")
        axes[r][0].annotate(
            _settings_label(data[data["estimator"] == estimator]),
            xy=(0, 1.1), xycoords="axes fraction", fontsize=8, ha="left",
        )
    cbar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=EPOCH_CMAP), ax=axes, shrink=0.8)
    cbar.set_label("epoch")
    fig.suptitle(f"Information plane — {arch} on {dataset} (□ start, ★ end)", y=1.02)
    return fig


def accuracy_figure(metrics: pd.DataFrame, dataset: str, arch: str) -> plt.Figure:
    """Test accuracy of the whole network vs epoch per mode; band = ±1 std over seeds."""
    data = metrics[
        (metrics["dataset"] == dataset) & (metrics["arch"] == arch)
        & (metrics["layer_name"] == "classifier") & (metrics["split"] == "test")
    ]
    if data.empty:
        raise ValueError(f"no metrics rows for dataset {dataset!r}, arch {arch!r}")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=data.astype({"mode": str}), x="epoch", y="accuracy", hue="mode", errorbar="sd", palette="colorblind", ax=ax)
    ax.set_title(f"Test accuracy — {arch} on {dataset} (band: ±1 sd over {data['seed'].nunique()} seeds)")
    ax.set_ylabel("test accuracy (final classifier)")
    ax.grid(alpha=0.3)
    return fig


def save(fig: plt.Figure, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infoplane.plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hsic", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--infoplane", type=Path, required=True)
    parser.add_argument("--accuracy", type=Path, required=True)
    args = parser.parse_args(argv)
    save(infoplane_figure(pd.read_parquet(args.hsic), args.dataset, args.arch), args.infoplane)
    save(accuracy_figure(pd.read_parquet(args.metrics), args.dataset, args.arch), args.accuracy)


if __name__ == "__main__":
    main()
