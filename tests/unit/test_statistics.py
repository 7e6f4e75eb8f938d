"""The claims' decision rule and statistics: exact tests against brute force and scipy, Holm by
hand, calibration by simulation (rates printed; run with -s to see them), and each claim's
statistic on small tables with a known answer and with the answer reversed."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from infoplane.paper import claims
from infoplane.paper import rule as S
from infoplane.paper.claims import accuracy as c4
from infoplane.paper.claims import bottleneck as c3
from infoplane.paper.claims import data as D
from infoplane.paper.claims import differentiation as c2
from infoplane.paper.claims import generalization as c5
from infoplane.paper.claims import input_information as c1

ALPHA = 0.05


# ---------------------------------------------------------------- synthetic tables
def batch_pattern(n_batches: int, key: int) -> np.ndarray:
    """A fixed pseudo-random per-batch pattern with mean 0 and population std 1 (key: which one)."""
    z = np.random.default_rng(key).standard_normal(n_batches)
    return (z - z.mean()) / z.std()


def dependence_table(curve, modes=("e2e", "layerwise"), seeds=range(6), epochs=range(10), n_blocks=4,
                     setting="nocco", p=0.001, std=0.001, n_batches=8, dataset="toy", arch="net"):  # fmt: skip
    """One row per run x epoch x layer; curve(mode, seed, layer, epoch) -> (excess_xz, excess_yz)
    or (excess_xz, excess_yz, p_xz). The classifier is layer n_blocks. Per batch, the excess is
    its batch mean + std x a pattern that differs between epochs (batch noise that pairing over
    batches does not cancel); the value is excess + 1 (X) / + 0.5 (Y) with the same spread."""
    rows = []
    for mode, seed, layer, epoch in itertools.product(modes, seeds, range(n_blocks + 1), epochs):
        out = curve(mode, seed, layer, epoch)
        x, y = out[0], out[1]
        p_x = out[2] if len(out) > 2 else p
        noise = std * batch_pattern(n_batches, 1000 * seed + epoch)
        rows.append(dict(dataset=dataset, arch=arch, mode=mode, seed=seed, epoch=epoch, layer=layer,
                         layer_name="classifier" if layer == n_blocks else f"b{layer}", setting=setting,
                         value_xz=x + 1.0, value_xz_std=std, value_yz=y + 0.5, value_yz_std=std,
                         n_batches=n_batches, excess_xz=x, excess_yz=y, p_xz=p_x, p_yz=p, excess_xz_std=std,
                         excess_yz_std=std, excess_xz_batches=list(x + noise),
                         excess_yz_batches=list(y + noise)))  # fmt: skip
    return pd.DataFrame(rows)


def metrics_table(accuracy, modes=("e2e", "layerwise"), seeds=range(6), epochs=(0, 9)):
    """Whole-network rows from accuracy(mode, seed, epoch, split), plus auxiliary-head rows (0.3)
    that must never be read as the network's accuracy."""
    rows = []
    for mode, seed, epoch, split in itertools.product(modes, seeds, epochs, ("train", "test")):
        a = accuracy(mode, seed, epoch, split)
        common = dict(dataset="toy", arch="net", mode=mode, seed=seed, epoch=epoch, split=split)
        rows.append(dict(common, layer=4, layer_name="classifier", loss=1 - a, accuracy=a))
        rows.append(dict(common, layer=0, layer_name="b0", loss=2.0, accuracy=0.3))
    return pd.DataFrame(rows)


def per_seed_frame(values: dict[tuple[str, str], np.ndarray], dataset="d", arch="a") -> pd.DataFrame:
    """{(setting, mode): values over seeds 0..n-1} -> the per-seed frame of `paired_comparison`."""
    frames = [pd.DataFrame({"dataset": dataset, "arch": arch, "setting": setting, "mode": mode,
                            "seed": np.arange(len(v)), "value": np.asarray(v, float)})
              for (setting, mode), v in values.items()]  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def simulated_experiments(n_experiments, n_seeds, effect, rng, shared=0.0) -> pd.DataFrame:
    """n_experiments independent E2E-vs-layer-wise experiments, one setting each. Each mode's
    statistic has standard deviation 1 over seeds (a seed component of variance `shared` common to
    both modes + the mode's own noise); E2E is higher by `effect` seed standard deviations."""
    seed_part = rng.normal(0, math.sqrt(shared), (n_experiments, n_seeds))
    own = math.sqrt(1 - shared)
    e2e = seed_part + effect + rng.normal(0, own, seed_part.shape)
    other = seed_part + rng.normal(0, own, seed_part.shape)
    experiment = np.repeat(np.arange(n_experiments), n_seeds)
    seeds = np.tile(np.arange(n_seeds), n_experiments)
    base = pd.DataFrame({"dataset": "d", "arch": "a", "setting": [f"sim{i}" for i in experiment], "seed": seeds})
    return pd.concat([base.assign(mode="e2e", value=e2e.ravel()), base.assign(mode="layerwise", value=other.ravel())],
                     ignore_index=True)  # fmt: skip


def verdict_rates(n_experiments, n_seeds, effect, seed, shared=0.0) -> dict[str, float]:
    frame = simulated_experiments(n_experiments, n_seeds, effect, np.random.default_rng(seed), shared)
    results, _ = S.paired_comparison(frame, claim="sim", part="x", statistic="simulated")
    assert len(results) == n_experiments and set(results["family_size"]) == {1}
    return {v: float((results["verdict"] == v).mean()) for v in S.VERDICTS}


