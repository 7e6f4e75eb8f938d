"""Paper outputs from synthetic tables with known answers: tables, figures, claims, CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from paper_synth import SETTING, synth

from infoplane import cli, contracts
from infoplane.paper import build
from infoplane.paper import claims as C
from infoplane.paper.figures import KINDS
from infoplane.paper.common import Inputs, deep_layers, middle_layers
from infoplane.paper.tables import TABLES
from infoplane.paper.render import Display, Section, latex_escape, to_latex, to_markdown


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    """Figures at 40 dpi: rasterizing the figures dominates these tests' time, and no check depends on it."""
    from infoplane.paper import style

    monkeypatch.setattr(style, "DPI", 40)


def inputs(**kwargs) -> Inputs:
    return Inputs.from_frames(*synth(**kwargs))


def verdicts(table: pd.DataFrame, claim: str) -> set[str]:
    return set(table.loc[table["claim"] == claim, "verdict"])


@pytest.fixture(scope="module")
def paper_like():
    return C.evaluate_claims(inputs())


@pytest.fixture(scope="module")
def reversed_():
    return C.evaluate_claims(inputs(reverse=True))


# ---------------------------------------------------------------- claims, one test each
@pytest.mark.parametrize("claim", ["1", "2", "4", "5"])
def test_claim_holds_on_paper_like_data_and_fails_when_reversed(claim, paper_like, reversed_):
    assert verdicts(paper_like, claim) == {"holds"}
    assert verdicts(reversed_, claim) == {"fails"}
    assert C.overall(paper_like, claim)[0] == "holds"
    assert C.overall(reversed_, claim)[0] == "fails"


def test_claim1_numbers(paper_like):
    row = paper_like[paper_like["claim"] == "1"].iloc[0]
    # deeper half = layers 2, 3, 4: E2E (100 + 90 + 80) / 3 vs flat 40, seed wobble ±0.2 %
    assert row["value"] == pytest.approx(90, rel=0.01) and row["reference"] == pytest.approx(40, rel=0.01)
    assert (row["mode"], row["reference_mode"]) == ("e2e", "layerwise-ce")
    assert row["n_value"] == 3 and row["n_reference"] == 3


def test_claim3_parts(paper_like, reversed_):
    rows = paper_like[paper_like["claim"] == "3"].set_index("part")
    assert list(rows.index) == ["a", "b"] and set(rows["verdict"]) == {"holds"}
    # rise of nHSIC(Y; Z_L), Z_L = layer 3: 0.8 · (2 + 1.5·3); relative fall = c = 0.15 + 0.02·seed
    assert rows.loc["a", "value"] == pytest.approx(0.8 * 6.5)
    assert rows.loc["b", "value"] == pytest.approx(0.17, abs=1e-9)
    assert verdicts(reversed_, "3") == {"fails"}
    assert C.overall(paper_like, "3")[0] == "holds" and C.overall(reversed_, "3")[0] == "fails"


def test_claim5_is_a_perfect_rank_correlation(paper_like, reversed_):
    assert paper_like.loc[paper_like["claim"] == "5", "value"].item() == pytest.approx(-1.0)
    assert reversed_.loc[reversed_["claim"] == "5", "value"].item() == pytest.approx(1.0)


def test_one_seed_is_inconclusive_for_every_claim():
    table = C.evaluate_claims(inputs(seeds=(0,)))
    assert set(table["verdict"]) == {"inconclusive"}
    assert table["reason"].str.contains("seed").all()
    assert all(C.overall(table, c)[0] == "inconclusive" for c in C.claim_ids())


def test_one_mode_is_inconclusive_for_the_layerwise_comparisons():
    table = C.evaluate_claims(inputs(modes=("e2e",)))
    for claim in ("1", "2", "4"):
        rows = table[table["claim"] == claim]
        assert set(rows["verdict"]) == {"inconclusive"}
        assert rows["reason"].str.contains("needs e2e and at least one other mode").all()
    assert verdicts(table, "3") == {"holds"}  # E2E's own bottleneck needs no other mode
    assert verdicts(table, "5") == {"inconclusive"}  # 3 runs < MIN_RUNS


