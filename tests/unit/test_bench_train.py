"""The training benchmark: its table's ratios come from its own timings, its FLOP counts are exact."""

from __future__ import annotations

import math

import pytest
import torch

from infoplane.bench import train as bench

MLP_WIDTHS = (784, 512, 256, 128, 64, 10)  # models.mlp on 1×28×28, 10 classes


def mlp_step_flops() -> int:
    """FLOPs per image of one fp32 training step of the MLP, by hand: forward 2·in·out per
    Linear, backward 2·in·out for the weight gradient and 2·in·out for the input gradient
    (none for the first layer, whose input needs no gradient). Biases and ReLUs count 0."""
    pairs = [a * b for a, b in zip(MLP_WIDTHS, MLP_WIDTHS[1:])]
    return 2 * sum(pairs) + 2 * sum(pairs) + 2 * (sum(pairs) - pairs[0])


def test_table_ratios_are_computed_from_the_rows_timings():
    rows = [
        bench.Row("a", "fp32 loop", 1000, 2.0, 4e9),
        bench.Row("a", "tuned loop", 1000, 0.5, 4e9),
        bench.Row("a", "pipeline e2e", 1000, 0.8, 4e9),
        bench.Row("a", "pipeline layerwise-ce", 1000, 1.6, 5e9),
        bench.Row("a", "packed 4 x e2e", note="no CUDA"),
        bench.Row("b", "tuned loop", 300, 3.0, 1e9),
    ]
    printed = bench.table(rows, peak=100.0)
    by = {(r["arch"], r["run"]): r for r in printed}
    assert by["a", "fp32 loop"]["images/s"] == pytest.approx(500)
    assert by["a", "fp32 loop"]["x tuned"] == pytest.approx(500 / 2000)
    assert by["a", "pipeline e2e"]["x tuned"] == pytest.approx(1250 / 2000)
    assert by["a", "pipeline layerwise-ce"]["x e2e"] == pytest.approx(625 / 1250)
    assert by["a", "pipeline layerwise-ce"]["FLOP x e2e"] == pytest.approx(1.25)
    assert math.isnan(by["a", "tuned loop"]["x e2e"])  # only pipeline rows compare with e2e
    # 1250 images/s × 4 GFLOP = 5 TFLOP/s of a 100 TFLOP/s peak
    assert by["a", "pipeline e2e"]["% bf16 peak"] == pytest.approx(5.0)
    assert math.isnan(by["a", "packed 4 x e2e"]["images/s"])
    assert by["b", "tuned loop"]["x tuned"] == pytest.approx(1.0)  # each architecture has its own anchor
    text = bench.format_table(printed, peak=100.0)
    assert "| a | packed 4 x e2e | - |" in text and "no CUDA" in text
    assert "peak unknown" in bench.format_table(bench.table(rows, peak=None), peak=None)


def test_peak_lookup():
    assert bench.peak_tflops(torch.device("cpu")) is None
    assert bench.peak_tflops(torch.device("cpu"), override=50.0) == 50.0
    names = [name for name, _ in bench.PEAK_BF16_TFLOPS]
    assert names.index("H100 PCIe") < names.index("H100") and names.index("L40S") < names.index("L4")


def test_cpu_run_prints_the_table_with_exact_flops(capsys):
    printed = bench.main(["--arch", "mlp", "--mode", "e2e,layerwise-ce", "--steps", "2", "--repeats", "1",
                          "--batch-size", "8", "--device", "cpu", "--packed", "2", "--threads", "1"])  # fmt: skip
    out = capsys.readouterr().out
    runs = [r["run"] for r in printed]
    assert runs == ["fp32 loop", "tuned loop", "tuned, deterministic", "pipeline e2e", "pipeline layerwise-ce",
                    "packed 2 x e2e"]  # fmt: skip
    by = {r["run"]: r for r in printed}
    tuned = by["tuned loop"]["images/s"]
    for r in printed[:-1]:
        assert r["images/s"] > 0 and r["x tuned"] == pytest.approx(r["images/s"] / tuned)
    assert by["pipeline e2e"]["x e2e"] == pytest.approx(1.0)
    assert by["pipeline layerwise-ce"]["x e2e"] == pytest.approx(
        by["pipeline layerwise-ce"]["images/s"] / by["pipeline e2e"]["images/s"])
    # the counter sees exactly the hand count, in the bare loop and in the pipeline's e2e step
    assert by["fp32 loop"]["GFLOP/image"] * 1e9 == pytest.approx(mlp_step_flops(), rel=1e-12)
    assert by["pipeline e2e"]["GFLOP/image"] == pytest.approx(by["fp32 loop"]["GFLOP/image"], rel=1e-12)
    # layer-wise: no input gradient crosses a block, the linear heads add their own
    assert by["pipeline layerwise-ce"]["FLOP x e2e"] != pytest.approx(1.0)
    assert by["packed 2 x e2e"]["settings"] == "no CUDA"
    assert "peak unknown" in out and "| mlp | pipeline e2e |" in out
    ratio = f"ratio summary mlp: pipeline e2e {by['pipeline e2e']['x tuned']:.2f} x tuned; slowest layer-wise "
    assert f"{ratio}{by['pipeline layerwise-ce']['x e2e']:.2f} x e2e (layerwise-ce); packed 2 x e2e no CUDA" in out
    assert "fp32, deterministic on" in by["pipeline e2e"]["settings"]  # the CPU defaults


def test_unknown_arch_is_refused():
    with pytest.raises(SystemExit):
        bench.main(["--arch", "resnet50", "--device", "cpu"])


def test_precision_comparison_pairs_seeds_and_scales_by_the_seed_spread():
    import pandas as pd

    from infoplane.bench import precision

    def side(values):
        return pd.DataFrame({"dataset": "d", "arch": "a", "mode": "e2e", "seed": [0, 1, 2],
                             "quantity": "test accuracy", "value": values})  # fmt: skip

    out = precision.compare(side([0.90, 0.92, 0.94]), side([0.91, 0.93, 0.95]), ("fp32", "bf16")).iloc[0]
    assert out["paired diff"] == pytest.approx(0.01)
    assert out["fp32 sd"] == pytest.approx(0.02) and out["bf16 sd"] == pytest.approx(0.02)
    assert out["diff / seed sd"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same runs"):
        precision.compare(side([0.9, 0.9, 0.9]), side([0.9, 0.9, 0.9]).assign(seed=[0, 1, 3]), ("a", "b"))