def mc_bound(rate: float, n: int) -> float:
    """rate plus three Monte-Carlo standard errors."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)


# ---------------------------------------------------------------- the tests themselves
def brute_sign_flip(d: np.ndarray) -> tuple[float, float]:
    """Naive enumeration of all 2^n sign patterns of the sum (float64)."""
    observed = float(np.sum(d))
    ge = le = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(d)):
        total = float(np.dot(signs, d))
        ge += total >= observed - 1e-9
        le += total <= observed + 1e-9
    return ge / 2 ** len(d), le / 2 ** len(d)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9])
def test_sign_flip_pvalues_equal_brute_force_enumeration(n, rng):
    data = [rng.normal(0.3, 1, n), rng.integers(-3, 4, n).astype(float), np.r_[np.zeros(n - 1), 2.0]]
    p_greater, p_less = S.sign_flip_pvalues(np.stack(data))  # one batch of three experiments
    for i, d in enumerate(data):
        expected = brute_sign_flip(d)
        assert (p_greater[i], p_less[i]) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("n", [5, 6, 8, 10])
def test_sign_flip_bounds_are_the_inverted_test(n, rng):
    d = rng.integers(-4, 9, n).astype(float)  # integer data: ties and exact subset means
    low, high = S.sign_flip_bounds(d, ALPHA)
    eta = 1e-6
    assert brute_sign_flip(d - (low - eta))[0] <= ALPHA < brute_sign_flip(d - (low + eta))[0]
    assert brute_sign_flip(d - (high + eta))[1] <= ALPHA < brute_sign_flip(d - (high - eta))[1]
    p_greater, _ = S.sign_flip_pvalues(d)
    assert (low > 0) == (p_greater <= ALPHA)


def test_sign_flip_bounds_are_unbounded_when_no_value_can_be_excluded():
    low, high = S.sign_flip_bounds(np.array([1.0, 2.0, 3.0, 4.0]), ALPHA)  # 1/16 > 0.05
    assert low == -np.inf and high == np.inf
    assert S.sign_flip_pvalues(np.array([1.0, 2.0, 3.0, 4.0]))[0] == 1 / 16


@pytest.mark.parametrize("n", [2, 13, 30])
def test_t_test_and_bounds_match_scipy(n, rng):
    d = rng.normal(0.4, 1.3, n)
    p_greater, p_less = S.t_pvalues(d)
    low, high = S.t_bounds(d, ALPHA)
    greater = stats.ttest_1samp(d, 0.0, alternative="greater")
    less = stats.ttest_1samp(d, 0.0, alternative="less")
    assert p_greater == pytest.approx(greater.pvalue, rel=1e-10)
    assert p_less == pytest.approx(less.pvalue, rel=1e-10)
    assert low == pytest.approx(greater.confidence_interval(0.95).low, rel=1e-10)
    assert high == pytest.approx(less.confidence_interval(0.95).high, rel=1e-10)


def test_location_test_is_exact_up_to_12_seeds_then_t(rng):
    d12, d13 = rng.normal(1, 1, 12), rng.normal(1, 1, 13)
    assert S.location_test(d12)["test"].startswith("exact sign-flip")
    assert S.location_test(d12)["p_greater"] == pytest.approx(brute_sign_flip(d12)[0])
    assert S.location_test(d13)["test"].startswith("paired t-test")
    assert S.location_test(d13)["p_greater"] == pytest.approx(stats.ttest_1samp(d13, 0, alternative="greater").pvalue)


def test_holm_hand_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, order kept
    adjusted = S.holm([0.02, np.nan, 0.01])  # NaN is not in the family: k = 2
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 20, 100, 1000])
def test_seeds_needed_is_the_fewest_seeds_whose_smallest_p_passes_alpha_over_k(k):
    n = next(n for n in range(1, 40) if 2.0**-n <= ALPHA / k)  # naive search
    expected = max(5, n) if max(5, n) <= 12 else 13
    assert S.seeds_needed(k, ALPHA) == expected


# ---------------------------------------------------------------- calibration by simulation
N_SIM = 1000


def test_no_effect_with_5_seeds_rarely_holds_or_fails():
    rates = verdict_rates(N_SIM, 5, 0.0, seed=1, shared=0.5)
    print(f"\n[calibration] no effect, 5 seeds, {N_SIM} experiments: holds {rates['holds']:.3f}, "
          f"fails {rates['fails']:.3f} (exact sign-flip: 1/32 = 0.031 each)")
    assert rates["holds"] <= mc_bound(ALPHA, N_SIM)
    assert rates["fails"] <= mc_bound(ALPHA, N_SIM)


def test_no_effect_with_20_seeds_rarely_holds_or_fails():
    rates = verdict_rates(N_SIM, 20, 0.0, seed=2, shared=0.5)
    print(f"\n[calibration] no effect, 20 seeds (t-test), {N_SIM} experiments: holds {rates['holds']:.3f}, "
          f"fails {rates['fails']:.3f}")
    assert rates["holds"] <= mc_bound(ALPHA, N_SIM)
    assert rates["fails"] <= mc_bound(ALPHA, N_SIM)


def test_effect_of_1_5_seed_sd_with_8_seeds_mostly_holds():
    rates = verdict_rates(N_SIM, 8, 1.5, seed=3)  # no shared seed component: pairing gains nothing
    print(f"\n[calibration] effect 1.5 seed-SD, 8 seeds, {N_SIM} experiments: holds {rates['holds']:.3f}, "
          f"fails {rates['fails']:.3f}")
    assert rates["holds"] >= 0.5
    assert rates["fails"] == 0.0


def test_power_does_not_fall_as_seeds_are_added():
    power = {n: verdict_rates(N_SIM, n, 1.0, seed=4)["holds"] for n in (5, 8, 12, 20)}
    print(f"\n[calibration] power at 1 seed-SD, {N_SIM} experiments: "
          + ", ".join(f"{n} seeds {p:.3f}" for n, p in power.items()))
    values = list(power.values())
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[-1] > values[0] + 0.3  # and it rises for real


def test_paired_by_seed_shared_seed_effects_cancel():
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 10, 6)  # initialization / data order shared by both modes
    e2e, other = seed_effect + 1 + rng.normal(0, 0.1, 6), seed_effect + rng.normal(0, 0.1, 6)
    paired, _ = S.paired_comparison(per_seed_frame({("s", "e2e"): e2e, ("s", "lw"): other}), claim="t", part="p",
                                    statistic="v")  # fmt: skip
    assert paired["verdict"].iloc[0] == "holds"
    assert paired["mean"].iloc[0] == pytest.approx(np.mean(e2e - other))
    shuffled = other[[1, 2, 3, 4, 5, 0]]  # the same values paired with the wrong seeds
    broken, _ = S.paired_comparison(per_seed_frame({("s", "e2e"): e2e, ("s", "lw"): shuffled}), claim="t", part="p",
                                    statistic="v")  # fmt: skip
    assert broken["verdict"].iloc[0] != "holds"


# ---------------------------------------------------------------- verdict details
def test_fewer_than_5_seeds_is_underpowered_and_says_how_many_are_needed():
    res, diffs = S.paired_comparison(per_seed_frame({("s", "e2e"): [5, 6, 7, 8], ("s", "lw"): [1, 1, 1, 1]}),
                                     claim="t", part="p", statistic="v")  # fmt: skip
    row = res.iloc[0]
    assert row["verdict"] == "underpowered" and row["seeds_needed"] == 5 and "needs >= 5" in row["reason"]
    assert row["n_seeds"] == 4 and row["family_size"] == 0
    assert list(diffs["difference"]) == [4, 5, 6, 7]


def test_holm_family_is_one_setting_and_smallest_p_sets_seeds_needed():
    up5 = np.arange(5) + 10.0  # every seed higher: exact p = 1/32
    two_modes = per_seed_frame({("s", "e2e"): up5, ("s", "lw"): np.zeros(5), ("s", "lw_seq"): np.zeros(5)})
    res, _ = S.paired_comparison(two_modes, claim="t", part="p", statistic="v")
    assert list(res["p_value"]) == pytest.approx([1 / 32, 1 / 32])
    assert list(res["p_corrected"]) == pytest.approx([1 / 16, 1 / 16])
    assert set(res["verdict"]) == {"underpowered"} and set(res["seeds_needed"]) == {6}
    assert all("needs >= 6" in r for r in res["reason"])
    # two settings are two families: no correction across them
    zeros = np.zeros(5)
    settings = per_seed_frame({("a", "e2e"): up5, ("a", "lw"): zeros, ("b", "e2e"): up5, ("b", "lw"): zeros})
    res, _ = S.paired_comparison(settings, claim="t", part="p", statistic="v")
    assert list(res["verdict"]) == ["holds", "holds"] and list(res["family_size"]) == [1, 1]
    # with 6 seeds both comparisons of one family hold (1/64 * 2 and 1/64 * 1 <= 0.05)
    up6 = np.arange(6) + 10.0
    res, _ = S.paired_comparison(per_seed_frame({("s", "e2e"): up6, ("s", "lw"): np.zeros(6), ("s", "q"): np.zeros(6)}),
                                 claim="t", part="p", statistic="v")  # fmt: skip
    assert list(res["verdict"]) == ["holds", "holds"] and list(res["p_corrected"]) == pytest.approx([1 / 32, 1 / 32])


def test_reversed_effect_fails_and_direction_less_mirrors_it():
    frame = per_seed_frame({("s", "e2e"): np.zeros(6), ("s", "lw"): np.arange(6) + 1.0})
    res, _ = S.paired_comparison(frame, claim="t", part="p", statistic="v")
    assert res["verdict"].iloc[0] == "fails" and res["ci_high"].iloc[0] < 0
    res, _ = S.paired_comparison(frame, claim="t", part="p", statistic="v", direction="less")
    assert res["verdict"].iloc[0] == "holds" and res["p_value"].iloc[0] == pytest.approx(1 / 64)


def test_unpaired_seeds_are_dropped_and_named():
    frame = pd.concat([per_seed_frame({("s", "e2e"): np.arange(6) + 5.0}),
                       per_seed_frame({("s", "lw"): np.zeros(7)})], ignore_index=True)  # fmt: skip
    res, diffs = S.paired_comparison(frame, claim="t", part="p", statistic="v")
    assert res["n_seeds"].iloc[0] == 6 and "unpaired seeds dropped: [6]" in res["reason"].iloc[0]
    assert sorted(diffs["seed"]) == list(range(6))


def test_missing_mode_gives_an_inconclusive_row_naming_the_modes():
    res, _ = S.paired_comparison(per_seed_frame({("s", "lw"): np.zeros(6)}), claim="t", part="p", statistic="v")
    assert res["verdict"].iloc[0] == "inconclusive" and "present: lw" in res["reason"].iloc[0]


# ---------------------------------------------------------------- claim 1
def deep_curve(reverse=False):
    """E2E: block excess at the last epoch [0.1, 0.2, 0.6, 0.4] + 0.01 seed, logits 0.3; layer-wise
    [0.5, 0.5, 0.2, 0.3 but within its null (p = 0.5), so 0], logits 0.1. Earlier epochs inverted."""

    def curve(mode, seed, layer, epoch):
        e2e = (mode == "e2e") != reverse
        final = [0.1, 0.2, 0.6, 0.4, 0.3] if e2e else [0.5, 0.5, 0.2, 0.3, 0.1]
        value = final[layer] + (0.01 * seed if e2e else 0.0)
        p = 0.5 if (not e2e and layer == 3) else 0.001
        return (value, 0.1, p) if epoch == 9 else (1 - value, 0.1, 0.001)

    return curve


def test_claim1_statistic_is_the_excess_over_the_deeper_blocks_at_the_last_epoch():
    per_seed = c1.deep_input_dependence(dependence_table(deep_curve()))
    deep = per_seed[per_seed["part"] == "deeper_blocks"].set_index(["mode", "seed"])["value"]
    for seed in range(6):
        assert deep[("e2e", seed)] == pytest.approx(0.5 + 0.01 * seed)
        assert deep[("layerwise", seed)] == pytest.approx(0.1)  # (0.2 + 0) / 2: the null layer counts 0
    res, diffs = c1.input_information(dependence_table(deep_curve()))
    main = res[res["part"] == "deeper_blocks"].iloc[0]
    assert main["verdict"] == "holds" and main["primary"]
    assert main["mean"] == pytest.approx(0.4 + 0.01 * 2.5)
    clf = res[res["part"] == "classifier"].iloc[0]
    assert not clf["primary"] and clf["mean"] == pytest.approx(0.3 - 0.1 + 0.01 * 2.5)
    assert set(diffs["part"]) == {"deeper_blocks", "classifier"} and len(diffs) == 12


def test_used_dependence_is_the_excess_raw_only_without_a_null_and_nan_without_permutations():
    dep = dependence_table(deep_curve()).assign(permutations=32)
    used = D.used_dependence(dep)
    within_null = dep["p_xz"] >= 0.05
    assert (used.loc[within_null, "dep_xz"] == 0).all()
    assert np.allclose(used.loc[~within_null, "dep_xz"], dep.loc[~within_null, "excess_xz"])
    # kde / binning I(X;T): null, excess and p NaN although permutations were drawn -> the raw value
    no_null = dep.assign(excess_xz=np.nan, p_xz=np.nan)
    assert np.allclose(D.used_dependence(no_null)["dep_xz"], dep["value_xz"])
    assert np.allclose(D.used_dependence(no_null)["dep_yz"], dep["excess_yz"])
    basis = D.dependence_basis(no_null).set_index("setting")
    assert basis.loc["nocco", "basis_xz"] == D.RAW and basis.loc["nocco", "basis_yz"] == D.EXCESS
    # no permutations at all: no evidence, NaN (never the raw value)
    bare = no_null.assign(permutations=0, excess_yz=np.nan, p_yz=np.nan)
    assert D.used_dependence(bare)[["dep_xz", "dep_yz"]].isna().all().all()
    assert D.dependence_basis(bare)["basis_xz"].item() == D.NO_EVIDENCE
    with pytest.raises(ValueError, match="lacks value_xz"):
        D.used_dependence(no_null.drop(columns="value_xz"))


def test_raw_dependence_gives_the_same_statistic_on_the_values():
    dep = dependence_table(deep_curve())  # value = excess + 1 on X in this table
    raw = c1.deep_input_dependence(D.raw_dependence(dep))
    excess = c1.deep_input_dependence(dep)
    raw_deep = raw[raw["part"] == "deeper_blocks"].set_index(["mode", "seed"])["value"]
    assert raw_deep[("e2e", 0)] == pytest.approx(0.5 + 1.0)
    assert raw_deep[("layerwise", 0)] == pytest.approx((0.2 + 0.3) / 2 + 1.0)  # the null layer counts as is
    assert excess.set_index(["part", "mode", "seed"])["value"][("deeper_blocks", "layerwise", 0)] == pytest.approx(0.1)


def test_claim1_reversed_fails():
    res, _ = c1.input_information(dependence_table(deep_curve(reverse=True)))
    assert set(res["verdict"]) == {"fails"}


# ---------------------------------------------------------------- claim 2
def test_trajectory_statistics_known_values():
    t = np.arange(4.0)[:, None]
    right = np.hstack([t, 0 * t])  # layer 0 moves right by 1 per snapshot
    y0 = np.zeros((4, 2))
    assert c2.trajectory_statistics(np.hstack([t, -t]), y0)[0] == pytest.approx(2.0)  # opposite
    assert c2.trajectory_statistics(right, np.hstack([0 * t, t]))[0] == pytest.approx(1.0)  # orthogonal
    shape, dist = c2.trajectory_statistics(np.hstack([t, 2 * t + 100]), y0)  # same direction, far apart
    assert shape == pytest.approx(0.0, abs=1e-12) and dist > 100
    assert math.isnan(c2.trajectory_statistics(np.hstack([t, 0 * t + 1]), y0)[0])  # a layer that never moves


def test_trajectory_shape_ignores_scale_and_position(rng):
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    shape = c2.trajectory_statistics(x, y)[0]
    assert c2.trajectory_statistics(3 * x + 7, 3 * y - 2)[0] == pytest.approx(shape)


def differentiation_curve(reverse=False):
    """E2E blocks move in directions that turn with depth (block l at angle l * 50 degrees); layer-wise
    blocks all move in the same direction but sit far apart (a large spread without differentiation)."""

    def curve(mode, seed, layer, epoch):
        e2e = (mode == "e2e") != reverse
        wobble = 0.002 * math.sin(3 * seed + 5 * epoch + layer)
        if e2e:
            angle = math.radians(50 * layer)
            return 1 + 0.1 * epoch * math.cos(angle) + wobble, 1 + 0.1 * epoch * math.sin(angle) + wobble
        return 2 * layer + 0.05 * epoch + wobble, 2 * layer + 0.05 * epoch + wobble  # equal axis ranges

    return curve


def test_claim2_differentiation_holds_on_turning_trajectories_and_fails_reversed():
    res, _ = c2.differentiation(dependence_table(differentiation_curve()))
    shape = res[res["part"] == "trajectory_shape"].iloc[0]
    assert shape["verdict"] == "holds" and shape["primary"]
    # blocks at 0/50/100/150 degrees: the six pairs differ by 50, 100, 150, 50, 100, 50 degrees
    expected = 1 - np.mean(np.cos(np.radians([50, 100, 150, 50, 100, 50])))
    assert shape["mean"] == pytest.approx(expected, abs=0.02)
    spread = res[res["part"] == "mean_distance"].iloc[0]
    assert spread["verdict"] == "fails"  # layer-wise points are further apart: spread is not differentiation
    res, _ = c2.differentiation(dependence_table(differentiation_curve(reverse=True)))
    assert res[res["part"] == "trajectory_shape"]["verdict"].iloc[0] == "fails"


# ---------------------------------------------------------------- claim 3
def bottleneck_curve(x_shape="rise_fall", y_rises=True, noise=0.01):
    """Last block (layer 3) excess nHSIC(X;Z) over epochs 0..9: rise_fall peaks at epoch 4 (1.0) and
    falls to 0.7; rising goes up to the end; falling peaks at the first snapshot."""

    def curve(mode, seed, layer, epoch):
        wobble = noise * math.sin(7 * seed + 3 * epoch + layer)
        if x_shape == "rise_fall":
            x = 0.2 + 0.2 * epoch if epoch <= 4 else 1.0 - 0.06 * (epoch - 4)
        elif x_shape == "rising":
            x = 0.2 + 0.08 * epoch
        else:
            x = 1.0 - 0.05 * epoch
        y = 0.1 + (0.05 * epoch if y_rises else -0.01 * epoch)
        return x + wobble, y + wobble

    return curve


def test_claim3_fitting_then_compression_holds_with_the_peak_epoch():
    res, diffs = c3.bottleneck(dependence_table(bottleneck_curve(), modes=("e2e",)))
    rows = res.set_index("part")
    assert list(rows["verdict"]) == ["holds", "holds"]
    assert rows.loc["compression", "peak_epoch"] == 4
    assert rows.loc["compression", "mean"] == pytest.approx(0.3, abs=0.03)  # cross-fitted fall 1.0 - 0.7
    assert rows.loc["fitting", "mean"] == pytest.approx(0.45, abs=0.03)
    comp = diffs[diffs["part"] == "compression"]
    assert np.allclose(comp["difference"], comp["value"] - comp["reference"]) and len(comp) == 6


def test_claim3_with_one_seed_is_underpowered_and_says_how_many_seeds():
    res, _ = c3.bottleneck(dependence_table(bottleneck_curve(), seeds=range(1)))
    e2e = res[res["mode"] == "e2e"]
    assert set(e2e["verdict"]) == {"underpowered"} and e2e["reason"].str.contains("needs >= 5").all()
    short, _ = c3.bottleneck(dependence_table(bottleneck_curve(), epochs=range(2)))
    assert set(short.loc[short["mode"] == "e2e", "verdict"]) == {"inconclusive"}  # no statistic on 2 snapshots
    assert set(short.loc[short["mode"] == "layerwise", "verdict"]) == {"descriptive"}


def test_claim3_still_rising_fails_and_other_modes_are_descriptive():
    dep = dependence_table(bottleneck_curve("rising", y_rises=False), modes=("e2e", "layerwise"))
    res, _ = c3.bottleneck(dep)
    e2e = res[res["mode"] == "e2e"].set_index("part")
    assert e2e.loc["compression", "verdict"] == "fails" and e2e.loc["fitting", "verdict"] == "fails"
    assert set(res.loc[res["mode"] == "layerwise", "verdict"]) == {"descriptive"}
    assert S.comparison_verdicts(res)["verdict"].tolist() == ["fails"]


def test_claim3_peak_at_the_first_snapshot_is_not_compression_after_fitting():
    res, _ = c3.bottleneck(dependence_table(bottleneck_curve("falling"), modes=("e2e",)))
    comp = res[res["part"] == "compression"].iloc[0]
    assert comp["peak_epoch"] == 0 and comp["verdict"] == "inconclusive"
    assert "first snapshot" in comp["reason"]


def with_last_block_batches(dep: pd.DataFrame, value_xz, value_std: float, batches, n_batches: int = 8) -> pd.DataFrame:
    """The last block's (layer 3) X columns replaced: value_xz(seed, epoch) (moving independently of the
    excess), its batch spread value_std, and the per-batch excess excess + batches(seed, epoch)."""
    out = dep.copy()
    last = out.index[out["layer"] == 3]
    for i in last:
        seed, epoch, excess = out.at[i, "seed"], out.at[i, "epoch"], out.at[i, "excess_xz"]
        deviation = np.asarray(batches(seed, epoch), float)
        out.at[i, "value_xz"] = value_xz(seed, epoch)
        out.at[i, "excess_xz_batches"] = list(excess + deviation)
        out.at[i, "excess_xz_std"] = float(deviation.std())
    out.loc[last, "value_xz_std"] = value_std
    out["n_batches"] = n_batches
    return out


def test_claim3_gate_passes_when_the_null_swings_between_batches_but_the_excess_does_not():
    """nocco-like: the raw value is mostly null, and the null varies strongly from batch to batch (raw
    spread 5 against a fall of 0.3) while the excess is steady (0.001 per batch). The gate reads the
    excess's own spread, paired over batches: compression holds (the raw spread would have blocked it)."""
    dep = dependence_table(bottleneck_curve(), modes=("e2e",))
    dep = with_last_block_batches(dep, value_xz=lambda s, e: 40.0 + 3 * math.sin(e + s), value_std=5.0,
                                  batches=lambda s, e: 0.001 * batch_pattern(8, 1000 * s + e))  # fmt: skip
    comp = c3.bottleneck(dep)[0].set_index("part").loc["compression"]
    assert comp["verdict"] == "holds" and comp["ci_low"] > 0
    assert 5.0 / math.sqrt(8) * math.sqrt(2) * 1.645 > comp["mean"]  # what the old gate compared: blocked


