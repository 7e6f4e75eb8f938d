"""Wheels of everything infoplane needs except torch and torchvision, for a machine without internet.

    python tests/gpu/wheelhouse.py [--dest wheelhouse] [--python-version 3.12]
        [--platform manylinux2014_x86_64] [--extras test,slurm]          (or: make wheelhouse)

then, on the offline machine, where torch and torchvision are already installed:

    pip install --no-index --find-links wheelhouse 'infoplane[test,slurm]'

Why a script: torch and torchvision (and their CUDA libraries and triton) are gigabytes and
specific to the machine's CUDA, so the offline machine brings its own; every other dependency,
snakemake's ~40 included, is small and is what is missing there. The project's own wheel goes
into the folder too.

How: (1) the project is built as a wheel and its Requires-Dist (plus the chosen extras) less
torch/torchvision is the list to fetch; (2) packages published only as source (a few of
snakemake's pure-Python dependencies) are resolved for this machine and built into wheels here,
since `pip download --platform` accepts wheels only; (3) `pip download --only-binary=:all:`
fetches the rest for the target Python and platform, finding the wheels of (2) in the folder.
The result is refused if a torch, torchvision, triton or nvidia-* wheel slipped in (it would
mean a dependency requires torch).

`--present a,b,…` leaves out the wheels of distributions the offline machine already has (its
venv is made with --system-site-packages, so pip finds them there): the lent GPU machine has
numpy, pandas, pyarrow, scipy, matplotlib, seaborn, pillow, pytest and hypothesis, which are
about 130 of the folder's ~180 MiB; without them it fits in what can be carried there.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXCLUDED = ("torch", "torchvision")
# wheels that must not be in the folder: torch's own stack, which the offline machine brings
FORBIDDEN = re.compile(r"^(torch|torchvision|triton|nvidia_[a-z0-9_]+)-", re.IGNORECASE)
# manylinux2014 is manylinux_2_17; wheels tagged with newer glibc baselines are accepted too
# (pip matches platform tags exactly when --platform is given)
MANYLINUX_ALSO = ("manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def requirements(wheel: Path, extras: set[str]) -> list[str]:
    """The wheel's Requires-Dist lines for no extra or one of `extras`, less torch/torchvision."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    reqs = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        spec, _, marker = line.split(":", 1)[1].strip().partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra and extra.group(1) not in extras:
            continue
        name = re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0)
        if name.lower() in EXCLUDED:
            continue
        reqs.append(spec.strip() + (f"; {marker.strip()}" if marker.strip() and not extra else ""))
    return reqs


def platforms(platform: str | None) -> list[str]:
    if platform is None:
        return []
    tags = [platform]
    if platform == "manylinux2014_x86_64":
        tags += MANYLINUX_ALSO
    return [arg for tag in [*tags, "any"] for arg in ("--platform", tag)]


def canonical(name: str) -> str:
    """A distribution's name as wheel file names spell it (PEP 503 normalised, '_' for runs of -_.)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def drop_present(wheels: list[Path], present: set[str]) -> list[Path]:
    """Delete the wheels of distributions in `present`; return the others."""
    names = {canonical(n) for n in present}
    kept = []
    for wheel in wheels:
        if canonical(wheel.name.split("-", 1)[0]) in names:
            wheel.unlink()
        else:
            kept.append(wheel)
    return kept


def build(dest: Path, python_version: str | None, platform: str | None, extras: set[str],
          present: set[str] = frozenset()) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest), str(REPO))
    project = max(dest.glob("infoplane-*.whl"), key=lambda p: p.stat().st_mtime)
    reqs = requirements(project, extras)
    with tempfile.TemporaryDirectory() as tmp:
        # (2) source-only packages, resolved for this machine, built into (pure-Python) wheels
        pip("download", "-q", "--dest", tmp, *reqs)
        sdists = [p for p in Path(tmp).iterdir() if p.suffix in (".gz", ".zip")]
        if sdists:
            pip("wheel", "--no-deps", "-q", "-w", str(dest), *map(str, sdists))
    target = []
    if python_version:
        target += ["--python-version", python_version, "--implementation", "cp"]
    target += platforms(platform)
    # (3) the rest, for the target; --find-links: the wheels built in (2)
    pip("download", "-q", "--dest", str(dest), "--only-binary=:all:", "--find-links", str(dest), *target, *reqs)
    wheels = drop_present(sorted(dest.glob("*.whl")), present)
    bad = [w.name for w in wheels if FORBIDDEN.match(w.name)]
    if bad:
        raise SystemExit(f"wheelhouse: {', '.join(bad)} got in (a dependency requires torch); remove "
                         "that dependency or the wheels by hand: the offline machine brings its own torch")
    others = [w.name for w in wheels if not w.name.endswith(("-any.whl",)) and "linux" not in w.name
              and platform and "linux" in platform]
    if others:
        raise SystemExit(f"wheelhouse: wheels for another platform: {', '.join(others)}")
    return wheels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO / "wheelhouse", help="folder (default: ./wheelhouse)")
    parser.add_argument("--python-version", help="target Python, e.g. 3.12 (default: this interpreter's)")
    parser.add_argument("--platform", help="target platform tag, e.g. manylinux2014_x86_64 (default: this machine's)")
    parser.add_argument("--extras", default="test,slurm", help="the project's extras to include (default: test,slurm)")
    parser.add_argument("--present", default="",
                        help="distributions the offline machine already has, comma-separated: left out")
    args = parser.parse_args(argv)
    if bool(args.python_version) != bool(args.platform):
        parser.error("give --python-version and --platform together (or neither, for this machine)")
    extras = {e.strip() for e in args.extras.split(",") if e.strip()}
    present = {p.strip() for p in args.present.split(",") if p.strip()}
    wheels = build(args.dest, args.python_version, args.platform, extras, present)
    size = sum(w.stat().st_size for w in wheels)
    print(f"wheelhouse: {len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.dest}")
    print(f"install offline (torch and torchvision already there):\n"
          f"  pip install --no-index --find-links {args.dest} 'infoplane[{','.join(sorted(extras))}]'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
