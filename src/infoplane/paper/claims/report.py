"""What a reader sees of the claims: every claim under every estimator setting, the headline.

`evaluate` runs every registered claim under every estimator setting present (on the declared
split; each other split measured adds its settings as "<setting> · <split> split"), adds the same
statistic on the raw values (`raw_*`, reported, never deciding), picks the headline setting (the
paper's protocol when measured), and condenses: the matrix setting x claim of verdicts, "holds
under k of n settings; fails under j" per claim, one summary line per claim. `write_claims`
writes `claims.parquet` (`contracts.CLAIMS`), `claim_differences.parquet`
(`contracts.CLAIM_DIFFERENCES`), `claims.md` and `claims.html` (the same content). Settings
measured without permutations are left out of the claims, named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ... import contracts, io
from ...estimators.settings import MEASUREMENT_DEFAULTS, SETTINGS
from ..common import Inputs
from ..render import Display, Section, to_html
from ..rule import (DESCRIPTIVE, NO_SETTING, RESULT_COLUMNS, combine_verdicts, comparison_verdicts, fmt_number,
                    robustness, seeds_text)  # fmt: skip
from .data import dependence_basis, raw_dependence
from .registry import CLAIMS, Claim, Options, claim_ids, evaluate_claims

VERDICT_TEXT = {
    "holds": "the claimed direction is significant (one-sided, Holm-corrected p <= 0.05, interval on that side of 0)",
    "fails": "the opposite direction is significant: the data contradict the claim",
    "underpowered": "too few seeds for any verdict; the reason says how many are needed",
    "inconclusive": "enough seeds, significant in neither direction (or a statistic that cannot be formed)",
    "descriptive": "reported for comparison, never tested",
    "mixed": "(matrix only) some comparisons hold, others fail",
}

#: The paper's protocol (docs/method.md): the setting of the headline verdicts when it was measured,
#: nocco's declared defaults.
PROTOCOL = {"estimator": "nocco", **SETTINGS.get("nocco").defaults()}
PROTOCOL_TEXT = ("nocco, kernels X/Y/Z {kernel_x}/{kernel_y}/{kernel_z}, σ = {sigma:g} {bandwidth}, ε = {eps}"
                 .format(**PROTOCOL, eps=f"{PROTOCOL['epsilon']:g}".replace("e-0", "e-")))
PROTOCOL_BATCH = MEASUREMENT_DEFAULTS["batch_size"]  # the paper's m, the measurement's default

EXTRA_COLUMNS = ["headline", "raw_mean", "raw_ci_low", "raw_ci_high"]
COLUMNS = [*RESULT_COLUMNS, *EXTRA_COLUMNS]


def protocol_setting(dependence: pd.DataFrame) -> str | None:
    """The setting label of the paper's protocol (PROTOCOL; batch 128 preferred when several batch
    sizes were measured), or None when the table has no such rows."""
    if dependence.empty or not {*PROTOCOL, "setting", "batch_size"} <= set(dependence.columns):
        return None
    match = pd.Series(True, index=dependence.index)
    for key, want in PROTOCOL.items():
        column = dependence[key]
        if isinstance(want, float):
            match &= np.isclose(column.astype("float64"), want, rtol=1e-9, atol=0)
        else:
            match &= column.astype("string").fillna("") == want
    found = dependence.loc[match, ["setting", "batch_size"]].drop_duplicates()
    if found.empty:
        return None
    preferred = found[found["batch_size"] == PROTOCOL_BATCH]
    return sorted((preferred if len(preferred) else found)["setting"])[0]


@dataclass
class ClaimsReport:
    """Everything the claims outputs show. settings: one row per estimator setting used (id "S1"..,
    setting, basis_xz, basis_yz, protocol); left_out: settings without evidence, each with why."""

    results: pd.DataFrame
    differences: pd.DataFrame
    headline_setting: str
    headline_note: str
    settings: pd.DataFrame
    left_out: list[str]
    matrix: pd.DataFrame
    lines: pd.DataFrame
    summaries: pd.DataFrame


def split_settings(dependence: pd.DataFrame, declared: str) -> pd.DataFrame:
    """The dependence rows with every split but `declared` made a setting of its own ("<setting> ·
    train split"): the claims are decided on the declared split, and another split's verdicts are
    extra rows of the robustness matrix, never the headline."""
    other = dependence["split"].astype(str) != declared
    if not other.any():
        return dependence
    out = dependence.copy()
    split = out.loc[other, "split"].astype(str)
    out.loc[other, "setting"] = out.loc[other, "setting"] + " · " + split + " split"
    out.loc[other, "setting_slug"] = out.loc[other, "setting_slug"] + "-" + split
    return out


def _without_evidence(dependence: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop the settings with rows measured without permutations (no null, so no excess to judge)."""
    if dependence.empty or "permutations" not in dependence:
        return dependence, []
    none = dependence.loc[dependence["permutations"] == 0, "setting"].unique()
    notes = [f"{setting}: measured without a permutation null (permutations = 0), so there is no excess to judge; "
             f"set dependence.permutations > 0 and rerun the dependence stage" for setting in sorted(none)]
    return dependence[~dependence["setting"].isin(none)], notes


def _match_key(frame: pd.DataFrame) -> pd.Series:
    """Row identity for pairing excess and raw results; claim 5's tested row is named by the modes it
    used, which may differ between the two, so it is matched by its part and setting only."""
    tested5 = (frame["claim"] == "5") & (frame["verdict"] != DESCRIPTIVE)
    mode = frame["mode"].astype(str).where(~tested5, "*")
    cols = [frame[c].astype(str) for c in ("claim", "part", "dataset", "arch", "setting")]
    return pd.Series(["|".join(t) for t in zip(*cols, mode, frame["reference_mode"].astype(str))], index=frame.index)


def _with_raw(results: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """results plus raw_mean / raw_ci_low / raw_ci_high from the same statistic on the raw values."""
    out = results.copy()
    for col in ("raw_mean", "raw_ci_low", "raw_ci_high"):
        out[col] = math.nan
    if raw.empty or out.empty:
        return out
    raw = raw[raw["setting"] != NO_SETTING]
    lookup = raw.assign(_key=_match_key(raw)).drop_duplicates("_key").set_index("_key")
    key = _match_key(out)
    found = key.isin(lookup.index) & (out["setting"] != NO_SETTING)
    for col, src in (("raw_mean", "mean"), ("raw_ci_low", "ci_low"), ("raw_ci_high", "ci_high")):
        out.loc[found, col] = lookup.loc[key[found], src].to_numpy(np.float64)
    return out


def evaluate(inputs: Inputs, options: Options = Options()) -> ClaimsReport:
    """Every claim under every estimator setting present, with the raw companions, the headline
    setting, the robustness matrix and lines, and one summary line per claim."""
    declared = inputs.declared_split()
    dependence, left_out = _without_evidence(split_settings(inputs.dependence, declared))
    results, differences = evaluate_claims(dependence, inputs.metrics, options)
    raw = pd.DataFrame(columns=RESULT_COLUMNS)
    if len(dependence):
        dependent = [c for c in claim_ids() if c != "4"]  # claim 4 reads no dependence
        raw, _ = evaluate_claims(raw_dependence(dependence), inputs.metrics, options, claims=dependent)
    results = _with_raw(results, raw)

    measured = sorted(set(dependence["setting"])) if len(dependence) else []
    on_declared = dependence[dependence["split"] == declared] if len(dependence) else dependence
    protocol = protocol_setting(on_declared)
    if protocol is not None:
        headline, note = protocol, f"the paper's protocol ({PROTOCOL_TEXT})"
    elif measured:
        headline = sorted(set(on_declared["setting"]))[0] if len(on_declared) else measured[0]
        note = f"the paper's protocol ({PROTOCOL_TEXT}) was not measured; the first setting is used"
    else:
        headline, note = NO_SETTING, "no dependence setting was measured"
    results["headline"] = results["setting"].isin([headline, NO_SETTING])
    results = contracts.CLAIMS.conform(results[COLUMNS], "claims")
    differences = contracts.CLAIM_DIFFERENCES.conform(differences, "claim differences")

    settings = dependence_basis(dependence) if len(dependence) else pd.DataFrame(
        columns=["setting", "basis_xz", "basis_yz"])  # fmt: skip
    settings = settings.set_index("setting").reindex(measured).reset_index()
    settings.insert(0, "id", [f"S{i + 1}" for i in range(len(settings))])
    settings["protocol"] = settings["setting"] == protocol
    matrix, lines = robustness(results) if len(results) else (pd.DataFrame(), pd.DataFrame(
        columns=["claim", "n_settings", "holds_under", "fails_under", "holds_only_under_one", "line"]))  # fmt: skip
    tested = set(results["setting"]) - {NO_SETTING}
    primary = headline if headline in tested else (sorted(tested)[0] if tested else None)
    summaries = claim_summaries(results, primary_setting=primary) if len(results) else pd.DataFrame(
        columns=["claim", "verdict", "line"])  # fmt: skip
    return ClaimsReport(results, differences, headline, note, settings, left_out, matrix, lines, summaries)


def headline_verdicts(results: pd.DataFrame) -> dict[str, str]:
    """claim -> its verdict under the headline setting (rows with `headline`), every registered claim."""
    sub = results[results["headline"].astype(bool)]
    settings = sorted(set(sub["setting"]) - {NO_SETTING})
    summaries = claim_summaries(sub, primary_setting=settings[0] if settings else None) if len(sub) else None
    found = {} if summaries is None else dict(zip(summaries["claim"], summaries["verdict"]))
    return {name: found.get(name, "inconclusive") for name in claim_ids()}


def summary_line(results: pd.DataFrame) -> str:
    """One line for a log: each claim's headline verdict and how many settings it holds under."""
    verdicts = headline_verdicts(results)
    _, lines = robustness(results) if len(results) else (None, pd.DataFrame(columns=["claim"]))
    lines = lines.set_index("claim")
    parts = []
    for name, verdict in verdicts.items():
        extra = ""
        if name in lines.index and lines.loc[name, "n_settings"] > 1:
            extra = f" (holds under {lines.loc[name, 'holds_under']} of {lines.loc[name, 'n_settings']} settings)"
        parts.append(f"claim {name}: {verdict}{extra}")
    setting = sorted(set(results.loc[results["headline"].astype(bool), "setting"]) - {NO_SETTING})
    return ", ".join(parts) + (f" [headline setting: {setting[0]}]" if setting else "")


# ------------------------------------------------------------------------------ what a reader sees
def _num(x: float, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt_number(float(x), digits)


def _interval(low: float, high: float) -> str:
    if math.isnan(low) and math.isnan(high):
        return ""
    return f"[{fmt_number(float(low))}, {fmt_number(float(high))}]"


def _who(r) -> str:
    return f"{r.mode} vs {r.reference_mode}" if r.reference_mode else str(r.mode)


COMPARISON_COLUMNS = ["dataset", "arch", "setting", "mode vs reference", "part", "statistic", "n seeds", "mean",
                      "interval", "effect size", "p", "corrected p", "test", "verdict", "reason",
                      "raw value: mean [interval]"]  # fmt: skip


def comparison_rows(results: pd.DataFrame, ids: dict[str, str] | None = None) -> list[list[str]]:
    """The per-comparison table's cells, one row per result row (same order); `ids` shortens the
    setting labels (label -> "S1", ...; the legend is the matrix)."""
    ids = ids or {}
    rows = []
    for r in results.itertuples():
        part = r.part + ("" if r.primary else " (secondary)")
        raw = "" if math.isnan(r.raw_mean) else f"{_num(r.raw_mean)} {_interval(r.raw_ci_low, r.raw_ci_high)}"
        rows.append([r.dataset, r.arch, ids.get(r.setting, r.setting), _who(r), part, r.statistic, str(r.n_seeds),
                     _num(r.mean), _interval(r.ci_low, r.ci_high), _num(r.effect_size), _num(r.p_value, 2),
                     _num(r.p_corrected, 2), r.test, r.verdict, r.reason, raw])  # fmt: skip
    return rows


def _short(setting: str, settings: pd.DataFrame) -> str:
    ids = dict(zip(settings["setting"], settings["id"]))
    return f"{ids[setting]}: {setting}" if setting in ids else setting


def _sections(report: ClaimsReport) -> list[tuple[str, list[str], Section | None]]:
    """(heading, paragraphs, table) in reading order; the Markdown and the HTML render the same list."""
    out = []
    where = report.headline_setting
    where_text = f"`{_short(where, report.settings)}`" if where != NO_SETTING else "(none)"
    heads = [f"Headline setting: {where_text}: {report.headline_note}. p-values are one-sided, corrected by Holm "
             "within one claim part and setting; intervals are the one-sided bounds compatible with those Holm "
             "decisions (Strassburger & Bretz 2008), each from inverting the comparison's own test (claim 5: the "
             "sign of ρ its permutation test establishes): a claimed-side bound of 0 means strictly beyond 0, -0 / "
             "+0 that 0 is inside; so a verdict holds exactly when its interval lies on the claimed side of 0."]
    summary = [[r.claim, r.verdict, r.line] for r in report.summaries.itertuples()]
    out.append(("Verdicts", heads, Section(["claim", "verdict", "under the headline setting"], summary,
                                            [[False, True, False] for _ in summary], title="Verdicts")))
    # the matrix setting x claim and the robustness lines
    claims = [c for c in claim_ids() if c in set(report.results["claim"])]
    matrix = report.matrix
    rows, bold = [], []
    for s in report.settings.itertuples():
        cells = [s.id + (" (protocol)" if s.protocol else ""), s.setting, f"X: {s.basis_xz}; Y: {s.basis_yz}"]
        cells += [matrix.loc[c, s.setting] if s.setting in matrix.columns and c in matrix.index
                  and isinstance(matrix.loc[c, s.setting], str) else "–" for c in claims]  # fmt: skip
        rows.append(cells)
        bold.append([False] * 3 + [v in ("holds", "fails") for v in cells[3:]])
    if NO_SETTING in matrix.columns:
        cells = ["–", "n/a (no estimator)", "–"] + [matrix.loc[c, NO_SETTING] if c in matrix.index
                                                    and isinstance(matrix.loc[c, NO_SETTING], str) else "–"
                                                    for c in claims]  # fmt: skip
        rows.append(cells)
        bold.append([False] * 3 + [v in ("holds", "fails") for v in cells[3:]])
    notes = ["Verdict of each claim under each estimator setting (a cell: holds when every comparison of the claim "
             "holds there, fails when some fail and none hold, mixed when both). Dependence statistics use the "
             "excess over the permutation null, a value within its null counting as 0; the raw value is reported "
             "beside it in the tables below and never decides."]  # fmt: skip
    raw_x = report.settings[report.settings["basis_xz"].str.contains("raw", na=False)]
    if len(raw_x):
        notes.append("Without a null for I(X;T) (kde and binning: I(X;T) does not involve X, so shuffling cannot "
                     "test it), the raw value of I(X;T) is used under " + ", ".join(raw_x["id"]) + ".")
    if report.left_out:
        notes.append("Left out of the claims: " + "; ".join(report.left_out) + ".")
    columns = ["id", "setting", "dependence used"] + [f"claim {c}" for c in claims]
    out.append(("Robustness across estimator settings", notes,
                Section(columns, rows, bold, title="Verdicts by estimator setting")))
    lines = [[f"claim {r.claim}", r.line] for r in report.lines.itertuples()]
    out.append(("", [], Section(["claim", "across settings"], lines, title="Across settings")))
    # one table per claim
    verdicts = dict(zip(report.summaries["claim"], report.summaries["verdict"]))
    for name in claim_ids():
        spec: Claim = CLAIMS.get(name)
        ids = dict(zip(report.settings["setting"], report.settings["id"]))
        rows = comparison_rows(report.results[report.results["claim"] == name], ids)
        bold = [[j == COMPARISON_COLUMNS.index("verdict") and r[j] in ("holds", "fails") for j in range(len(r))]
                for r in rows]  # fmt: skip
        text = [f"*Claim.* {spec.statement}", f"*Statistic.* {spec.statistic}", f"*mean* = {spec.mean}; *setting*: "
                "the id of the matrix above."]
        heading = f"Claim {name} ({spec.title}): {verdicts.get(name, 'inconclusive')}"
        out.append((heading, text, Section(COMPARISON_COLUMNS, rows, bold, title=heading)))
    return out


def _md_table(section: Section) -> list[str]:
    def cell(text: str, bold: bool) -> str:
        text = str(text).replace("|", "\\|").replace("\n", " ")
        return f"**{text}**" if bold and text else text

    lines = ["| " + " | ".join(section.columns) + " |", "|" + "---|" * len(section.columns)]
    for i, row in enumerate(section.rows):
        lines.append("| " + " | ".join(cell(c, section.is_bold(i, j)) for j, c in enumerate(row)) + " |")
    return lines


TITLE = "Claims of the paper, tested on this experiment"
READING = ("Each claim is a statistic fixed in advance, computed per seed, compared across modes as paired "
           "differences and judged by one rule (docs/claims.md): " + "; ".join(
               f"**{v}**: {t}" for v, t in VERDICT_TEXT.items()) + ".")  # fmt: skip


def claims_markdown(report: ClaimsReport, header: str) -> str:
    lines = [f"# {TITLE}", "", header, "", READING, ""]
    for heading, paragraphs, section in _sections(report):
        if heading:
            lines += [f"## {heading}", ""]
        for text in paragraphs:
            lines += [text, ""]
        if section is not None and heading == "Verdicts":
            lines += [f"- **Claim {r[0]}: {r[1]}** — {r[2].split(' -- ', 1)[-1]}" for r in section.rows] + [""]
        elif section is not None:
            lines += (_md_table(section) if section.rows else ["(no rows)"]) + [""]
    return "\n".join(lines)


def claims_display(report: ClaimsReport, header: str) -> Display:
    """The same content as `claims_markdown`, as a display (the HTML page of the report)."""
    sections, notes = [], [READING.replace("**", "")]
    for heading, paragraphs, section in _sections(report):
        if section is None:
            continue
        extra = " ".join(p.replace("*", "").replace("`", "") for p in paragraphs)
        title = heading or section.title
        sections.append(Section(section.columns, section.rows or [["(no rows)"] + [""] * (len(section.columns) - 1)],
                                section.bold or [], title=f"{title}. {extra}".strip().rstrip(".") + "."))
    return Display(TITLE, header, sections, note=" ".join(notes))


def write_claims(report: ClaimsReport, out: str | Path, header: str) -> list[Path]:
    """claims.parquet, claim_differences.parquet, claims.md and claims.html under `out`."""
    out = Path(out)
    contracts.CLAIMS.write(report.results, out / "claims.parquet")
    contracts.CLAIM_DIFFERENCES.write(report.differences, out / "claim_differences.parquet")
    io.write_text(out / "claims.md", claims_markdown(report, header))
    io.write_text(out / "claims.html", to_html(claims_display(report, header)))
    return [out / "claims.parquet", out / "claim_differences.parquet", out / "claims.md", out / "claims.html"]



def claim_summaries(results: pd.DataFrame, primary_setting: str | None = None) -> pd.DataFrame:
    """One line per claim: verdict under the primary setting, each comparison's effect with its
    interval (bounds compatible with the Holm decision), corrected p and seeds, and how many settings it holds
    under. primary_setting may be omitted when the results hold exactly one estimator setting.
    Columns: claim, verdict, line."""
    settings = sorted(set(results["setting"]) - {NO_SETTING})
    if primary_setting is None:
        if len(settings) > 1:
            raise ValueError(f"results hold {len(settings)} estimator settings; "
                             f"pass primary_setting= one of {settings}")
        primary_setting = settings[0] if settings else NO_SETTING
    elif primary_setting not in settings:
        raise ValueError(f"primary_setting {primary_setting!r} is not in the results; settings: {settings}")
    per = comparison_verdicts(results)
    _, lines = robustness(results)
    out = []
    for claim in sorted(set(results["claim"]), key=lambda c: (len(c), c)):
        sub = results[(results["claim"] == claim) & results["setting"].isin([primary_setting, NO_SETTING])]
        sub = sub[sub["primary"].astype(bool) & (sub["verdict"] != DESCRIPTIVE)]
        mine = per[(per["claim"] == claim) & per["setting"].isin([primary_setting, NO_SETTING])]
        verdict = combine_verdicts(mine["verdict"])
        pieces = []
        for r in sub.itertuples():
            who = f"{r.dataset}/{r.arch} {r.mode}" + (f" vs {r.reference_mode}" if r.reference_mode else "")
            part = f" [{r.part}]" if claim == "3" else ""
            if math.isnan(r.p_corrected):
                p = "corrected p not tested"
            elif r.verdict == "fails":  # the p-value that decided it: the opposite direction's
                p = f"corrected p against the claim {fmt_number(r.p_reverse_corrected, 2)}"
            else:
                p = f"corrected p {fmt_number(r.p_corrected, 2)}"
            pieces.append(f"{who}{part}: {r.verdict}, mean {fmt_number(r.mean)}, interval "
                          f"[{fmt_number(r.ci_low)}, {fmt_number(r.ci_high)}] (compatible with Holm), "
                          f"{p}, {seeds_text(r.n_seeds)}")  # fmt: skip
        across = lines.loc[lines["claim"] == claim, "line"]
        text = f"Claim {claim}: {verdict} -- " + "; ".join(pieces or ["no comparisons"])
        if len(across):
            text += f" | across settings: {across.iloc[0]}"
        out.append({"claim": claim, "verdict": verdict, "line": text})
    return pd.DataFrame(out, columns=["claim", "verdict", "line"])

