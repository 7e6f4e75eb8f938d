"""The estimators' settings have one owner (estimators/settings.py), a new estimator plugs in as one
class, and the package keeps its module graph acyclic."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from infoplane import config, contracts, dependence
from infoplane.errors import ConfigError
from infoplane.estimators import ESTIMATORS, SETTING_KEYS, Scores, SettingError, measure_snapshot, normalize_setting
from infoplane.estimators.settings import MEASUREMENT_DEFAULTS, SETTINGS, Settings, key

SRC = Path(__file__).resolve().parents[2] / "src"


# --------------------------------------------------------------------------- a toy estimator


@dataclass
class _ShiftSettings(Settings):
    shift: float = key(0.25, dtype="float64")
    scale: float = key(2.0, dtype="float64")


class _MeanShift:
    """A toy estimator, declared as one class: |mean of Z's first coordinate - shift| * scale per batch,
    with a null for Y only. Its settings dataclass is its only declaration of keys and defaults."""

    name = "toy_shift"
    unit = "toy"
    settings = _ShiftSettings

    def check_setting(self, setting):
        if not setting["scale"] > 0:
            raise SettingError("scale", setting["scale"], "must be > 0")

    def reference_key(self, role, setting):
        return (self.name, role)

    def prepare(self, data, role, setting):
        return data

    def score(self, ref_x, ref_y, z, setting, perms):
        first = z.double()[..., 0]
        value = (first.mean(-1) - setting["shift"]).abs() * setting["scale"]
        null_y = None if perms is None else value[:, None].expand(-1, perms.shape[1]) * 0.5
        return Scores(value, value, None, null_y, extra={})


@pytest.fixture
def toy(monkeypatch):
    """The toy, registered for this test only (the registry is restored afterwards)."""
    est = _MeanShift()
    monkeypatch.setitem(ESTIMATORS._entries, est.name, est)
    monkeypatch.setitem(ESTIMATORS._meta, est.name, {})
    yield est
    assert est.name in ESTIMATORS  # still there until the fixture's monkeypatch is undone


def test_a_toy_estimator_runs_through_the_engine_and_the_config_check(toy):
    # its declared defaults fill a setting that names only the estimator
    assert normalize_setting({"estimator": "toy_shift"}) == {"estimator": "toy_shift",
                                                             **{k: None for k in SETTING_KEYS[1:]},
                                                             "shift": 0.25, "scale": 2.0}
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(40, 3, generator=g), torch.randn(40, 2, generator=g) + 1.0
    y = torch.arange(40) % 2
    df = measure_snapshot(x, y, [z], [{"estimator": "toy_shift"}, {"estimator": "toy_shift", "shift": 1.0}],
                          batch_size=10, permutations=3, seed=0)
    want = np.abs(z[:, 0].double().numpy().reshape(4, 10).mean(1) - 0.25) * 2.0
    assert df["value_xz"].iloc[0] == pytest.approx(want.mean(), rel=1e-12)
    assert df["excess_yz"].iloc[0] == pytest.approx(want.mean() * 0.5, rel=1e-12)
    np.testing.assert_allclose(df["excess_yz_batches"].iloc[0], want * 0.5, rtol=1e-12)
    assert math.isnan(df["excess_xz"].iloc[0]) and df["unit"].tolist() == ["toy", "toy"]
    assert df["shift"].tolist() == [0.25, 1.0]

    # the config check: its sub-section, defaults for what it leaves out, errors that name the key
    section = {"estimators": ["toy_shift"], "batch_size": 16, "permutations": 4, "toy_shift": {"shift": [0.0, 1.0]}}
    config._check_dependence(section, eval_size=256)
    assert [s["shift"] for s in dependence.settings(section)] == [0.0, 1.0]
    assert {s["scale"] for s in dependence.settings(section)} == {2.0}
    with pytest.raises(ConfigError, match=r"'dependence.toy_shift.scale' = -1: must be > 0"):
        config._check_dependence({**section, "toy_shift": {"scale": -1}}, eval_size=256)


# --------------------------------------------------------------------------- one owner of the settings


def test_every_registered_estimator_declares_the_settings_the_registry_knows():
    for name in ESTIMATORS.names():
        assert ESTIMATORS.get(name).settings is SETTINGS.get(name), name
    assert set(SETTINGS.names()) == set(ESTIMATORS.names())


def test_the_schema_documents_the_declared_defaults():
    """The schema keeps documenting the keys for users; every default it states is the registry's."""
    schema = yaml.safe_load(Path(config.SCHEMA).read_text())
    section = schema["properties"]["dependence"]["properties"]
    for name in SETTINGS.names():
        declared = SETTINGS.get(name)
        props = section[name]["properties"] if declared.own_section else section
        for k in declared.config_keys():
            assert props[k]["default"] == declared.defaults()[k], f"schema default of {name}.{k}"
        if declared.own_section:
            assert set(props) == set(declared.config_keys()), name
    for k, default in MEASUREMENT_DEFAULTS.items():
        assert section[k]["default"] == default, k
    flat = [k for k in section if "properties" not in section[k] and k not in ("estimators", *MEASUREMENT_DEFAULTS)]
    assert set(flat) == set(SETTING_KEYS[1:])


def test_the_table_contract_takes_its_setting_columns_from_the_declarations():
    for name in SETTINGS.names():
        for k, dtype in SETTINGS.get(name).dtypes().items():
            if k != "unit":
                assert contracts.DEPENDENCE.columns[k] == dtype, (name, k)
    assert "range_max" in contracts.DEPENDENCE.columns and "range_max" not in contracts.DEPENDENCE_SETTINGS


def test_a_bad_setting_is_refused_once_with_its_key():
    with pytest.raises(SettingError, match=r"setting sigma=-1.0: sigma must be a positive number") as err:
        normalize_setting({"estimator": "nocco", "sigma": -1.0})
    assert err.value.key == "sigma"
    with pytest.raises(ConfigError, match=r"'dependence.sigma' = -1.0: sigma must be a positive number"):
        config._check_dependence({"estimators": ["nocco"], "batch_size": 16, "sigma": [5.0, -1.0]}, eval_size=256)


# --------------------------------------------------------------------------- the module graph


def _module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                yield sub


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports at import time (relative imports resolved)."""
    files = {_module_name(src, p): p for p in src.joinpath("infoplane").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                stem = ".".join(p for p in (base if node.level else "", node.module or "") if p)
                subs = [f"{stem}.{a.name}" for a in node.names]
                # `from . import x` imports the submodule x (its package is the importer's own parent)
                targets = [s if s in files else stem for s in subs] if node.module is None else [stem, *subs]
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_src():
    graph = import_graph(SRC)
    assert {"infoplane.estimators.base", "infoplane.estimators.null"} <= graph["infoplane.estimators.engine"]
    assert "infoplane.estimators.settings" in graph["infoplane.contracts"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_walk_finds_a_cycle(tmp_path):
    """The walk is not vacuous: two modules importing each other (relative imports) are found."""
    pkg = tmp_path / "infoplane"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("import os\nfrom .a import thing\n\ndef later():\n    from . import c\n")
    (pkg / "c.py").write_text("from .b import later\n")
    graph = import_graph(tmp_path)
    assert graph == {"infoplane": set(), "infoplane.a": {"infoplane.b"}, "infoplane.b": {"infoplane.a"},
                     "infoplane.c": {"infoplane.b"}}
    assert find_cycle(graph) == ["infoplane.a", "infoplane.b", "infoplane.a"]
