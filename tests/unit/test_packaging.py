"""The package stands on its own: a built wheel holds every non-Python file the package reads,
and the config schema is read from the installed package, not from a source checkout."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from sweep import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel . --no-deps` on a copy of the checkout (the build writes build/ and egg-info)."""
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", tree / "src", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "workflow" / "schemas", tree / "workflow" / "schemas")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the venv's setuptools builds it, so the test needs no network
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        cwd=tree, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("infoplane-*.whl")
    return built


def _package_files() -> list[str]:
    """Every file of the package in git that is not Python source: what the package reads."""
    listed = subprocess.run(["git", "ls-files", "src/infoplane"], cwd=REPO, capture_output=True, text=True, check=True)
    return sorted(f.removeprefix("src/") for f in listed.stdout.split() if not f.endswith(".py"))


def test_the_wheel_holds_every_non_python_file_of_the_package(wheel):
    files = _package_files()
    assert "infoplane/config.schema.yaml" in files
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert set(files) <= names, sorted(set(files) - names)
        # the content, not a link: the wheel's schema is the workflow's schema
        schema = archive.read("infoplane/config.schema.yaml")
    assert schema == (REPO / "workflow" / "schemas" / "config.schema.yaml").read_bytes()


def test_the_installed_package_reads_its_schema_without_the_checkout(wheel, tmp_path):
    """Unpacked alone (no workflow/ beside it), the package still finds and validates its defaults."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    code = (
        "import infoplane, infoplane.config as c; "
        "assert infoplane.__file__.startswith(%r), infoplane.__file__; "
        "print(c.SCHEMA); print(c.defaults('training')['epochs'])" % str(tmp_path / "site")
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "", "PYTHONPATH": str(tmp_path / "site")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    schema_path, epochs = done.stdout.split()
    assert schema_path == str(tmp_path / "site" / "infoplane" / "config.schema.yaml") and epochs == "20"
