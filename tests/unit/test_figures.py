"""The evidence in the figures: null bands, excess, diagnostics, sensitivity grids, the
cross-estimator views, and the helpers behind them, on synthetic tables with known values
and on a tiny real measurement."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from paper_synth import synth
from PIL import Image

from infoplane import contracts
from infoplane.paper import common as C
from infoplane.paper import figures as F
from infoplane.paper import scale_figures as SF
from infoplane.paper.common import Inputs
from infoplane.paper.tables import TABLES

LAYERS = ["conv1", "fc1", "classifier"]
NOCCO = {"estimator": "nocco", "kernel_x": "gaussian", "kernel_y": "onehot", "kernel_z": "gaussian",
         "sigma": 5.0, "bandwidth": "fixed", "epsilon": 1e-5, "unit": "", "batch_size": 128}  # fmt: skip
N_BATCHES = 4
#: The kernel setting keys, unused (an MI estimator's rows).
UNUSED = {"kernel_x": None, "kernel_y": None, "kernel_z": None, "sigma": math.nan, "bandwidth": None,
          "epsilon": math.nan}  # fmt: skip


def value_of(setting: dict, mode: str, seed: int, epoch: int, layer: int) -> tuple[float, float]:
    """(value on X, value on Y) of the synthetic table: known functions of everything."""
    sigma, eps = setting.get("sigma", math.nan), setting.get("epsilon", math.nan)
    sigma, eps = (3.0 if math.isnan(sigma) else sigma), (1e-4 if math.isnan(eps) else eps)
    base = 10 * (layer + 1) + math.log10(sigma) * 4 - math.log10(eps) + (2 if mode == "e2e" else 0)
    return base + 0.5 * epoch + 0.01 * seed, 1 + 0.1 * layer + 0.02 * epoch


def table(settings=(NOCCO,), modes=("e2e", "layerwise-ce"), seeds=(0, 1), epochs=(0, 1, 2), nulls=True,
          dataset="toy", arch="net") -> pd.DataFrame:  # fmt: skip
    """A dependence table whose every number is known: null mean 0.9 · value, null std 0.4 (X)
    and 0.2 (Y), diagnostics growing with the epoch."""
    rows = []
    for setting in settings:
        for mode in modes:
            for seed in seeds:
                for epoch in epochs:
                    for layer, name in enumerate(LAYERS):
                        x, y = value_of(setting, mode, seed, epoch, layer)
                        null_x = 0.9 * x if nulls else math.nan
                        null_y = 0.9 * y if nulls else math.nan
                        rows.append({
                            "dataset": dataset, "arch": arch, "mode": mode, "seed": seed, "epoch": epoch,
                            "layer": layer, "layer_name": name, **UNUSED, **setting, "n_samples": 128 * N_BATCHES,
                            "n_batches": N_BATCHES, "permutations": 32 if nulls else 0,
                            "value_xz": x, "value_xz_std": 0.3, "null_xz_mean": null_x,
                            "null_xz_std": 0.4 if nulls else math.nan, "excess_xz": x - null_x, "p_xz": 1 / 33,
                            "null_xz_batch_mean_std": 0.4 / math.sqrt(N_BATCHES) if nulls else math.nan,
                            "value_yz": y, "value_yz_std": 0.1, "null_yz_mean": null_y,
                            "null_yz_std": 0.2 if nulls else math.nan, "excess_yz": y - null_y, "p_yz": 1 / 33,
                            "null_yz_batch_mean_std": 0.2 / math.sqrt(N_BATCHES) if nulls else math.nan,
                            "ceiling_zz": 100.0, "ceiling_xx": 120.0, "ceiling_yy": 9.0,
                            "mean_sq_activation": 0.01 * 100.0**epoch * (layer + 1), "median_distance": 1.0 + epoch,
                            "bandwidth_ratio": (0.01 * (1 + epoch)) if setting.get("bandwidth") == "fixed" else 0.5,
                        })  # fmt: skip
    return pd.DataFrame(rows)


def inputs_of(dependence: pd.DataFrame) -> Inputs:
    metrics, _, probes = synth(modes=tuple(sorted(set(dependence["mode"]))), seeds=(0,), epochs=(0, 1, 2),
                               dataset="toy", arch="net")  # fmt: skip
    return Inputs.from_frames(metrics, dependence, probes)


def with_settings(frame: pd.DataFrame) -> pd.DataFrame:
    return C.with_settings(contracts.DEPENDENCE.conform(frame, "test"))


pytestmark = pytest.mark.usefixtures("low_resolution")  # figures at 40 dpi (tests/conftest.py)


@pytest.fixture
def captured(monkeypatch):
    """The figures the figure functions save, kept open for inspection (then saved as usual)."""
    figures = []
    real_save = F.save

    def keep(fig, path):
        figures.append(fig)  # plt.close (in save) leaves the Figure and its artists readable
        return real_save(fig, path)

    for module in (F, SF):  # each drawing module holds its own name for style.save
        monkeypatch.setattr(module, "save", keep)
    return figures


def null_rectangles(ax) -> np.ndarray:
    """(x_lo, y_lo, x_hi, y_hi) of the null-band rectangles of an information-plane panel."""
    (rects,) = [c for c in ax.collections if c.__class__.__name__ == "PatchCollection"]
    boxes = [(p.vertices[:, 0].min(), p.vertices[:, 1].min(), p.vertices[:, 0].max(), p.vertices[:, 1].max())
             for p in rects.get_paths()]  # fmt: skip
    return np.array(boxes)


def assert_png(path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def grid_settings(sigmas=(0.5, 5.0, 20.0), epsilons=(1e-5, 1e-3), median=True) -> list[dict]:
    settings = [{**NOCCO, "sigma": s, "epsilon": e} for s in sigmas for e in epsilons]
    if median:
        settings += [{**NOCCO, "sigma": math.nan, "bandwidth": "median", "epsilon": e} for e in epsilons]
    return settings


# ---------------------------------------------------------------- labels, bands, settings


def test_quantity_labels_name_estimator_and_unit():
    assert C.quantity_label("nocco", "", "x") == "nHSIC(X; Z_l)"
    assert C.quantity_label("nocco_normalized", None, "y") == "normalized nHSIC(Y; Z_l)"
    assert C.quantity_label("cka", "", "x") == "CKA(X; Z_l)"
    assert C.quantity_label("cka_unbiased", "", "y") == "unbiased CKA(Y; Z_l)"
    assert C.quantity_label("renyi", "bits", "x") == "I_α(X; T_l) [bits]"
    assert C.quantity_label("kde", "nats", "x") == "I(X; T_l) [nats]"
    assert C.quantity_label("binning", "bits", "y", excess=True) == "excess I(Y; T_l) over the null [bits]"
    assert C.quantity_label("mine", pd.NA, "x") == "mine(X; Z_l)"
    with pytest.raises(ValueError, match="role must be 'x'"):
        C.quantity_label("nocco", "", "z")


def test_a_quantity_without_a_null_is_labelled_raw():
    frame = with_settings(table(settings=[{"estimator": "kde", "noise_variance": 0.1, "relative": False,
                                           "unit": "nats", "batch_size": 128}]))  # fmt: skip
    frame["null_xz_mean"] = math.nan
    assert C.block_quantity_label(frame, "x", excess=True) == "I(X; T_l) [nats] (no null: raw value)"
    assert C.block_quantity_label(frame, "y", excess=True) == "excess I(Y; T_l) over the null [nats]"
    assert (C.plotted(frame, "x", excess=True) == frame["value_xz"]).all()
    assert (C.plotted(frame, "y", excess=True) == frame["excess_yz"]).all()


def test_null_band_is_two_sd_of_the_batch_mean_null():
    frame = pd.DataFrame({"null_xz_mean": [10.0, math.nan], "null_xz_std": [2.0, math.nan],
                          "null_xz_batch_mean_std": [0.25, math.nan], "n_batches": [4, 4]})
    band = C.null_band(frame, "x")
    assert tuple(band.loc[0]) == pytest.approx((9.5, 10.5))  # not the pooled null_xz_std
    excess = C.null_band(frame, "x", excess=True)
    assert (excess.loc[0, "lo"], excess.loc[0, "hi"]) == pytest.approx((-0.5, 0.5))
    assert band.loc[1].isna().all() and excess.loc[1].isna().all()
    assert C.null_band_text(frame).startswith("null band: null mean ± 2 SD of the batch-mean null")


def test_primary_setting_is_the_paper_default_or_the_closest():
    frame = with_settings(table(settings=grid_settings(), seeds=(0,), epochs=(0,)))
    primary = C.primary_settings(frame)
    row = frame[frame["setting_slug"] == primary["nocco"]].iloc[0]
    assert (row["sigma"], row["epsilon"], row["bandwidth"]) == (5.0, 1e-5, "fixed")
    # without sigma = 5: the settings matching every other default key (eps 1e-5, fixed), first by label
    other = with_settings(table(settings=[{**NOCCO, "sigma": 2.0, "epsilon": 1e-3}, {**NOCCO, "sigma": 3.0}],
                                seeds=(0,), epochs=(0,)))  # fmt: skip
    row = other[other["setting_slug"] == C.primary_settings(other)["nocco"]].iloc[0]
    assert (row["sigma"], row["epsilon"]) == (3.0, 1e-5)


def test_sensitivity_sweep_finds_sigma_and_epsilon_grids():
    settings = grid_settings() + [{**NOCCO, "kernel_x": "linear"}]  # another kernel: not part of the grid
    frame = with_settings(table(settings=settings, seeds=(0,), epochs=(0,)))
    (sweep,) = C.sensitivity_sweeps(frame)
    assert sweep.estimator == "nocco"
    assert len(sweep.members) == 8  # 3 sigmas x 2 eps + median x 2 eps, not the linear-kernel setting
    panels = sweep.panels()
    assert [(axis, held) for axis, held, _ in panels] == [("sigma", 1e-5), ("sigma", 1e-3), ("epsilon", 5.0)]
    along_sigma = panels[0][2]
    assert sorted(along_sigma["sigma"].dropna()) == [0.5, 5.0, 20.0] and (along_sigma["epsilon"] == 1e-5).all()
    assert set(along_sigma["bandwidth"]) == {"fixed", "median"}  # median: a level
    along_eps = panels[2][2]
    assert sorted(along_eps["epsilon"]) == [1e-5, 1e-5, 1e-3, 1e-3]  # fixed sigma = 5 and median
    assert set(along_eps["bandwidth"]) == {"fixed", "median"}
    assert sweep.shown() == set(sweep.members["setting_slug"])
    cka = with_settings(table(settings=[{**NOCCO, "estimator": "cka", "epsilon": math.nan, "sigma": s}
                                        for s in (1.0, 5.0)], seeds=(0,), epochs=(0,)))  # fmt: skip
    (sweep,) = C.sensitivity_sweeps(cka)
    assert [(axis, math.isnan(held)) for axis, held, _ in sweep.panels()] == [("sigma", True)]
    assert C.sensitivity_sweeps(with_settings(table(seeds=(0,), epochs=(0,)))) == []  # one setting: no grid


# ---------------------------------------------------------------- compression summary


def trajectory_table(values: dict[int, list[float]], value_std: float = 0.1, nulls: bool = True,
                     batches=None) -> pd.DataFrame:  # fmt: skip
    """Layer 0 of one e2e run per seed with the given excess_xz per epoch (seed -> values);
    batches(epoch) -> the per-batch deviations of the excess from its batch mean (N_BATCHES)."""
    frame = table(modes=("e2e",), seeds=tuple(values), epochs=tuple(range(len(next(iter(values.values()))))))
    frame = frame[frame["layer"] == 0].copy()
    frame["excess_xz_batches"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for seed, series in values.items():
        for epoch, v in enumerate(series):
            at = (frame["seed"] == seed) & (frame["epoch"] == epoch)
            frame.loc[at, "value_xz"] = v + 50.0
            frame.loc[at, "null_xz_mean"] = 50.0 if nulls else math.nan
            frame.loc[at, "excess_xz"] = v if nulls else math.nan
            if batches is not None:
                deviation = np.asarray(batches(epoch), float)
                frame.loc[at, "excess_xz_std"] = deviation.std()
                frame.loc[at, "excess_xz_batches"] = pd.Series([list(v + deviation)], index=frame.index[at])
    frame["value_xz_std"] = value_std
    return with_settings(frame)


def test_compression_summary_known_answers():
    falls = C.compression_summary(trajectory_table({0: [1, 10, 8.0], 1: [1, 10.2, 8.1], 2: [1, 9.8, 7.9]}))
    row = falls.iloc[0]
    assert row["quantity"] == "excess" and row["peak_epoch"] == 1 and row["last_epoch"] == 2
    assert row["peak"] == pytest.approx(10.0) and row["final"] == pytest.approx(8.0)
    assert row["relative_fall"] == pytest.approx(0.2) and row["verdict"] == "falls"
    assert row["fall_se"] == pytest.approx(np.std([2.0, 2.1, 1.9], ddof=1) / math.sqrt(3))
    rising = C.compression_summary(trajectory_table({0: [1, 5, 9.0], 1: [1, 5, 9.5]})).iloc[0]
    assert rising["verdict"] == "no fall" and rising["fall"] == 0 and rising["peak_epoch"] == 2
    noisy = C.compression_summary(trajectory_table({0: [1, 10, 2.0], 1: [1, 10, 12.0]})).iloc[0]
    assert noisy["relative_fall"] == pytest.approx(0.3) and noisy["verdict"] == "unclear"  # se = 5 > fall / 2
    small = C.compression_summary(trajectory_table({0: [1, 10, 9.7], 1: [1, 10, 9.7]})).iloc[0]
    assert small["verdict"] == "no fall"  # 3 % < 5 %, although beyond the (zero) noise
    none = C.compression_summary(trajectory_table({0: [-1, -0.5, -2.0], 1: [-1, -0.4, -2.0]})).iloc[0]
    assert none["verdict"] == "no excess"
    few = C.compression_summary(trajectory_table({0: [1, 0.5], 1: [1, 0.4]})).iloc[0]
    assert few["verdict"] == "too few epochs"


#: Per-batch patterns (mean 0) that differ between epochs: batch noise that pairing does not cancel.
PATTERNS = {0: [1.0, -1.0, 1.0, -1.0], 1: [1.0, 1.0, -1.0, -1.0], 2: [-1.0, 1.0, 1.0, -1.0]}


def test_compression_summary_with_one_seed_gates_on_the_excess_batches_paired():
    # the null varies strongly between batches (the raw value's spread 5.0) but the excess barely
    # (0.05 x the pattern): the fall of 1 from 10 is far beyond the excess's own batch noise
    steady = trajectory_table({0: [1, 10, 9.0]}, value_std=5.0, batches=lambda e: 0.05 * np.array(PATTERNS[e]))
    row = C.compression_summary(steady).iloc[0]
    fall_b = 0.05 * (np.array(PATTERNS[1]) - np.array(PATTERNS[2]))  # peak epoch 1 minus last epoch 2, per batch
    assert row["fall_se"] == pytest.approx(np.std(fall_b, ddof=1) / math.sqrt(N_BATCHES))
    assert row["verdict"] == "falls"
    # the other way round: a steady raw value (0.01) whose excess swings between batches (±3, a different
    # pattern at each epoch): the fall of 1 is within the excess's batch noise
    swinging = trajectory_table({0: [1, 10, 9.0]}, value_std=0.01, batches=lambda e: 3.0 * np.array(PATTERNS[e]))
    assert C.compression_summary(swinging).iloc[0]["verdict"] == "unclear"
    # batch effects shared by every epoch cancel in the fall (paired), though each epoch's spread is large
    shared = trajectory_table({0: [1, 10, 9.0]}, batches=lambda e: 3.0 * np.array(PATTERNS[0]))
    assert C.compression_summary(shared).iloc[0]["fall_se"] == pytest.approx(0.0, abs=1e-12)
    unpaired = shared.assign(excess_xz_batches=None)  # a table without the per-batch excess: from its std
    row = C.compression_summary(unpaired).iloc[0]
    assert row["fall_se"] == pytest.approx(math.hypot(3.0, 3.0) / math.sqrt(N_BATCHES - 1))
    assert row["verdict"] == "unclear"


def test_compression_summary_with_one_seed_uses_the_value_spread_without_null():
    raw = C.compression_summary(trajectory_table({0: [1, 10, 9.0]}, nulls=False)).iloc[0]
    assert raw["quantity"] == "value" and raw["peak"] == pytest.approx(60.0) and raw["final"] == pytest.approx(59.0)
    assert raw["fall_se"] == pytest.approx(math.hypot(0.1, 0.1) / math.sqrt(N_BATCHES - 1))  # the value's spread


# ---------------------------------------------------------------- figures and their data


def test_infoplane_draws_the_null_band_of_every_point(tmp_path, captured):
    block = with_settings(table())
    path = F.infoplane(block, "Information plane, toy / net", tmp_path / "plane.png")
    assert_png(path)
    ax = captured[0].axes[0]  # e2e
    got = np.array(sorted(map(tuple, null_rectangles(ax))))
    e2e = block[block["mode"] == "e2e"]
    mean = e2e.groupby(["layer", "epoch"])[["null_xz_mean", "null_yz_mean"]].mean().to_numpy()
    half_x, half_y = 2 * 0.4 / math.sqrt(N_BATCHES), 2 * 0.2 / math.sqrt(N_BATCHES)
    expected = np.column_stack([mean[:, 0] - half_x, mean[:, 1] - half_y, mean[:, 0] + half_x, mean[:, 1] + half_y])
    assert got.shape == (9, 4)
    np.testing.assert_allclose(got, np.array(sorted(map(tuple, expected))), rtol=1e-12)
    assert ax.get_xlabel() == "nHSIC(X; Z_l)" and captured[0].axes[0].get_ylabel() == "nHSIC(Y; Z_l)"
    assert "null mean ± 2 SD of the batch-mean null" in captured[0]._suptitle.get_text().replace("\n", " ")


def test_infoplane_excess_centres_the_band_at_zero(tmp_path, captured):
    block = with_settings(table())
    F.infoplane(block, "Information plane (excess)", tmp_path / "excess.png", excess=True)
    ax = captured[0].axes[0]
    rects = null_rectangles(ax)
    assert len(rects) == 9
    for rect in rects:
        assert tuple(rect) == pytest.approx((-0.4, -0.2, 0.4, 0.2))
    assert ax.get_xlabel() == "excess nHSIC(X; Z_l) over the null"
    # the plotted points are the excess, 0.1 * value, mean over the seeds 0 and 1
    points = np.concatenate([c.get_offsets() for c in ax.collections if c.__class__.__name__ == "PathCollection"])
    expected = [0.1 * (value_of(NOCCO, "e2e", 0, 2, layer)[0] + 0.005) for layer in range(len(LAYERS))]
    assert all(np.isclose(points[:, 0], e).any() for e in expected)


def test_dependence_vs_epoch_band_values(tmp_path, captured):
    block = with_settings(table())
    assert_png(F.dependence_vs_epoch(block, "Dependence vs epoch", tmp_path / "dep.png"))
    ax = captured[0].axes[0]  # X, e2e
    polys = [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(polys) == 2 * len(LAYERS)  # a seed band and a null band per layer
    null_bands = [p for p in polys if p.get_hatch() == "///"]
    assert len(null_bands) == len(LAYERS)
    # the first layer's null band: 0.9 * mean value ± 2 * 0.4 / 2 at each epoch
    ys = null_bands[0].get_paths()[0].vertices[:, 1]
    mean0 = [0.9 * (value_of(NOCCO, "e2e", 0, e, 0)[0] + 0.005) for e in range(3)]
    assert ys.min() == pytest.approx(min(mean0) - 0.4) and ys.max() == pytest.approx(max(mean0) + 0.4)
    assert ax.get_ylabel() == "nHSIC(X; Z_l)"


def test_dependence_excess_without_any_null_stays_raw(tmp_path, captured):
    block = with_settings(table(nulls=False))
    assert_png(F.dependence_vs_epoch(block, "no null", tmp_path / "dep.png", excess=True))
    ax = captured[0].axes[0]
    assert ax.get_ylabel() == "nHSIC(X; Z_l) (no null: raw value)"
    hatched = [c for c in ax.collections if getattr(c, "get_hatch", lambda: None)() == "///"]
    assert not hatched
    line = ax.get_lines()[0]
    assert line.get_ydata() == pytest.approx([value_of(NOCCO, "e2e", 0, e, 0)[0] + 0.005 for e in range(3)])


def test_diagnostics_rows_log_scale_and_ratio_setting(tmp_path, captured):
    block = with_settings(table(settings=grid_settings(sigmas=(2.0, 5.0), epsilons=(1e-5,))))
    assert SF.ratio_setting(block) == block.loc[(block["sigma"] == 5.0), "setting_slug"].iloc[0]
    assert_png(SF.diagnostics(block, "Scale diagnostics, toy / net", tmp_path / "diag.png"))
    axes = np.array(captured[0].axes[: 3 * 2]).reshape(3, 2)
    assert [a.get_yscale() for a in axes[:, 0]] == ["log", "linear", "linear"]  # 0.01 .. 300 spans decades
    line = axes[0, 0].get_lines()[0]  # layer 0, e2e
    assert line.get_ydata() == pytest.approx([0.01, 1.0, 100.0])
    assert axes[2, 0].get_lines()[0].get_ydata() == pytest.approx([0.01, 0.02, 0.03])
    assert "σ=5" in captured[0]._suptitle.get_text()


def test_sensitivity_figure_on_a_grid(tmp_path, captured):
    block = with_settings(table(settings=grid_settings()))
    (sweep,) = C.sensitivity_sweeps(block)
    assert_png(SF.sensitivity(block, sweep, "Sensitivity, toy / net", tmp_path / "sens.png"))
    # rows: against sigma at eps 1e-5, at eps 1e-3, against eps; columns: e2e X, e2e Y, layerwise X, Y
    axes = np.array(captured[0].axes[:12]).reshape(3, 4)
    for row, eps in ((0, 1e-5), (1, 1e-3)):
        fixed = [line for line in axes[row, 0].get_lines() if line.get_linestyle() == "-"]
        first = fixed[0]  # layer 0, fixed bandwidth, e2e, last epoch
        assert list(first.get_xdata()) == [0.5, 5.0, 20.0]
        expected = [np.mean([value_of({"sigma": s, "epsilon": eps}, "e2e", seed, 2, 0)[0] for seed in (0, 1)])
                    for s in (0.5, 5.0, 20.0)]  # fmt: skip
        assert first.get_ydata() == pytest.approx(expected)
        assert axes[row, 0].get_xlabel() == f"σ of the bandwidth rule (ε = {eps:g})"
    y_line = [line for line in axes[0, 1].get_lines() if line.get_linestyle() == "-"][0]
    assert y_line.get_ydata() == pytest.approx([value_of({}, "e2e", 0, 2, 0)[1]] * 3)
    assert axes[0, 1].get_ylabel() == "nHSIC(Y; Z_l)" and axes[0, 0].get_xscale() == "log"
    assert axes[2, 0].get_xlabel() == "ε (nocco's ridge) (σ = 5)"
    median = [line for line in axes[2, 0].get_lines() if line.get_linestyle() == "--"]
    assert len(median) == len(LAYERS) and list(median[0].get_xdata()) == [1e-5, 1e-3]
    # the null band of layer 0 against sigma at eps 1e-5: 0.9 * value ± 2 * 0.4 / sqrt(4)
    expected = [np.mean([value_of({"sigma": s, "epsilon": 1e-5}, "e2e", seed, 2, 0)[0] for seed in (0, 1)])
                for s in (0.5, 5.0, 20.0)]  # fmt: skip
    fills = ("PolyCollection", "FillBetweenPolyCollection")
    band = [c for c in axes[0, 0].collections if c.__class__.__name__ in fills]
    ys = band[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.9 * min(expected) - 0.4) and ys.max() == pytest.approx(0.9 * max(expected) + 0.4)


def test_infoplane_estimators_has_a_row_per_estimator(tmp_path, captured):
    kde = {"estimator": "kde", "noise_variance": 0.1, "relative": False, "unit": "nats", "batch_size": 128}
    block = with_settings(table(settings=[NOCCO, {**NOCCO, "estimator": "cka_unbiased", "epsilon": math.nan}, kde]))
    primaries = C.primary_settings(block)
    assert list(primaries) == ["nocco", "cka_unbiased", "kde"]
    assert_png(F.infoplane_estimators(block, primaries, "per estimator", tmp_path / "est.png"))
    axes = captured[0].axes
    labels = [a.get_ylabel() for a in axes if a.get_ylabel()]
    assert labels[:3] == ["nHSIC(Y; Z_l)", "unbiased CKA(Y; Z_l)", "I(Y; T_l) [nats]"]


def test_compression_heat_map_colours_the_relative_fall(tmp_path, captured):
    frame = trajectory_table({0: [1, 10, 8.0], 1: [1, 10.2, 8.1], 2: [1, 9.8, 7.9]})
    summary = C.compression_summary(frame)
    assert_png(F.compression_estimators(summary, "heat map", tmp_path / "heat.png"))
    ax = captured[0].axes[0]
    (image,) = ax.get_images()
    assert image.get_array()[0, 0] == pytest.approx(0.2)
    assert [t.get_text() for t in ax.texts] == ["↓ 20%"]


def test_make_figures_draws_a_grid_once_in_its_sensitivity_figure(tmp_path):
    dependence = table(settings=grid_settings(sigmas=(1.0, 5.0), epsilons=(1e-5,), median=False)
                       + [{**NOCCO, "kernel_x": "linear"}], modes=("e2e",))  # fmt: skip
    written = F.make_figures(inputs_of(dependence), tmp_path)
    by_kind = {kind: sorted(p.name for p in written if p.parent.name == kind) for kind in F.KINDS}
    # claims and geometry: paper.build draws them (paper.claims, paper.geometry)
    assert set(k for k, v in by_kind.items() if v) == set(F.KINDS) - {"claims", "geometry"}
    # per-setting figures: nocco's default and the linear-kernel setting (not part of the grid); sigma = 1
    # is drawn in the sensitivity figure only
    assert by_kind["infoplane"] == by_kind["dependence_excess"] == [
        "toy_net_nocco-gaussian-onehot-gaussian-s5-e1e-05-m128.png",
        "toy_net_nocco-linear-onehot-gaussian-s5-e1e-05-m128.png",
    ]
    assert by_kind["sensitivity"] == ["toy_net_nocco.png"]
    for path in written:
        assert_png(path)


# ---------------------------------------------------------------- tables with the evidence


def test_table3_shows_the_excess_and_table5_the_verdicts():
    data = inputs_of(table())
    tidy, display = TABLES["table3_dependence"](data, "h")
    row = tidy[(tidy["mode"] == "e2e") & (tidy["layer"] == 0)].iloc[0]
    x = np.mean([value_of(NOCCO, "e2e", s, 2, 0)[0] for s in (0, 1)])
    assert row["xz_mean"] == pytest.approx(x) and row["xz_excess_mean"] == pytest.approx(0.1 * x)
    cell = display.sections[0].rows[0][3]
    assert cell.startswith(f"{x:.3g} ± ") and f"[+{0.1 * x:.3g} ± " in cell
    assert display.sections[0].columns[3:5] == ["e2e nHSIC(X;Z)", "e2e nHSIC(Y;Z)"]

    frame = trajectory_table({0: [1, 10, 8.0], 1: [1, 10.2, 8.1], 2: [1, 9.8, 7.9]})
    tidy5, display5 = TABLES["table5_compression_by_estimator"](inputs_of(frame), "h")
    assert tidy5["verdict"].tolist() == ["falls"]
    assert display5.sections[0].rows == [["toy", "net", "e2e · 0: conv1", "falls 20%"]]
    assert display5.sections[0].bold == [[False, False, False, True]]


# ---------------------------------------------------------------- a tiny real measurement


def test_sensitivity_and_estimator_figures_from_a_real_measurement(tmp_path):
    """The engine on a toy network (3 epochs, 3 layers, 64 samples in 2 batches) over a σ and ε
    grid and every estimator family; the figures are drawn from its table."""
    import torch

    from infoplane import dependence, estimators

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    weights = [torch.randn(12, 8, generator=gen), torch.randn(8, 6, generator=gen), torch.randn(6, 3, generator=gen)]
    section = {"estimators": ["nocco", "cka_unbiased", "renyi", "kde"], "kernel_x": "gaussian",
               "kernel_y": "onehot", "kernel_z": "gaussian", "sigma": [5.0, 1.0], "bandwidth": ["fixed", "median"],
               "epsilon": [1e-5, 1e-2], "renyi": {"alpha": 1.01, "width": "knn", "k": 5},
               "kde": {"noise_variance": 0.1, "relative": False, "unit": "nats"}}  # fmt: skip
    frames = []
    for mode, scale in (("e2e", 1.0),):
        for epoch in (0, 1, 2):
            h, layers = x, []
            for w in weights:
                h = torch.relu(h @ (w * scale * (1 + epoch)))
                layers.append(h.clone())
            frame = estimators.measure_snapshot(x, y, layers, dependence.settings(section), batch_size=32, permutations=8,
                                          seed=epoch, num_classes=3, layer_names=LAYERS, device="cpu")  # fmt: skip
            frames.append(frame.assign(dataset="toy", arch="net", mode=mode, seed=0, epoch=epoch))
    data = inputs_of(pd.concat(frames, ignore_index=True))
    real = data.dependence
    sweeps = C.sensitivity_sweeps(real)
    assert [s.estimator for s in sweeps] == ["nocco", "cka_unbiased"]
    assert [axis for axis, _, _ in sweeps[0].panels()] == ["sigma", "sigma", "epsilon"]
    assert_png(SF.sensitivity(real, sweeps[0], "Sensitivity, toy / net", tmp_path / "sensitivity.png"))
    primaries = C.primary_settings(real)
    assert list(primaries) == ["nocco", "cka_unbiased", "renyi", "kde"]
    assert_png(F.infoplane_estimators(real, primaries, "per estimator", tmp_path / "estimators.png"))
    summary = C.compression_summary(real[real["setting_slug"].isin(primaries.values())])
    assert len(summary) == 4 * len(LAYERS) and set(summary["n_epochs"]) == {3}
    assert set(summary.loc[summary["estimator"] == "kde", "quantity"]) == {"value"}  # I(X;T) has no null
    assert_png(F.compression_estimators(summary, "heat map", tmp_path / "heat.png"))
    assert_png(SF.diagnostics(real, "Scale diagnostics", tmp_path / "diagnostics.png"))
    # the diagnostics' bandwidth ratio comes from the paper's sigma = 5, fixed rule, and is the engine's
    ratio = real[real["setting_slug"] == SF.ratio_setting(real)]
    assert (ratio["sigma"] == 5.0).all() and (ratio["bandwidth"] == "fixed").all() and (ratio["epsilon"] == 1e-5).all()
    assert ratio["bandwidth_ratio"].notna().all()