def test_claim3_gate_blocks_when_the_excess_swings_between_batches_though_the_value_is_steady():
    """The raw value is steady (spread 0.001, constant over epochs) but the excess swings by 2 between
    batches, with a different pattern at every epoch (no pairing can cancel it): the fall of 0.3 is
    within the batch noise, so compression is not called though the seeds agree."""
    dep = dependence_table(bottleneck_curve(), modes=("e2e",))
    dep = with_last_block_batches(dep, value_xz=lambda s, e: 50.0, value_std=0.001,
                                  batches=lambda s, e: 2.0 * batch_pattern(8, 1000 * s + e))  # fmt: skip
    comp = c3.bottleneck(dep)[0].set_index("part").loc["compression"]
    assert comp["p_corrected"] <= ALPHA and comp["verdict"] == "inconclusive"
    assert "batch standard error" in comp["reason"] and comp["ci_low"] < 0  # the blocked rejection: 0 inside


def test_claim3_gate_pairs_the_fall_over_the_same_batches():
    """Batch effects shared by every epoch (the same evaluation batches) cancel in the fall: a swing of
    2 between batches, identical at every epoch, does not block compression; the same swing without
    the per-batch excess (only its std, unpaired) does."""
    dep = dependence_table(bottleneck_curve(), modes=("e2e",))
    shared = with_last_block_batches(dep, value_xz=lambda s, e: 50.0, value_std=0.001,
                                     batches=lambda s, e: 2.0 * batch_pattern(8, 7))  # fmt: skip
    assert c3.bottleneck(shared)[0].set_index("part").loc["compression", "verdict"] == "holds"
    unpaired = shared.assign(excess_xz_batches=None)
    comp = c3.bottleneck(unpaired)[0].set_index("part").loc["compression"]
    assert comp["verdict"] == "inconclusive" and "batch standard error" in comp["reason"]
    bare = unpaired.drop(columns=["excess_xz_batches", "excess_xz_std"])  # no spread of the excess at all
    comp = c3.bottleneck(bare)[0].set_index("part").loc["compression"]
    assert comp["verdict"] == "inconclusive" and "rerun the dependence stage" in comp["reason"]


