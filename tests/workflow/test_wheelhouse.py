"""The offline install: a wheelhouse for this machine's Python installs the project, with no index,
into a fresh venv that already has torch (as the offline GPU machine does).

Needs the package index once (to fill the wheelhouse); about a minute with a warm pip cache.
The fresh venv gets torch without downloading it: the distributions torch and torchvision need
(and only those) are linked from this environment into a folder that a .pth file puts on the
fresh venv's path, so pip sees torch installed there and must bring everything else from the
wheelhouse. This environment's pip installs into the fresh venv (`pip --python`), which has no
pip of its own: a bundled setuptools would shadow torch's.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0)


def torch_closure() -> list[md.Distribution]:
    """torch, torchvision and every distribution they require here, with the extras they name
    (torch asks for `cuda-toolkit[cublas,...]`); other markers are ignored: a distribution
    that is not installed here is skipped."""
    seen: dict[str, md.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, frozenset[str]]] = [("torch", frozenset()), ("torchvision", frozenset())]
    while todo:
        name, extras = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        try:
            dist = seen.get(key) or md.distribution(name)
        except md.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        seen[key] = dist
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra and extra.group(1) not in extras:
                continue
            if (key, req) in done:
                continue
            done.add((key, req))
            wanted = re.search(r"\[([^\]]*)\]", spec.split("<")[0].split(">")[0].split("=")[0])
            named = frozenset(e.strip() for e in wanted.group(1).split(",")) if wanted else frozenset()
            todo.append((_name(spec.strip()), named))
    return list(seen.values())


def link_torch(site: Path) -> None:
    """Symlink the top-level files and folders of torch's closure into `site`."""
    site.mkdir()
    for dist in torch_closure():
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or []}:
            src, dst = base / top, site / top
            if src.exists() and not dst.exists() and top != "..":
                dst.symlink_to(src)


def test_wheelhouse_installs_the_project_offline(tmp_path):
    house = tmp_path / "wheelhouse"
    done = subprocess.run([sys.executable, str(REPO / "tests/gpu/wheelhouse.py"), "--dest", str(house)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = [w.name for w in house.glob("*.whl")]
    assert any(n.startswith("infoplane-") for n in names)
    assert any(n.lower().startswith("snakemake-") for n in names)
    assert not [n for n in names if re.match(r"(torch|torchvision|triton|nvidia_)", n, re.I)], names

    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)  # pip (and its setuptools) stay out: torch brings its own
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    link_torch(tmp_path / "torch-site")
    (Path(purelib) / "torch_site.pth").write_text(str(tmp_path / "torch-site") + "\n")
    before = subprocess.run([str(py), "-c", "import snakemake"], capture_output=True)
    assert before.returncode != 0, "the fresh venv must not see this environment's snakemake"

    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index", "--find-links", str(house),
         "--no-build-isolation", "infoplane[test,slurm]"],
        capture_output=True, text=True, timeout=900, env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"},
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run(
        [str(py), "-c", "import torch, snakemake, snakemake_executor_plugin_slurm, pytest, infoplane.cli, "
         "infoplane.dependence; print(infoplane.cli.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-3000:]
    assert str(env_dir) in check.stdout  # the installed wheel, not this checkout's src
    version = subprocess.run([str(env_dir / "bin" / "snakemake"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("9."), version.stderr
