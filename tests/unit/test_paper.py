"""Paper outputs from synthetic tables with known answers: tables, figures, claims, CLI."""

from __future__ import annotations

import html
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from paper_synth import SETTING, as_setting, synth

from infoplane import cli, contracts
from infoplane.paper import build
from infoplane.paper import claims as C
from infoplane.paper import rule as S
from infoplane.paper.claims import data as D
from infoplane.paper.claims import registry
from infoplane.paper.figures import KINDS
from infoplane.registry import Registry
from infoplane.paper.common import Inputs, deep_layers, middle_layers
from infoplane.paper.tables import TABLES
from infoplane.paper.render import Display, Section, latex_escape, to_latex, to_markdown


FAST = C.Options(n_perm=199)  # claim 5's draws, fewer for speed (smallest p 1/200)
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("low_resolution")  # figures at 40 dpi (tests/conftest.py)


def inputs(**kwargs) -> Inputs:
    return Inputs.from_frames(*synth(**kwargs))


def with_dependence(extra: pd.DataFrame, **kwargs) -> Inputs:
    """The synthetic tables plus more dependence rows (other estimator settings)."""
    metrics, dependence, probes = synth(**kwargs)
    return Inputs.from_frames(metrics, pd.concat([dependence, extra], ignore_index=True), probes)


def primary_rows(results: pd.DataFrame, claim: str) -> pd.DataFrame:
    rows = results[(results["claim"] == claim) & (results["verdict"] != "descriptive")]
    return rows[rows["primary"]]


@pytest.fixture(scope="module")
def paper_like():
    return C.evaluate(inputs(), FAST)


@pytest.fixture(scope="module")
def reversed_():
    return C.evaluate(inputs(reverse=True), FAST)


# ---------------------------------------------------------------- claims: verdicts known by construction
@pytest.mark.parametrize("claim", ["1", "2", "3", "4", "5"])
def test_claim_holds_on_paper_like_data_and_fails_when_reversed(claim, paper_like, reversed_):
    assert C.headline_verdicts(paper_like.results)[claim] == "holds"
    assert C.headline_verdicts(reversed_.results)[claim] == "fails"
    assert set(primary_rows(paper_like.results, claim)["verdict"]) == {"holds"}
    assert "fails" in set(primary_rows(reversed_.results, claim)["verdict"])
    if claim in ("1", "2", "4"):  # a failing line quotes the p-value that decided it: 1/64 against the claim
        assert "corrected p against the claim 0.016" in reversed_.summaries.set_index("claim").loc[claim, "line"]


def test_claim1_is_the_paired_excess_with_the_raw_value_beside_it(paper_like):
    _, dependence, _ = synth()
    row = primary_rows(paper_like.results, "1").iloc[0]
    assert (row["mode"], row["reference_mode"], row["n_seeds"]) == ("e2e", "layerwise-ce", 6)
    # naive reference: per seed, mean over blocks 2, 3 at the last epoch of E2E minus layer-wise
    last = dependence[(dependence["epoch"] == 10) & dependence["layer"].isin([2, 3])]
    per_seed = last.groupby(["mode", "seed"])[["excess_xz", "value_xz"]].mean()
    diff = per_seed.loc["e2e"] - per_seed.loc["layerwise-ce"]
    assert row["mean"] == pytest.approx(diff["excess_xz"].mean()) and row["mean"] == pytest.approx(27.5 * 1.003)
    assert row["raw_mean"] == pytest.approx(diff["value_xz"].mean()) == pytest.approx(2 * row["mean"])
    assert row["p_value"] == pytest.approx(1 / 64) and row["test"].startswith("exact sign-flip (6 seeds")
    # the interval inverts the test: the 3rd smallest of the 63 subset means (K = floor(0.05 * 64) - 1 = 2)
    d = diff["excess_xz"].to_numpy()
    means = sorted(d[list(c)].mean() for k in range(1, 7) for c in itertools.combinations(range(6), k))
    assert row["ci_low"] == pytest.approx(means[2]) and row["ci_high"] == pytest.approx(means[-3])
    assert bool(row["headline"]) and row["setting"] == paper_like.headline_setting


def test_differences_are_one_row_per_seed_of_each_comparison(paper_like):
    diffs = paper_like.differences
    claim1 = diffs[(diffs["claim"] == "1") & (diffs["part"] == "deeper_blocks")]
    assert sorted(claim1["seed"]) == list(range(6))
    assert np.allclose(claim1["difference"], claim1["value"] - claim1["reference"])
    row = primary_rows(paper_like.results, "1").iloc[0]
    assert claim1["difference"].mean() == pytest.approx(row["mean"])