def flat_series_table(n_experiments, n_seeds, n_epochs, rng, noise=0.03):
    """A flat nHSIC(X;Z_L) = 1 with 3 % seed-level noise at every snapshot (no compression) and a
    rising nHSIC(Y;Z_L), one setting per experiment; small batch standard errors (0.1 %, from the
    excess's own spread over 8 batches: the unpaired fallback of `common.fall_standard_error`)."""
    e = np.arange(n_epochs)
    x = 1 + noise * rng.standard_normal((n_experiments, n_seeds, n_epochs))
    y = 0.1 + 0.1 * e + 0.01 * rng.standard_normal((n_experiments, n_seeds, n_epochs))
    exp, seed, epoch = (a.ravel() for a in np.meshgrid(np.arange(n_experiments), np.arange(n_seeds), e, indexing="ij"))
    base = pd.DataFrame({"dataset": "d", "arch": "a", "mode": "e2e", "seed": seed, "epoch": epoch,
                         "setting": [f"sim{i}" for i in exp], "excess_xz": x.ravel(), "excess_yz": y.ravel(),
                         "p_xz": 0.001, "p_yz": 0.001, "excess_xz_std": 0.001 * math.sqrt(7),
                         "n_batches": 8})  # fmt: skip
    block = base.assign(layer=0, layer_name="b0")
    return pd.concat([block, block.assign(layer=1, layer_name="classifier")], ignore_index=True), x