def test_overlapping_seed_spread_is_inconclusive():
    result = C.greater([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert result["verdict"] == "inconclusive" and "overlapping" in result["reason"]
    assert C.greater([10.0, 10.1], [1.0, 1.1])["verdict"] == "holds"
    assert C.greater([1.0, 1.1], [10.0, 10.1])["verdict"] == "fails"
    assert C.above([0.5, 0.6, 0.7], 0.0)["verdict"] == "holds"
    assert C.above([-0.5, 0.6], 0.0)["verdict"] == "inconclusive"


def test_every_mode_is_compared_to_e2e():
    table = C.evaluate_claims(inputs(modes=("e2e", "layerwise-ce", "layerwise-supcon", "sigprop")))
    rows = table[table["claim"] == "4"]
    assert sorted(rows["reference_mode"]) == ["layerwise-ce", "layerwise-supcon", "sigprop"]
    assert set(rows["verdict"]) == {"holds"}


def test_claims_are_registered_with_statement_and_test():
    assert C.claim_ids() == ["1", "2", "3", "4", "5"]
    for name in C.claim_ids():
        spec = C.CLAIMS.get(name)
        assert spec.statement and spec.test


def test_layer_groups():
    assert deep_layers(5) == [2, 3, 4]
    assert deep_layers(10) == [5, 6, 7, 8, 9]
    assert middle_layers(5) == [1, 2]  # blocks 0..3, classifier 4
    assert middle_layers(3) == [0, 1]  # too few blocks: all of them


# ---------------------------------------------------------------- tables, figures, CLI
def test_build_writes_tables_figures_and_claims(tmp_path):
    data = inputs(modes=("e2e", "layerwise-ce", "layerwise_seq-ce"))
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
    # every kind but the sensitivity figure, which needs a sigma or epsilon grid (tests/unit/test_figures.py)
    assert {p.parent.name for p in figures} == set(KINDS) - {"sensitivity"}
    for path in figures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "table5_compression_by_estimator.md").read_text().count("| toy | net | ") == 15

    claims = pd.read_parquet(tmp_path / "claims.parquet")
    assert list(claims.columns) == C.COLUMNS
    assert set(claims["verdict"]) == {"holds"}
    md = (tmp_path / "claims.md").read_text()
    for name in C.claim_ids():
        assert f"## Claim {name}: holds" in md
    assert (tmp_path / "claims.html").read_text().count("<table>") == 6


def test_cli_with_one_seed_and_one_mode(tmp_path, caplog):
    for name, frame in zip(contracts.TABLES, synth(modes=("e2e",), seeds=(0,))):
        contracts.TABLES[name].write(frame, contracts.table_file(tmp_path / "tables", name))
    out = tmp_path / "paper"
    with caplog.at_level("INFO", logger="infoplane"):
        args = ["paper", "--tables", str(tmp_path / "tables"), "--out-dir", str(out), "--experiment", "tiny"]
        assert cli.main(args) == 0
    claims = contracts.CLAIMS.read(out / "claims.parquet")
    assert set(claims["verdict"]) == {"inconclusive"}
    assert "1 seed per cell" in (out / "table1_accuracy.md").read_text()
    assert "claim 1: inconclusive" in caplog.text


def test_two_estimator_settings_are_kept_apart():
    metrics, dependence, probes = synth()
    other = dependence.assign(estimator="cka", value_xz=dependence["value_xz"] / 200, value_yz=dependence["value_yz"] / 20)
    data = Inputs.from_frames(metrics, pd.concat([dependence, other]), probes)
    settings = data.settings()
    assert len(settings) == 2 and len({slug for _, slug in settings}) == 2
    table = C.evaluate_claims(data)
    assert sorted(table.loc[table["claim"] == "1", "setting"].str.split(";").str[0]) == ["cka", "nocco"]
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