def test_one_seed_is_underpowered_and_says_how_many_seeds_are_needed():
    report = C.evaluate(inputs(seeds=(0,)), FAST)
    rows = report.results[report.results["verdict"] != "descriptive"]
    assert set(rows["verdict"]) == {"underpowered"}
    assert rows["reason"].str.contains(r"needs >= 5").all(), rows["reason"].tolist()
    assert set(C.headline_verdicts(report.results).values()) == {"underpowered"}
    assert "claim 1: underpowered" in C.summary_line(report.results)


def test_three_comparisons_with_three_seeds_need_six():
    report = C.evaluate(inputs(modes=("e2e", "layerwise-ce", "layerwise-supcon", "sigprop"), seeds=(0, 1, 2)), FAST)
    rows = primary_rows(report.results, "4")
    assert len(rows) == 3 and set(rows["verdict"]) == {"underpowered"} and set(rows["seeds_needed"]) == {6}
    assert rows["reason"].str.contains("needs >= 6").all()


def test_every_mode_is_compared_to_e2e_with_holm_over_the_modes():
    report = C.evaluate(inputs(modes=("e2e", "layerwise-ce", "layerwise-supcon", "sigprop")), FAST)
    for claim in ("1", "2", "4"):
        rows = primary_rows(report.results, claim)
        assert sorted(rows["reference_mode"]) == ["layerwise-ce", "layerwise-supcon", "sigprop"]
        assert set(rows["verdict"]) == {"holds"} and set(rows["family_size"]) == {3}
        assert np.allclose(rows["p_corrected"], 3 / 64)  # Holm over 3 equal p-values of 1/64


def test_one_mode_leaves_the_comparisons_inconclusive_and_claim3_decided():
    report = C.evaluate(inputs(modes=("e2e",)), FAST)
    verdicts = C.headline_verdicts(report.results)
    assert verdicts["3"] == "holds"  # E2E's own bottleneck needs no other mode
    for claim in ("1", "2", "4"):
        assert verdicts[claim] == "inconclusive"
        assert primary_rows(report.results, claim)["reason"].str.contains("needs an e2e mode and another mode").all()


def test_robustness_matrix_and_lines_on_two_settings_that_disagree():
    """nocco (the protocol) sees the paper-like profile, cka_unbiased the reversed one."""
    _, flipped, _ = synth(reverse=True)
    data = with_dependence(as_setting(flipped, estimator="cka_unbiased", epsilon=math.nan))
    report = C.evaluate(data, FAST)
    nocco, cka = report.headline_setting, next(s for s in data.dependence["setting"].unique() if s.startswith("cka"))
    assert nocco.startswith("nocco") and "protocol" in report.headline_note
    assert "not measured" not in report.headline_note
    assert report.matrix.loc["1", nocco] == "holds" and report.matrix.loc["1", cka] == "fails"
    lines = report.lines.set_index("claim")
    assert lines.loc["1", "line"] == "holds under 1 of 2 settings; fails under 1 (holds only under one setting)"
    assert lines.loc["1", "holds_only_under_one"]
    assert "does not depend on the estimator setting" in lines.loc["4", "line"]
    assert C.headline_verdicts(report.results)["1"] == "holds"  # the headline is the protocol's verdict
    md = C.claims_markdown(report, "header")
    assert "holds under 1 of 2 settings; fails under 1 (holds only under one setting)" in md
    ids = report.settings.set_index("setting")["id"]
    assert f"| {ids[nocco]} (protocol) | {nocco} |" in md and f"| {ids[cka]} | {cka} |" in md
    assert "(holds under 1 of 2 settings)" in C.summary_line(report.results)


def test_without_the_protocol_the_first_setting_is_the_headline_and_said_so():
    _, dependence, _ = synth()
    metrics, _, probes = synth()
    data = Inputs.from_frames(metrics, as_setting(dependence, kernel_y="linear"), probes)
    report = C.evaluate(data, FAST)
    assert report.headline_setting == data.settings()[0][0]
    assert "was not measured; the first setting is used" in report.headline_note
    assert "was not measured; the first setting is used" in C.claims_markdown(report, "h")


