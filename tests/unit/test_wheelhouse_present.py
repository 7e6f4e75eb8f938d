"""`tests/gpu/wheelhouse.py --present`: the wheels of distributions the offline machine already
has are left out, matched by their normalised names (file names spell `scikit-learn` as
`scikit_learn`, `PyYAML` as `pyyaml`), and nothing else is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "tests" / "gpu" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wheelhouse)


def test_present_distributions_are_dropped_by_normalised_name(tmp_path):
    names = ["pandas-2.3.1-cp312-cp312-manylinux_2_17_x86_64.whl", "scikit_learn-1.9.1-cp312-cp312-x.whl",
             "PyYAML-6.0.2-cp312-cp312-x.whl", "pandas_stubs-2.0-py3-none-any.whl", "snakemake-9.1-py3-none-any.whl"]
    wheels = []
    for name in names:
        (tmp_path / name).write_bytes(b"")
        wheels.append(tmp_path / name)
    kept = wheelhouse.drop_present(wheels, {"pandas", "Scikit-Learn", "pyyaml"})
    assert [w.name for w in kept] == ["pandas_stubs-2.0-py3-none-any.whl", "snakemake-9.1-py3-none-any.whl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(w.name for w in kept)


def test_nothing_present_keeps_every_wheel(tmp_path):
    wheel = tmp_path / "numpy-2.0-cp312-cp312-x.whl"
    wheel.write_bytes(b"")
    assert wheelhouse.drop_present([wheel], set()) == [wheel] and wheel.exists()
