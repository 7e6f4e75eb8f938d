"""Every command line the README and docs/configuration.md show, run as a reader would copy
it: the `snakemake` lines as dry runs (`-n`) beside copies of the checkout's config files, the
`make` lines with `make -n`, the `infoplane` lines through its argument parser, the rest with
`--help`. A command that stops working, or a page that names a file that is gone, fails here."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

import doc_commands
from sweep import BIN, REPO, env

pytestmark = pytest.mark.workflow

COMMANDS = doc_commands.commands()


def _cases(*programs: str) -> list:
    return [pytest.param(page, command, id=f"{page}: {command}") for page, command in COMMANDS
            if command.split()[0] in programs]  # fmt: skip


def test_the_pages_show_the_commands_this_file_runs():
    programs = {command.split()[0] for _, command in COMMANDS}
    assert programs == {"snakemake", "make", "infoplane", "python", "conda"}
    assert ("README.md", "snakemake --cores 8 --config seeds=[0,1,2,3,4,5,6,7]") in COMMANDS


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A working directory with what the commands name: config.yaml, .test/, experiments/, the profiles."""
    work = tmp_path_factory.mktemp("reader")
    shutil.copy(REPO / "config.yaml", work)
    shutil.copytree(REPO / "experiments", work / "experiments")
    shutil.copytree(REPO / ".test", work / ".test", ignore=shutil.ignore_patterns("results"))
    shutil.copytree(REPO / "workflow" / "profiles", work / "workflow" / "profiles")
    return work


@pytest.mark.parametrize(("page", "command"), _cases("snakemake"))
def test_snakemake_lines_dry_run(reader, page, command):
    words = shlex.split(command.replace("<rule>", "data"))
    args = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *words[1:]]
    plans = not {"--lint", "--unlock"} & set(words)
    if plans and "-n" not in words:
        args.append("-n")
    done = subprocess.run(args, cwd=reader, env=env(), capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    if plans:
        assert "infoplane: " in output and "activation snapshots" in output, output[-3000:]


@pytest.mark.parametrize(("page", "command"), _cases("make"))
def test_make_lines_name_real_targets(page, command):
    done = subprocess.run(["make", "-n", *shlex.split(command)[1:]], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("page", "command"), _cases("infoplane", "python"))
def test_infoplane_and_python_lines_parse(page, command):
    from infoplane import cli

    words = shlex.split(command)
    if words[:2] == ["python", "-m"] and words[2] != "infoplane":  # a tool: its --help runs
        done = subprocess.run([sys.executable, "-m", words[2], "--help"], capture_output=True, text=True,
                              env=env(), timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return
    if words[:3] == ["python", "-m", "infoplane"]:
        words = ["infoplane", *words[3:]]
    top, _ = cli.parser()
    if any(word.startswith("<") or word == "FILE" for word in words):  # a template: every stage
        for stage in cli.STAGES:
            with pytest.raises(SystemExit) as stop:
                top.parse_args([stage, "--help"])
            assert stop.value.code == 0
        return
    args = top.parse_args(words[1:])
    assert args.stage == words[1]


@pytest.mark.parametrize(("page", "command"), _cases("conda"))
def test_conda_lines_name_the_environment_file(page, command):
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    words = shlex.split(command)
    if words[1:3] == ["env", "create"]:
        assert (REPO / words[words.index("-f") + 1]).is_file()
    else:
        assert words[1:] == ["activate", environment["name"]]