def test_claim3_flat_noisy_series_is_not_called_compression():
    n = N_SIM
    table, x = flat_series_table(n, 5, 10, np.random.default_rng(6))
    res, _ = c3.bottleneck(table)
    comp = res[res["part"] == "compression"]
    holds = float((comp["verdict"] == "holds").mean())
    significant = float((comp["p_value"] <= ALPHA).mean())
    # the naive statistic: each seed's own maximum over the interior epochs minus its end, sign-flip test
    naive_p = S.sign_flip_pvalues(x[:, :, 1:-1].max(-1) - x[:, :, -1])[0]
    naive = float((naive_p <= ALPHA).mean())
    print(f"\n[calibration] claim 3, flat series with 3 % noise, 5 seeds, 10 snapshots, {n} experiments: "
          f"holds {holds:.3f} (p <= 0.05 in {significant:.3f}); the naive in-sample peak would hold {naive:.3f}")
    assert holds <= mc_bound(ALPHA, n) and significant <= mc_bound(ALPHA, n)
    assert naive > 0.3  # the simulation has the bias the rule must not fall for
    assert set(res.loc[res["part"] == "fitting", "verdict"]) == {"holds"}


# ---------------------------------------------------------------- claim 4
def accuracy_table(reverse=False):
    def accuracy(mode, seed, epoch, split):
        e2e = (mode == "e2e") != reverse
        final = 0.9 + 0.01 * seed if e2e else 0.85 + 0.005 * seed
        return (final if epoch == 9 else 1.2 - final) + (0.05 if split == "train" else 0.0)

    return metrics_table(accuracy)


