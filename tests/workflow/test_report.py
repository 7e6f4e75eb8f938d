"""The Snakemake HTML report of a tiny real sweep: every paper table, figure and caption is
in it, and it renders in headless Chromium with every image loading (screenshot kept)."""

from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
from sweep import REPO, TINY, snakemake, write_config

from infoplane import contracts
from infoplane.paper.figures import KINDS as FIGURE_KINDS
from infoplane.paper.tables import TABLES
from infoplane.reportcheck import check_report, find_chromium

pytestmark = pytest.mark.workflow

PAPER_HTML = [*TABLES, "claims"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A one-run sweep (e2e, 1 epoch, 64 eval samples) and its report.html."""
    workdir = tmp_path_factory.mktemp("report")
    config = copy.deepcopy(TINY)
    config.update(modes=["e2e"], training={"epochs": 1, "batch_size": 64}, output_root="results")
    # a sigma grid, so that every figure kind (the sensitivity figure too) is drawn
    config.update(snapshots={"every": 1, "eval_size": 64}, data={"train_limit": 256},
                  dependence={"batch_size": 32, "sigma": [2.0, 5.0]})
    configfile = write_config(workdir, config)
    run = snakemake(workdir, configfile, "--cores", "2")
    assert run.returncode == 0, run.stderr[-4000:]
    built = snakemake(workdir, configfile, "--report", "report.html")
    assert built.returncode == 0, built.stderr[-4000:]
    return workdir


def report_results(path) -> dict:
    match = re.search(r"var results = (\{.*?\});\n", path.read_text(), re.S)
    assert match, "no results object in the report"
    return json.loads(match.group(1))


def test_report_holds_every_paper_output_with_its_caption(report):
    results = report_results(report / "report.html")
    for name in PAPER_HTML:
        entry = results[f"results/paper/{name}.html"]
        assert entry["mime_type"] == "text/html" and len(entry["caption"]) > 100
    for kind in FIGURE_KINDS:
        figures = [e for p, e in results.items() if p.startswith(f"results/paper/figures/{kind}/")]
        assert figures, f"no {kind} figure in the report"
        assert all(e["mime_type"] == "image/png" and len(e["caption"]) > 100 for e in figures)


def test_probes_are_aggregated_with_the_contract_columns(report):
    probes = contracts.PROBES.read(contracts.path("table", report / "results", table="probes"))
    assert len(probes) == 2 * 5  # snapshot epochs 0 and 1 × 5 layers of the mlp, one run
    assert probes["accuracy"].between(0, 1).all() and (probes["probe_test_size"] == 32).all()


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium): "
                    "the report's rendering in a browser is not checked")  # fmt: skip
def test_report_renders_in_chromium_and_every_image_loads(report):
    shot = report / "results" / "report_screenshot.png"
    found = check_report(report / "report.html", screenshot=shot)
    assert found["app_rendered"], found
    assert found["images"] >= 6 and found["loaded"] == found["images"] and not found["failed"], found
    assert found["html"] >= len(PAPER_HTML)
    assert "figures/infoplane" in found["shown"] and found["shown_loaded"], found
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    kept = REPO / "results" / "report_screenshot.png"  # for a person to look at (results/ is git-ignored)
    kept.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, kept)