def test_raw_values_are_reported_beside_the_excess_and_never_decide():
    """A layer-wise null raised by 100 (scale, not dependence): the raw values reverse, the excess does not."""
    metrics, dependence, probes = synth()
    lw = dependence["mode"] != "e2e"
    for col in ("value_xz", "null_xz_mean"):
        dependence.loc[lw, col] += 100.0
    report = C.evaluate(Inputs.from_frames(metrics, dependence, probes), FAST)
    row = primary_rows(report.results, "1").iloc[0]
    assert row["verdict"] == "holds" and row["mean"] > 0 > row["raw_mean"]
    assert row["raw_ci_high"] < 0


def test_an_estimator_without_a_null_for_x_uses_its_raw_value_and_says_so():
    _, dependence, _ = synth()
    binning = as_setting(dependence, estimator="binning", kernel_x=pd.NA, kernel_y=pd.NA, kernel_z=pd.NA,
                         sigma=math.nan, bandwidth=pd.NA, epsilon=math.nan, bins=30, bin_range="snapshot",
                         unit="bits", null_xz_mean=math.nan, null_xz_std=math.nan, excess_xz=math.nan, p_xz=math.nan)
    report = C.evaluate(with_dependence(binning), FAST)
    basis = report.settings.set_index("setting")
    label = next(s for s in basis.index if s.startswith("binning"))
    assert basis.loc[label, "basis_xz"] == D.RAW and basis.loc[label, "basis_yz"] == D.EXCESS
    rows = primary_rows(report.results, "1")
    by_setting = rows.set_index("setting")["mean"]
    assert by_setting[label] == pytest.approx(2 * by_setting[report.headline_setting])  # raw = 2 x excess here
    assert f"the raw value of I(X;T) is used under {basis.loc[label, 'id']}" in C.claims_markdown(report, "h")


def test_a_setting_measured_without_permutations_is_left_out_and_named():
    _, dependence, _ = synth()
    bare = as_setting(dependence, sigma=1.0, permutations=0, null_xz_mean=math.nan, null_yz_mean=math.nan,
                      excess_xz=math.nan, excess_yz=math.nan, p_xz=math.nan, p_yz=math.nan)
    report = C.evaluate(with_dependence(bare), FAST)
    assert set(report.results["setting"]) == {report.headline_setting, S.NO_SETTING}
    assert len(report.left_out) == 1 and "σ=1" in report.left_out[0] and "permutations > 0" in report.left_out[0]
    assert "Left out of the claims" in C.claims_markdown(report, "h")


def test_claims_outputs_hold_the_same_content_and_a_figure_per_claim(tmp_path, paper_like):
    written = C.write_claims(paper_like, tmp_path, "Experiment `synthetic`")
    assert [p.name for p in written] == ["claims.parquet", "claim_differences.parquet", "claims.md", "claims.html"]
    table = contracts.CLAIMS.read(tmp_path / "claims.parquet")
    assert list(table.columns) == C.COLUMNS == list(contracts.CLAIMS.columns)
    assert list(contracts.CLAIM_DIFFERENCES.columns) == S.DIFFERENCE_COLUMNS
    assert len(contracts.CLAIM_DIFFERENCES.read(tmp_path / "claim_differences.parquet")) == len(paper_like.differences)
    md = (tmp_path / "claims.md").read_text()
    html_text = (tmp_path / "claims.html").read_text()
    order = [md.index(h) for h in ("## Verdicts", "## Robustness across estimator settings", "## Claim 1 ",
                                   "## Claim 5 ")]  # fmt: skip
    assert order == sorted(order)
    for name in C.claim_ids():
        assert f"- **Claim {name}: holds** — " in md
    assert "compatible with those Holm decisions" in md and "(compatible with Holm)" in md
    assert html_text.count("<table>") == 3 + len(C.claim_ids())
    for r in table.itertuples():  # every comparison's verdict and reason in both renderings
        assert r.reason.replace("|", "\\|") in md and html.escape(r.reason) in html_text
    figures = C.claim_figures(paper_like.results, paper_like.differences, tmp_path / "figures")
    assert [p.name for p in figures] == [f"claim{c}.png" for c in C.claim_ids()]
    assert all(p.read_bytes()[:8] == PNG for p in figures)


def test_several_dataset_arch_get_one_figure_each(tmp_path):
    first, second = synth(seeds=(0, 1)), synth(seeds=(0, 1), dataset="toy2")
    data = Inputs.from_frames(*(pd.concat([a, b], ignore_index=True) for a, b in zip(first, second)))
    report = C.evaluate(data, FAST)
    figures = C.claim_figures(report.results, report.differences, tmp_path)
    assert sorted(p.name for p in figures) == sorted(f"claim{c}_{d}_net.png" for c in C.claim_ids()
                                                     for d in ("toy", "toy2"))  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG for p in figures)