def test_claim4_paired_last_epoch_test_accuracy_of_the_whole_network():
    per_seed = c4.final_accuracy(accuracy_table())
    assert per_seed.set_index(["mode", "seed"])["value"][("layerwise", 2)] == pytest.approx(0.86)
    res, diffs = c4.accuracy(None, accuracy_table())
    row = res.iloc[0]
    assert row["verdict"] == "holds" and row["setting"] == S.NO_SETTING
    assert row["mean"] == pytest.approx(0.05 + 0.005 * 2.5)
    assert np.allclose(diffs["difference"], 0.05 + 0.005 * diffs["seed"])
    res, _ = c4.accuracy(None, accuracy_table(reverse=True))
    assert res["verdict"].iloc[0] == "fails"


# ---------------------------------------------------------------- claim 5
def simpson_tables(reverse=False, n_seeds=8):
    """Middle blocks 1 and 2 compress by c = seed (+ 20 in layer-wise); within each mode the gap is
    0.2 - 0.01 c (more compression, smaller gap; reversed: larger), but layer-wise has both more
    compression and a larger gap, so pooled over modes the correlation has the opposite sign."""
    sign = -1 if reverse else 1
    offset = {"e2e": 0.0, "layerwise": 20.0}

    def compression(mode, seed):
        return seed + offset[mode] if not reverse else (n_seeds - 1 - seed) + offset[mode]

    def curve(mode, seed, layer, epoch):
        c = compression(mode, seed)
        x = [0.0, 1.0 + c, 1.0, 1.0][epoch] if layer in (1, 2) else 0.5
        return x, 0.1

    def accuracy(mode, seed, epoch, split):
        c = compression(mode, seed)
        gap = 0.2 - sign * 0.001 * (c - offset[mode]) + (0.5 if (mode == "layerwise") != reverse else 0.0)
        test = 0.4 + sign * 0.002 * (c - offset[mode])
        return test + (gap if split == "train" else 0.0)

    seeds = range(n_seeds)
    dep = dependence_table(curve, seeds=seeds, epochs=range(4))
    return dep, metrics_table(accuracy, seeds=seeds, epochs=(0, 3))


def test_claim5_within_mode_correlation_wins_over_the_pooled_one():
    dep, met = simpson_tables()
    runs = c5.compression_and_generalization(dep, met)
    assert stats.spearmanr(runs["compression"], runs["gap"])[0] > 0.5  # pooled: the wrong sign
    res, diffs = c5.compression_generalization(dep, met, claims.Options(n_perm=999))
    gap = res[(res["part"] == "gap") & (res["verdict"] != "descriptive")].iloc[0]
    assert gap["verdict"] == "holds" and gap["mean"] == pytest.approx(-1.0, abs=1e-6)
    assert gap["p_value"] == pytest.approx(1 / 1000)
    # the interval is the test's own confidence set: rho < 0 (bound 0: strictly below), nothing more
    assert (gap["ci_low"], gap["ci_high"]) == (-1.0, 0.0) and "permutation" in gap["ci_method"]
    per_mode = res[(res["part"] == "gap") & (res["verdict"] == "descriptive")].set_index("mode")["mean"]
    assert per_mode.to_dict() == pytest.approx({"e2e": -1.0, "layerwise": -1.0})
    acc = res[(res["part"] == "test_accuracy") & (res["verdict"] != "descriptive")].iloc[0]
    assert acc["verdict"] == "holds" and not acc["primary"]
    assert set(diffs["mode"]) == {"e2e", "layerwise"} and diffs["difference"].isna().all()


def test_claim5_reversed_fails():
    dep, met = simpson_tables(reverse=True)
    runs = c5.compression_and_generalization(dep, met)
    assert stats.spearmanr(runs["compression"], runs["gap"])[0] < -0.5
    res, _ = c5.compression_generalization(dep, met, claims.Options(n_perm=999))
    gap = res[(res["part"] == "gap") & (res["verdict"] != "descriptive")].iloc[0]
    assert gap["verdict"] == "fails" and gap["mean"] == pytest.approx(1.0, abs=1e-6)


