"""The command lines the README and the docs show, as a reader would copy them."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The pages whose commands are tested: the README and the configuration page (the `--config` examples).
PAGES = ("README.md", "docs/configuration.md")

_INLINE = re.compile(r"`((?:snakemake|make|infoplane|python) [^`]*)`")


def commands(pages: tuple[str, ...] = PAGES) -> list[tuple[str, str]]:
    """(page, command) for every command line in a fenced code block (continuation lines joined,
    trailing `# comments` dropped, `a && b` split) and every inline code span that is a command,
    except in a paragraph that starts with `Moved:` or `Renamed:` (it names old forms)."""
    found: list[tuple[str, str]] = []
    for page in pages:
        text = (REPO / page).read_text(encoding="utf-8")
        in_block, pending, old_forms = False, "", False
        for line in text.splitlines():
            if line.strip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block and not line.strip():
                old_forms = False
                continue
            if not in_block and line.startswith(("Moved:", "Renamed:")):
                old_forms = True
            if old_forms:
                continue
            if in_block:
                line = pending + line.strip()
                if line.endswith("\\"):
                    pending = line[:-1] + " "
                    continue
                pending = ""
                line = re.split(r"\s+#\s", line)[0].strip()
                for part in line.split(" && "):
                    if re.match(r"(snakemake|make|infoplane|python|conda) ", part.strip()):
                        found.append((page, part.strip()))
            else:
                found += [(page, match.strip()) for match in _INLINE.findall(line)]
    return sorted(set(found))
