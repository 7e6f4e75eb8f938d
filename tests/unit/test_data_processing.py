"""The data-processing check: violations counted beyond the batch noise, on values, per setting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from infoplane import contracts
from infoplane.paper import Inputs, data_processing
from infoplane.paper.render import to_markdown

LAYERS = ["b0", "b1", "b2", "classifier"]
NOCCO = {"estimator": "nocco", "kernel_x": "gaussian", "kernel_y": "onehot", "kernel_z": "gaussian", "sigma": 5.0,
         "bandwidth": "fixed", "epsilon": 1e-5, "batch_size": 128, "unit": ""}  # fmt: skip
KDE = {"estimator": "kde", "noise_variance": 0.1, "relative": False, "batch_size": 128, "unit": "nats"}


def rows(setting: dict, xs, ys, std=0.1, n_batches=9, seed=0, epoch=0, mode="e2e", null_shift=0.0) -> list[dict]:
    """One snapshot: the values of the layers on X (xs) and on Y (ys), each with batch std `std`.
    The null mean is value - 1 + null_shift * layer, so that value and excess rise differently."""
    out = []
    for layer, (name, x, y) in enumerate(zip(LAYERS, xs, ys)):
        row = {"dataset": "toy", "arch": "net", "mode": mode, "seed": seed, "epoch": epoch, "layer": layer,
               "layer_name": name, **setting, "n_samples": 1000, "n_batches": n_batches, "permutations": 20}
        for q, v in (("xz", x), ("yz", y)):
            null = v - 1 + null_shift * layer
            row.update({f"value_{q}": v, f"value_{q}_std": std, f"null_{q}_mean": null, f"null_{q}_std": 0.1,
                        f"null_{q}_batch_mean_std": 0.05, f"excess_{q}": v - null, f"p_{q}": 0.05})
        for c in ("sigma", "epsilon", "ceiling_zz", "ceiling_xx", "ceiling_yy", "mean_sq_activation",
                  "median_distance", "bandwidth_ratio"):
            row.setdefault(c, math.nan)
        for c in ("kernel_x", "kernel_y", "kernel_z", "bandwidth"):
            row.setdefault(c, pd.NA)
        out.append(row)
    return out  # fmt: skip


def inputs(*blocks: list[dict]) -> Inputs:
    dependence = pd.DataFrame([r for b in blocks for r in b])
    return Inputs.from_frames(contracts.METRICS.empty(), dependence, contracts.PROBES.empty())


def test_a_rise_counts_only_beyond_the_bounded_noise_of_the_two_values():
    # SE = 0.1 / sqrt(9 - 1); noise = 2 * (SE + SE) = 0.1414...
    se = 0.1 / math.sqrt(8)
    xs = [1.0, 1.0 + 4 * se - 0.01, 1.0 + 4 * se - 0.01 + 4 * se + 0.01, 0.5]  # below, above, a fall
    checked = data_processing.check(inputs(rows(KDE, xs, [3.0, 2.0, 1.0, 0.5])).dependence)
    contracts.DATA_PROCESSING.check(checked)
    x = checked[checked["quantity"] == "xz"].set_index("layer")
    assert x["noise"].tolist() == pytest.approx([4 * se] * 3)
    assert x["increase"].tolist() == pytest.approx([4 * se - 0.01, 4 * se + 0.01, -(xs[2] - 0.5)])
    assert x["violation"].tolist() == [False, True, False]
    assert x.loc[1, "next_layer"] == 2 and x.loc[1, "next_layer_name"] == "b2"
    assert x.loc[1, "relative_increase"] == pytest.approx((4 * se + 0.01) / xs[1])
    assert not checked.loc[checked["quantity"] == "yz", "violation"].any()  # Y falls along the chain
    assert checked["law"].all() and (checked["unit"] == "nats").all()


def test_the_check_reads_the_value_not_the_excess():
    """Falling values whose excess over a per-layer null rises: no violation (the null is not the MI)."""
    checked = data_processing.check(inputs(rows(KDE, [4, 3, 2, 1], [4, 3, 2, 1], null_shift=-3.0)).dependence)
    assert not checked["violation"].any()
    # ... and rising values whose excess falls: every pair a violation
    checked = data_processing.check(inputs(rows(KDE, [1, 2, 3, 4], [1, 2, 3, 4], null_shift=3.0)).dependence)
    assert checked["violation"].all() and len(checked) == 2 * 3


def test_one_batch_is_undetermined_and_a_gap_in_the_chain_is_not_a_pair():
    checked = data_processing.check(inputs(rows(KDE, [1, 2, 3, 4], [1, 2, 3, 4], std=0.0, n_batches=1)).dependence)
    assert not checked["determined"].any() and not checked["violation"].any()
    gap = [r for r in rows(KDE, [1, 2, 3, 4], [1, 2, 3, 4]) if r["layer"] != 2]
    checked = data_processing.check(inputs(gap).dependence)
    assert sorted(set(checked["layer"])) == [0]  # only 0 -> 1; 1 -> 3 skips a block


def test_table_counts_per_setting_and_marks_the_law():
    """nHSIC rising is reported with law False; the display says which estimator obeys a law."""
    blocks = [rows(NOCCO, [1, 2, 3, 4], [1, 1, 1, 1], seed=s) for s in range(3)]
    blocks += [rows(KDE, [4, 5, 3, 2], [4, 3, 2, 1], seed=s, epoch=e) for s in range(3) for e in (0, 2)]
    checked, display = data_processing.table_data_processing(inputs(*blocks), "header")
    summary = data_processing.summary(checked).set_index(["estimator", "quantity"])
    assert summary.loc[("nocco", "xz"), "violations"] == 3 * 3 and not summary.loc[("nocco", "xz"), "law"]
    assert summary.loc[("nocco", "yz"), "violations"] == 0
    assert summary.loc[("kde", "xz"), "violations"] == 6 and summary.loc[("kde", "xz"), "determined"] == 18
    assert summary.loc[("kde", "xz"), "share"] == pytest.approx(6 / 18)
    assert summary.loc[("kde", "xz"), "max_increase"] == pytest.approx(1.0)
    text = to_markdown(display)
    assert "6 / 18 (33%)" in text and "9 / 9 (100%)" in text
    assert "not a mutual information: no law" in text and "the inequality is a law" in text


def test_violation_share_marks_the_later_layer_by_share_of_seeds():
    blocks = [rows(KDE, [1, 2, 1, 0] if s < 2 else [3, 2, 1, 0], [3, 2, 1, 0], seed=s) for s in range(4)]
    share = data_processing.violation_share(data_processing.check(inputs(*blocks).dependence))
    got = dict(zip(share["layer"], share["share"]))
    assert got == {1: 0.5, 2: 0.0, 3: 0.0}


def test_empty_dependence_gives_an_empty_contract_table():
    checked, _ = data_processing.table_data_processing(
        Inputs.from_frames(contracts.METRICS.empty(), contracts.DEPENDENCE.empty(), contracts.PROBES.empty()), "h")
    contracts.DATA_PROCESSING.check(checked)
    assert len(checked) == 0 and np.all(checked.columns == list(contracts.DATA_PROCESSING.columns))


def test_the_estimators_plane_rings_exactly_the_violating_points():
    import matplotlib.pyplot as plt

    mean = pd.DataFrame({"epoch": [0, 0, 2, 2], "layer": [0, 1, 0, 1], "x": [1.0, 2.0, 3.0, 4.0], "y": [5.0, 6, 7, 8]})
    rises = pd.DataFrame({"mode": ["e2e"] * 2, "epoch": [0, 2], "layer": [1, 1], "share": [0.5, 0.25]})
    fig, ax = plt.subplots()
    data_processing.ring_violations(ax, mean, rises)
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[2.0, 6.0]]]
    plt.close(fig)