def test_claim5_stratified_permutation_test_is_calibrated_without_association():
    rng = np.random.default_rng(7)
    p = np.array([c5.stratified_spearman([(rng.normal(size=6), rng.normal(size=6)) for _ in range(2)], rng,
                                         n_perm=199)["p_less"] for _ in range(300)])  # fmt: skip
    rate = float((p <= ALPHA).mean())
    print(f"\n[calibration] claim 5, no association, 2 modes x 6 seeds, 300 experiments: p <= 0.05 in {rate:.3f}")
    assert rate <= mc_bound(ALPHA, 300)


# ---------------------------------------------------------------- everything, robustness, summaries
def result_row(claim, setting, verdict, mode="e2e", ref="lw", part="x", primary=True, **extra):
    row = {c: math.nan for c in S.RESULT_COLUMNS}
    row.update(claim=claim, part=part, primary=primary, dataset="d", arch="a", setting=setting, mode=mode,
               reference_mode=ref, verdict=verdict, n_seeds=6, mean=0.1, ci_low=0.05, ci_high=0.2, p_corrected=0.01)
    row.update(extra)
    return row


def test_robustness_matrix_and_lines():
    rows = [
        result_row("1", "A", "holds"), result_row("1", "B", "holds"), result_row("1", "C", "fails"),
        result_row("2", "A", "holds"), result_row("2", "B", "inconclusive"), result_row("2", "C", "underpowered"),
        result_row("2", "A", "fails", part="secondary", primary=False),  # secondary parts do not count
        result_row("3", "A", "holds", part="fitting"), result_row("3", "A", "fails", part="compression"),
        result_row("1", "A", "holds", ref="lw2"),
        result_row("4", S.NO_SETTING, "holds"),
        result_row("5", "A", "holds"), result_row("5", "A", "fails", ref="lw2"),
    ]  # fmt: skip
    matrix, lines = S.robustness(pd.DataFrame(rows))
    assert matrix.loc["1", ["A", "B", "C"]].tolist() == ["holds", "holds", "fails"]
    assert matrix.loc["2", ["A", "B", "C"]].tolist() == ["holds", "inconclusive", "underpowered"]
    assert matrix.loc["3", "A"] == "fails"  # a failing part fails the comparison
    assert matrix.loc["5", "A"] == "mixed"
    lines = lines.set_index("claim")
    assert lines.loc["1", "line"] == "holds under 2 of 3 settings; fails under 1"
    assert not lines.loc["1", "holds_only_under_one"]
    assert lines.loc["2", "holds_only_under_one"] and "holds only under one setting" in lines.loc["2", "line"]
    assert "does not depend on the estimator setting" in lines.loc["4", "line"]


def test_claim_summaries_need_a_primary_setting_when_there_are_several():
    results = pd.DataFrame([result_row("1", "A", "holds"), result_row("1", "B", "fails")])
    with pytest.raises(ValueError, match="pass primary_setting="):
        claims.claim_summaries(results)
    line = claims.claim_summaries(results, primary_setting="A").set_index("claim").loc["1"]
    assert line["verdict"] == "holds"
    assert "corrected p 0.01" in line["line"] and "6 seeds" in line["line"] and "holds under 1 of 2" in line["line"]


def test_evaluate_claims_on_one_table_covers_every_claim():
    def curve(mode, seed, layer, epoch):
        return bottleneck_curve()(mode, seed, layer, epoch) if mode == "e2e" else (0.5 + 0.01 * epoch, 0.2)

    options = claims.Options(n_perm=199)
    results, differences = claims.evaluate_claims(dependence_table(curve), accuracy_table(), options)
    assert list(results.columns) == S.RESULT_COLUMNS and list(differences.columns) == S.DIFFERENCE_COLUMNS
    assert set(results["claim"]) == {"1", "2", "3", "4", "5"}
    assert set(results["verdict"]) <= {*S.VERDICTS, "descriptive"}
    assert results["n_seeds"].dtype == "int64" and results["seeds_needed"].dtype == "int64"
    again, _ = claims.evaluate_claims(dependence_table(curve), accuracy_table(), options)
    pd.testing.assert_frame_equal(results, again)  # deterministic


# ---------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_the_fix():
    dep = dependence_table(deep_curve())
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['p_xz'\]"):
        c1.input_information(dep.drop(columns="p_xz"))
    with pytest.raises(ValueError, match="aggregate them to one row per key"):
        c1.input_information(pd.concat([dep, dep.head(1)]))
    with pytest.raises(ValueError, match="direction must be"):
        S.paired_comparison(per_seed_frame({("s", "e2e"): [1.0]}), claim="t", part="p", statistic="v", direction="up")
    with pytest.raises(ValueError, match="NaN or inf"):
        S.location_test(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="x must be"):
        c3.peak_fall_test(np.ones((3, 2)))


def test_claim3_peak_test_stays_calibrated_with_12_seeds_where_leave_one_out_does_not():
    """Why claim 3 does not test leave-one-seed-out falls with the sign-flip test: the falls share
    the data that chose each other's peaks, are positively correlated, and the test over-rejects."""
    rng = np.random.default_rng(8)
    x = 1 + 0.03 * rng.standard_normal((N_SIM, 12, 10))
    rule = float(np.mean([c3.peak_fall_test(xi)["p_greater"] <= ALPHA for xi in x]))
    loso = float(np.mean(S.sign_flip_pvalues(c3.cross_fitted_fall(x)[0])[0] <= ALPHA))
    print(f"\n[calibration] claim 3 flat series, 12 seeds, {N_SIM} experiments: rule p <= 0.05 in {rule:.3f}, "
          f"leave-one-seed-out + sign-flip {loso:.3f}")
    assert rule <= mc_bound(ALPHA, N_SIM) < loso


def test_seeds_needed_counts_the_comparisons_that_will_join_the_family():
    frame = per_seed_frame({("s", "e2e"): np.arange(4.0) + 5, ("s", "lw"): np.zeros(4), ("s", "q"): np.zeros(4)})
    res, _ = S.paired_comparison(frame, claim="t", part="p", statistic="v")
    assert set(res["verdict"]) == {"underpowered"} and set(res["seeds_needed"]) == {6}  # 2 comparisons: 1/2^6 <= 0.025
    assert all("needs >= 6" in r for r in res["reason"])