def test_claims_are_registered_and_adding_one_is_one_function(monkeypatch):
    assert C.claim_ids() == ["1", "2", "3", "4", "5"]
    for name in C.claim_ids():
        spec = C.CLAIMS.get(name)
        assert spec.title and spec.statement and spec.statistic and spec.mean
    fresh = Registry("claim")
    for name in C.claim_ids():
        fresh.register(name)(C.CLAIMS.get(name))
    monkeypatch.setattr(registry, "CLAIMS", fresh)

    @C.claim("6", title="probe accuracy", statement="s", statistic="last-epoch probe accuracy", mean="E2E − other")
    def probe_accuracy(dependence, metrics, options):
        test = metrics[(metrics["layer_name"] == "classifier") & (metrics["split"] == "test")]
        per_seed = test.groupby(["dataset", "arch", "mode", "seed"])
        frame = per_seed["accuracy"].max().rename("value").reset_index().assign(setting=S.NO_SETTING)
        return S.paired_comparison(frame, claim="6", part="accuracy", statistic="max accuracy", alpha=options.alpha)

    metrics, dependence, _ = synth()
    results, _ = C.evaluate_claims(dependence.assign(setting="s"), metrics, FAST, claims=["4", "6"])
    assert list(results["claim"]) == ["4", "6"] and results["verdict"].tolist() == ["holds", "holds"]

    @C.claim("7", title="t", statement="s", statistic="s", mean="m")
    def wrong(dependence, metrics, options):
        return pd.DataFrame({"claim": ["7"]}), pd.DataFrame()

    with pytest.raises(ValueError, match="claim 7 returned columns.*use rule.decide"):
        C.evaluate_claims(dependence.assign(setting="s"), metrics, FAST, claims=["7"])


def test_layer_groups():
    assert deep_layers(5) == [2, 3, 4]
    assert deep_layers(10) == [5, 6, 7, 8, 9]
    assert middle_layers(5) == [1, 2]  # blocks 0..3, classifier 4
    assert middle_layers(3) == [0, 1]  # too few blocks: all of them


