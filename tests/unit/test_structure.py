"""The project's layout rules that a test can check: no module of the package is too long."""

from __future__ import annotations

from pathlib import Path

#: The package's source folder and the most lines one of its modules may have.
PACKAGE = Path(__file__).resolve().parents[2] / "src" / "infoplane"
MAX_LINES = 600


def test_no_module_is_longer_than_the_limit():
    lengths = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for path in sorted(PACKAGE.rglob("*.py"))}  # fmt: skip
    assert lengths, f"no module found under {PACKAGE}"
    offenders = {name: n for name, n in lengths.items() if n > MAX_LINES}
    listing = "; ".join(f"{name}: {n} lines" for name, n in offenders.items())
    assert not offenders, f"modules over {MAX_LINES} lines (split them): {listing}"
