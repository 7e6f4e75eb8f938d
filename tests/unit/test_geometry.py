"""Geometry beside information: the mechanism (within-class collapse compresses a kernel
dependence on X and lowers NC1), the alignment rule, Table 7 and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from paper_synth import synth

from infoplane import probe
from infoplane.paper import Inputs, geometry
from infoplane.paper.render import to_markdown


def _gram(a: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian kernel with the fixed bandwidth σ²·d (the paper's protocol), float64."""
    d2 = ((a[:, None] - a[None]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma**2 * a.shape[1]))


def _nocco(k: np.ndarray, l: np.ndarray, eps: float = 1e-5) -> float:
    """nHSIC = tr(K̃(K̃ + mεI)⁻¹ L̃(L̃ + mεI)⁻¹), K̃ the centred Gram matrix."""
    m = len(k)
    h = np.eye(m) - 1.0 / m

    def ridge(g):
        centred = h @ g @ h
        return centred @ np.linalg.inv(centred + eps * m * np.eye(m))

    return float(np.trace(ridge(k) @ ridge(l)))


def test_within_class_collapse_compresses_the_dependence_on_x_and_lowers_nc1():
    """The mechanism behind the docs' statement: a layer whose samples draw towards their class
    means (within-class spread s shrinking, class means fixed) loses dependence on X (nHSIC falls:
    the within-class detail of X is gone) while its dependence on Y stays, and NC1 falls as s²;
    the k-NN accuracy does not fall. Compression and clustering are then one movement."""
    rng = np.random.default_rng(0)
    n, classes = 128, 4
    y = np.arange(n) % classes
    x = 2 * rng.standard_normal((classes, 20))[y] + rng.standard_normal((n, 20))
    detail = x - np.stack([x[y == c].mean(0) for c in range(classes)])[y]  # X's within-class part
    mix, means = rng.standard_normal((20, 16)), 3 * rng.standard_normal((classes, 16))
    k_x, k_y = _gram(x), (y[:, None] == y[None]).astype(float)
    split = probe.probe_split(n, 0.5, 0)
    on_x, on_y, nc1, knn = [], [], [], []
    for spread in (1.0, 0.5, 0.25, 0.1):
        z = means[y] + spread * detail @ mix
        k_z = _gram(z)
        on_x.append(_nocco(k_x, k_z))
        on_y.append(_nocco(k_y, k_z))
        zt, yt = torch.from_numpy(z), torch.from_numpy(y)
        nc1.append(probe.nc1(zt, yt))
        knn.append(probe.knn_accuracy(zt, yt, split, 5))
    assert all(a > b for a, b in zip(on_x, on_x[1:]))  # compression of the dependence on X
    assert on_x[-1] < 0.6 * on_x[0]
    assert max(on_y) - min(on_y) < 0.05 * max(on_y)  # the label information stays
    assert nc1 == pytest.approx([nc1[0] * s**2 for s in (1.0, 0.5, 0.25, 0.1)], rel=1e-9)
    assert all(b >= a for a, b in zip(knn, knn[1:]))


def _probes_with_geometry(probes: pd.DataFrame) -> pd.DataFrame:
    """NC1 that falls with epoch for e2e (tightens), rises for layer-wise (loosens); layer 3 of
    e2e falls in some seeds and rises in others (mixed). k-NN accuracy the mirror image."""
    e = probes["epoch"].to_numpy(dtype=float)
    e2e = (probes["mode"] == "e2e").to_numpy()
    nc1 = np.where(e2e, 2.0 / (1 + e), 0.5 + 0.1 * e)
    mixed = e2e & (probes["layer"] == 3).to_numpy()
    nc1 = np.where(mixed, np.where(probes["seed"] % 2 == 0, 2.0 / (1 + e), 0.5 + 0.1 * e), nc1)
    return probes.assign(nc1=nc1 * (1 + 0.01 * probes["layer"]), knn_k=10, knn_accuracy=1 - nc1 / 4)


@pytest.fixture(scope="module")
def tables():
    metrics, dependence, probes = synth(seeds=(0, 1, 2, 3), epochs=tuple(range(0, 11, 2)))
    return Inputs.from_frames(metrics, dependence, _probes_with_geometry(probes))


def test_alignment_puts_each_compression_phase_beside_its_clustering_trend(tables):
    tidy = geometry.alignment(tables.dependence, tables.probes).set_index(["mode", "layer"])
    e2e = tidy.loc["e2e"]
    assert (e2e["verdict"] == "falls").all()  # the synthetic e2e profile compresses every layer
    assert (e2e["peak_epoch"] > 0).all() and (e2e["last_epoch"] == 10).all()
    assert e2e.loc[[0, 1, 2, 4], "clustering"].eq("tightens").all() and e2e.loc[3, "clustering"] == "mixed"
    # the means are read at the epochs the rule names
    peak = int(e2e.loc[0, "peak_epoch"])
    assert e2e.loc[0, "nc1_peak"] == pytest.approx(2.0 / (1 + peak))
    assert e2e.loc[0, "nc1_last"] == pytest.approx(2.0 / 11) and e2e.loc[0, "nc1_first"] == pytest.approx(2.0)
    assert e2e.loc[0, "knn_last"] == pytest.approx(1 - 0.5 / 11)
    layerwise = tidy.loc["layerwise-ce"]
    phases = layerwise[layerwise["peak_epoch"] < layerwise["last_epoch"]]
    assert len(phases) and (phases["clustering"] == "loosens").all()
    assert (layerwise.loc[layerwise["peak_epoch"] == 10, "clustering"] == "no phase").all()


def test_clustering_trend_is_unanimous_over_seeds():
    peak = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    assert geometry.clustering_trend(peak, peak * 0.5) == "tightens"
    assert geometry.clustering_trend(peak, peak * 2) == "loosens"
    assert geometry.clustering_trend(peak, pd.Series([0.5, 2.5, 1.0], index=[0, 1, 2])) == "mixed"
    assert geometry.clustering_trend(peak, pd.Series([np.nan] * 3, index=[0, 1, 2])) == "no value"


def test_table7_and_the_figure(tables, tmp_path):
    tidy, display = geometry.table_geometry(tables, "header")
    assert set(tidy["clustering"]) >= {"tightens", "mixed"}
    text = to_markdown(display)
    assert "**tightens**" in text and "mixed" in text and "NC1 first / peak / last" in text
    written = geometry.geometry_figures(tables, tmp_path)
    assert [p.name for p in written] == ["toy_net.png"] and written[0].stat().st_size > 10_000
    # probes without geometry (an older probe table): no figure, an empty table, no error
    bare = Inputs.from_frames(tables.metrics, tables.dependence, tables.probes.drop(columns=["nc1", "knn_k",
                                                                                          "knn_accuracy"]))
    assert geometry.geometry_figures(bare, tmp_path / "bare") == []
    assert len(geometry.table_geometry(bare, "h")[0]) == 0