# ---------------------------------------------------------------- tables, figures, CLI
def test_build_writes_tables_figures_and_claims(tmp_path):
    data = inputs(modes=("e2e", "layerwise-ce", "layerwise_seq-ce"), seeds=(0, 1, 2))
    written = build(data, tmp_path, "synthetic")
    for name in ("table1_accuracy", "table2_separability", "table3_dependence", "table4_compression"):
        for suffix in (".parquet", ".md", ".tex", ".html"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 0
        md = (tmp_path / f"{name}.md").read_text()
        assert "Experiment `synthetic`" in md and "nocco" in md and "σ=5" in md and "ε=1e-05" in md
        assert "3 seeds per cell" in md
        tex = (tmp_path / f"{name}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex and "\\begin{tabular}" in tex

    acc = pd.read_parquet(tmp_path / "table1_accuracy.parquet").set_index("mode")
    assert acc.loc["e2e", "mean"] == pytest.approx(0.97) and acc.loc["e2e", "std"] == pytest.approx(0.002)
    assert acc.loc["layerwise-ce", "mean"] == pytest.approx(0.93)  # aux-head rows ignored
    assert acc["best"].tolist() == [True, False, False]
    md1 = (tmp_path / "table1_accuracy.md").read_text()
    assert "**97.00 ± 0.20**" in md1 and "| e2e | layerwise-ce | layerwise_seq-ce |" in md1
    assert "\\textbf{97.00 $\\pm$ 0.20}" in (tmp_path / "table1_accuracy.tex").read_text()

    sep = pd.read_parquet(tmp_path / "table2_separability.parquet")
    e2e_sep = sep[sep["mode"] == "e2e"].sort_values("layer")["mean"].to_numpy()
    assert e2e_sep == pytest.approx([0.9 + 0.015 * layer for layer in range(5)])

    nh = pd.read_parquet(tmp_path / "table3_dependence.parquet")
    row = nh[(nh["mode"] == "e2e") & (nh["layer"] == 4)].iloc[0]
    assert row["xz_mean"] == pytest.approx(80, rel=0.01) and row["yz_mean"] == pytest.approx(8.0)

    comp = pd.read_parquet(tmp_path / "table4_compression.parquet")
    row = comp[(comp["mode"] == "e2e") & (comp["layer"] == 0)].iloc[0]
    # peak − final = final · c / (1 − c), c = 0.15, 0.17, 0.19 over seeds
    expected = [120 * (1 + 0.002 * (s - 1)) * c / (1 - c) for s, c in zip((0, 1, 2), (0.15, 0.17, 0.19))]
    assert row["compression_mean"] == pytest.approx(sum(expected) / 3)
    assert (comp.loc[comp["mode"] != "e2e", "compression_mean"] == 0).all()
    assert "gen. gap (train − test, %)" in (tmp_path / "table4_compression.md").read_text()

    figures = written["figures"]
    # every kind but the sensitivity figure, which needs a sigma or epsilon grid (tests/unit/test_figures.py),
    # and the geometry figure, which needs the probes' nc1 (these synthetic probes have none: test_geometry.py)
    assert {p.parent.name for p in figures} == set(KINDS) - {"sensitivity", "geometry"}
    assert (tmp_path / "figures" / "geometry").is_dir()
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "table5_compression_by_estimator.md").read_text().count("| toy | net | ") == 15

    assert sorted(p.name for p in figures if p.parent.name == "claims") == [f"claim{c}.png" for c in C.claim_ids()]
    claims = contracts.CLAIMS.read(tmp_path / "claims.parquet")  # 3 seeds: below the rule's 5
    assert set(claims.loc[claims["verdict"] != "descriptive", "verdict"]) == {"underpowered"}
    md = (tmp_path / "claims.md").read_text()
    for name in C.claim_ids():
        assert f"## Claim {name} ({C.CLAIMS.get(name).title}): underpowered" in md
    assert (tmp_path / "claims.html").read_text().count("<table>") == 3 + len(C.claim_ids())
    assert [p.name for p in written["claims"]] == ["claims.parquet", "claim_differences.parquet", "claims.md",
                                                   "claims.html"]  # fmt: skip


def test_cli_with_one_seed_and_one_mode(tmp_path, caplog):
    for name, frame in zip(contracts.TABLES, synth(modes=("e2e",), seeds=(0,))):
        contracts.TABLES[name].write(frame, contracts.table_file(tmp_path / "tables", name))
    out = tmp_path / "paper"
    with caplog.at_level("INFO", logger="infoplane"):
        args = ["paper", "--tables", str(tmp_path / "tables"), "--out-dir", str(out), "--experiment", "tiny"]
        assert cli.main(args) == 0
    claims = contracts.CLAIMS.read(out / "claims.parquet")
    assert set(claims.loc[claims["verdict"] != "descriptive", "verdict"]) == {"inconclusive", "underpowered"}
    assert "1 seed per cell" in (out / "table1_accuracy.md").read_text()
    assert "claim 1: inconclusive, claim 2: inconclusive, claim 3: underpowered" in caplog.text
    assert (out / "figures" / "claims" / "claim3.png").read_bytes()[:8] == PNG


def test_two_estimator_settings_are_kept_apart():
    metrics, dependence, probes = synth()
    other = dependence.assign(estimator="cka", value_xz=dependence["value_xz"] / 200, value_yz=dependence["value_yz"] / 20)
    data = Inputs.from_frames(metrics, pd.concat([dependence, other]), probes)
    settings = data.settings()
    assert len(settings) == 2 and len({slug for _, slug in settings}) == 2
    table = C.evaluate(data, FAST).results
    assert sorted(primary_rows(table, "1")["setting"].str.split(";").str[0]) == ["cka", "nocco"]
    tidy, display = TABLES["table3_dependence"](data, data.header("two"))
    assert len(display.sections) == 2
    cka = tidy[(tidy["setting"].str.startswith("cka")) & (tidy["mode"] == "e2e") & (tidy["layer"] == 4)]
    assert cka["xz_mean"].item() == pytest.approx(80 / 200, rel=0.01)  # not mixed with the nocco values


def test_missing_column_is_named():
    metrics, dependence, probes = synth(seeds=(0,))
    with pytest.raises(ValueError, match=r"the dependence table lacks column\(s\) \['sigma'\]"):
        Inputs.from_frames(metrics, dependence.drop(columns="sigma"), probes)


def test_renderers_escape_and_bold():
    display = Display("T_1", "h & 50%", [Section(["a_b", "c"], [["x|y", "1 ± 2"]], [[False, True]])])
    md = to_markdown(display)
    assert "x\\|y" in md and "**1 ± 2**" in md
    tex = to_latex(display)
    assert "a\\_b" in tex and "\\textbf{1 $\\pm$ 2}" in tex and "h \\& 50\\%" in tex
    assert latex_escape("σ=5, ε=1e-05") == "$\\sigma$=5, $\\varepsilon$=1e-05"
    assert not math.isnan(SETTING["sigma"])
