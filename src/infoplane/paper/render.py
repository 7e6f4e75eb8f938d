"""Writing one display table as Markdown, LaTeX (booktabs) and HTML (for the report).

A display table is a title, a header line (experiment, estimator settings, seeds) and one
or more sections; each section has column names, string cells and a bold mask.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from ..io import write_text


@dataclass
class Section:
    columns: list[str]
    rows: list[list[str]]
    bold: list[list[bool]] = field(default_factory=list)
    title: str | None = None

    def is_bold(self, i: int, j: int) -> bool:
        return bool(self.bold) and self.bold[i][j]


@dataclass
class Display:
    title: str
    header: str
    sections: list[Section]
    note: str = ""


def _md_cell(text: str, bold: bool) -> str:
    text = text.replace("|", "\\|")
    return f"**{text}**" if bold and text else text


def to_markdown(table: Display) -> str:
    lines = [f"**{table.title}**", "", table.header, ""]
    if table.note:
        lines += [table.note, ""]
    if not any(s.rows for s in table.sections):
        lines += ["(no rows: the input tables hold no data for this table)", ""]
    for section in table.sections:
        if not section.rows:
            continue
        if section.title:
            lines += [f"*{section.title}*", ""]
        lines.append("| " + " | ".join(_md_cell(c, False) for c in section.columns) + " |")
        lines.append("|" + "|".join("---" for _ in section.columns) + "|")
        for i, row in enumerate(section.rows):
            lines.append("| " + " | ".join(_md_cell(c, section.is_bold(i, j)) for j, c in enumerate(row)) + " |")
        lines.append("")
    return "\n".join(lines)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip
_LATEX_UNICODE = {
    "±": r"$\pm$", "σ": r"$\sigma$", "ε": r"$\varepsilon$", "ρ": r"$\rho$", "×": r"$\times$",
    "−": "--", "–": "--", "·": r"$\cdot$", "≥": r"$\geq$", "≤": r"$\leq$", "`": "",
}  # fmt: skip


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return "".join(_LATEX_UNICODE.get(ch, ch) for ch in out)


def to_latex(table: Display) -> str:
    """A booktabs `table` environment; one tabular per section."""
    lines = [
        f"% {table.header}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(table.title)}. {latex_escape(table.header)}}}",
    ]
    for section in table.sections:
        if not section.rows:
            continue
        if section.title:
            lines.append(f"\\par\\smallskip\\emph{{{latex_escape(section.title)}}}\\par")
        ncols = len(section.columns)
        lines.append("\\begin{tabular}{" + "l" * min(3, ncols) + "r" * max(0, ncols - 3) + "}")
        lines.append("\\toprule")
        lines.append(" & ".join(latex_escape(c) for c in section.columns) + " \\\\")
        lines.append("\\midrule")
        for i, row in enumerate(section.rows):
            cells = [
                f"\\textbf{{{latex_escape(c)}}}" if section.is_bold(i, j) and c else latex_escape(c)
                for j, c in enumerate(row)
            ]
            lines.append(" & ".join(cells) + " \\\\")
        lines.append("\\bottomrule")
        lines.append("\\end{tabular}")
    if table.note:
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(table.note)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


_CSS = (
    "body{font-family:sans-serif;font-size:14px;margin:1em}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{padding:3px 10px;text-align:right}th{border-bottom:1px solid #333}"
    "thead tr{border-top:2px solid #333}tbody tr:last-child{border-bottom:2px solid #333}"
    "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}p.header{color:#333}"
)


def to_html(table: Display) -> str:
    esc = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(table.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h3>{esc(table.title)}</h3><p class='header'>{esc(table.header)}</p>",
    ]
    if table.note:
        parts.append(f"<p>{esc(table.note)}</p>")
    for section in table.sections:
        if not section.rows:
            continue
        if section.title:
            parts.append(f"<p><em>{esc(section.title)}</em></p>")
        parts.append("<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in section.columns) + "</tr></thead>")
        parts.append("<tbody>")
        for i, row in enumerate(section.rows):
            cells = [
                f"<td><b>{esc(c)}</b></td>" if section.is_bold(i, j) else f"<td>{esc(c)}</td>" for j, c in enumerate(row)
            ]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_display(table: Display, stem: Path) -> list[Path]:
    """stem.md, stem.tex and stem.html."""
    paths = []
    for suffix, render in ((".md", to_markdown), (".tex", to_latex), (".html", to_html)):
        path = stem.with_suffix(suffix)
        write_text(path, render(table))
        paths.append(path)
    return paths