# ---------------------------------------------------------------- intervals compatible with Holm
def on_claimed_side(row) -> bool:
    """The rule's boundary: a claimed-side bound of exactly 0 lies on the claimed side (strictly beyond 0)."""
    return row["ci_low"] >= 0 if row["direction"] == "greater" else row["ci_high"] <= 0


def on_other_side(row) -> bool:
    return row["ci_high"] <= 0 if row["direction"] == "greater" else row["ci_low"] >= 0


def assert_intervals_match_verdicts(results: pd.DataFrame) -> None:
    tested = results[results["verdict"] != S.DESCRIPTIVE]
    assert len(tested)
    for _, row in tested.iterrows():
        assert (row["verdict"] == "holds") == on_claimed_side(row), row.to_dict()
        assert (row["verdict"] == "fails") == on_other_side(row), row.to_dict()


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 4), n=st.sampled_from([5, 6, 7, 9, 13]), direction=st.sampled_from(["greater", "less"]),
       effects=st.lists(st.sampled_from([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0]), min_size=4, max_size=4),
       integer=st.booleans(), seed=st.integers(0, 2**16))  # fmt: skip
def test_verdict_holds_iff_the_interval_lies_on_the_claimed_side(k, n, direction, effects, integer, seed):
    """A family of k comparisons (one E2E mode against k others), random effects in both directions,
    integer data (ties, subset means exactly 0) or continuous; sign-flip (<= 12 seeds) and t (13)."""
    rng = np.random.default_rng(seed)
    values = {("s", "e2e"): rng.normal(0, 1, n)}
    for j in range(k):
        values[("s", f"lw{j}")] = values[("s", "e2e")] - effects[j] - rng.normal(0, 1, n)
    if integer:
        values = {key: np.round(v) for key, v in values.items()}
    res, _ = S.paired_comparison(per_seed_frame(values), claim="t", part="p", statistic="v", direction=direction)
    assert len(res) == k
    assert_intervals_match_verdicts(res)


@settings(max_examples=60, deadline=None)
@given(p=st.lists(st.sampled_from([0.0002, 0.004, 0.01, 0.02, 0.03, 0.05, 0.2, 0.6, 0.97, 0.995]), min_size=1,
                  max_size=5), direction=st.sampled_from(["greater", "less"]))  # fmt: skip
def test_claim5_bounds_match_the_holm_decision_in_any_family(p, direction):
    """Claim 5's rows (interval = the sign its permutation test establishes) in families of 1-5."""
    rows = []
    for j, p_claimed in enumerate(p):
        p_greater, p_less = (p_claimed, 1 - p_claimed / 2) if direction == "greater" else (1 - p_claimed / 2, p_claimed)
        rows.append(S.result_row(claim="5", part="gap", dataset=f"d{j}", arch="a", setting="s", mode="e2e+lw",
                                 direction=direction, n_seeds=6, mean=0.1, _kind="permutation", _min_p=1 / 5000,
                                 p_value=p_claimed, p_reverse=p_less if direction == "greater" else p_greater,
                                 _bounds=c5.sign_bounds(p_greater, p_less)))  # fmt: skip
    assert_intervals_match_verdicts(S.decide(rows))


def test_claim5_intervals_match_verdicts_on_real_tables():
    for reverse in (False, True):
        dep, met = simpson_tables(reverse=reverse)
        res, _ = c5.compression_generalization(dep, met, claims.Options(n_perm=199))
        assert_intervals_match_verdicts(res)


def test_compatible_bounds_by_hand():
    """Holm over 2: the first comparison (p 1/64) is rejected (1/64 * 2 <= 0.05), the second (every
    difference 2 but one -1: p 2/64, times 1) as well -> all of the family is rejected: each bound is
    max(0, its own bound at alpha / 2). With a third, flat comparison only the first is rejected
    (1/64 * 3; 2/64 * 2 > 0.05): its bound becomes exactly 0 (strictly above 0), the others' their
    bounds at alpha / (3 - 1)."""
    up = np.arange(6) + 1.0
    mixed = np.array([2.0, 2.0, 2.0, 2.0, 2.0, -1.0])
    frame = per_seed_frame({("s", "e2e"): up, ("s", "lw0"): np.zeros(6), ("s", "lw1"): up - mixed})
    res = S.paired_comparison(frame, claim="t", part="p", statistic="v")[0].set_index("reference_mode")
    assert list(res["verdict"]) == ["holds", "holds"]
    for ref, d in (("lw0", up), ("lw1", mixed)):
        assert res.loc[ref, "ci_low"] == max(0.0, S.sign_flip_bounds(d, ALPHA / 2)[0])
    flat = np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5])
    frame = per_seed_frame({("s", "e2e"): up, ("s", "lw0"): np.zeros(6), ("s", "lw1"): up - mixed,
                            ("s", "lw2"): up - flat})  # fmt: skip
    res = S.paired_comparison(frame, claim="t", part="p", statistic="v")[0].set_index("reference_mode")
    assert res.loc["lw0", "verdict"] == "holds" and res.loc["lw0", "ci_low"] == 0.0
    assert list(res["verdict"]) == ["holds", "inconclusive", "inconclusive"]
    for ref, d in (("lw1", mixed), ("lw2", flat)):
        assert res.loc[ref, "ci_low"] == min(S.sign_flip_bounds(d, ALPHA / 2)[0], S.BELOW_ZERO) < 0
    assert S.sign_flip_bounds(mixed, ALPHA)[0] > 0  # its uncorrected bound would have excluded 0
    assert S.fmt_number(S.BELOW_ZERO) == "-0"


def test_the_issue_example_no_longer_shows_intervals_that_exclude_0_beside_inconclusive():
    """Two comparisons with 5 seeds each, every difference positive: marginal p 1/32, Holm 1/16 > 0.05.
    The uncorrected bounds would exclude 0; the reported ones reach it."""
    up5 = np.arange(5) + 1.0
    frame = per_seed_frame({("s", "e2e"): up5, ("s", "lw0"): np.zeros(5), ("s", "lw1"): np.zeros(5)})
    res, _ = S.paired_comparison(frame, claim="t", part="p", statistic="v")
    assert S.sign_flip_bounds(up5, ALPHA)[0] > 0  # what was reported before
    assert set(res["verdict"]) == {"underpowered"} and (res["ci_low"] < 0).all()
