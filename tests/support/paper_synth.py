"""Synthetic metrics / dependence / probes tables whose claim verdicts are known by construction.

Two per-layer profiles (values at the last epoch, layer l of L = 5, classifier last):

* "paper-like" (E2E in the paper): nHSIC(X;Z_l) = 120 − 10 l (layers differ; deep layers keep
  input information), nHSIC(Y;Z_l) = 2 + 1.5 l rising over training, and nHSIC(X;Z_l) peaks
  mid-training then falls by a fraction c = 0.15 + 0.02·seed (compression).
* "flat" (layer-wise in the paper): nHSIC(X;Z_l) = 40 and nHSIC(Y;Z_l) = 8 for every layer,
  nHSIC(Y;Z) falling over training, no compression.

With `reverse=False` E2E gets the paper-like profile and every other mode the flat one,
E2E has the higher test accuracy, and the generalization gap decreases with middle-layer
compression: every claim holds. `reverse=True` swaps the profiles and accuracies and makes
the gap grow with compression: every claim fails.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LAYERS = ["b0", "b1", "b2", "b3", "classifier"]
PERMUTATIONS = 32


def evidence(x: float, y: float) -> dict:
    """The evidence columns of a value far above a null at 0 (p at its minimum); no diagnostics."""
    nan = math.nan
    return {"unit": "", "permutations": PERMUTATIONS, "null_xz_mean": 0.0, "null_xz_std": 0.01, "excess_xz": x,
            "p_xz": 1 / (1 + PERMUTATIONS), "null_yz_mean": 0.0, "null_yz_std": 0.01, "excess_yz": y,
            "p_yz": 1 / (1 + PERMUTATIONS), "ceiling_zz": nan, "ceiling_xx": nan, "ceiling_yy": nan,
            "mean_sq_activation": nan, "median_distance": nan, "bandwidth_ratio": nan}
SETTING = {
    "estimator": "nocco", "kernel_x": "gaussian", "kernel_y": "linear", "kernel_z": "gaussian",
    "sigma": 5.0, "bandwidth": "fixed", "epsilon": 1e-5, "batch_size": 128,
}  # fmt: skip


def synth(modes=("e2e", "layerwise-ce"), seeds=(0, 1, 2), epochs=tuple(range(11)), reverse=False,
          dataset="toy", arch="net"):  # fmt: skip
    metrics, hsic, probes = [], [], []
    last = max(epochs)
    for mode in modes:
        e2e = mode == "e2e"
        paper_like = e2e != reverse
        for seed in seeds:
            wobble = 0.002 * (seed - 1)
            c = 0.15 + 0.02 * seed if paper_like else 0.0
            comp_mid = []
            for layer, name in enumerate(LAYERS):
                final_x = (120 - 10 * layer if paper_like else 40.0) * (1 + wobble)
                final_y = 2 + 1.5 * layer if paper_like else 8.0
                peak = final_x / (1 - c)
                if 1 <= layer <= 2:  # middle layers: blocks other than the first and the last
                    comp_mid.append(peak - final_x)
                for epoch in epochs:
                    frac = epoch / last
                    rise, fall = min(1.0, 2 * frac), max(0.0, 2 * frac - 1)
                    x = peak * (0.5 + 0.5 * rise) * (1 - (1 - final_x / peak) * fall)
                    y = final_y * (0.2 + 0.8 * frac) if paper_like else final_y * (1.5 - 0.5 * frac)
                    hsic.append({"dataset": dataset, "arch": arch, "mode": mode, "seed": seed, "epoch": epoch,
                                 "layer": layer, "layer_name": name, **SETTING, "n_samples": 1000,
                                 "n_batches": 8, "value_xz": x, "value_xz_std": 0.1, "value_yz": y,
                                 "value_yz_std": 0.01, **evidence(x, y)})  # fmt: skip
                    acc = (0.9 + 0.015 * layer if paper_like else 0.95) if epoch == last else 0.8
                    probes.append({"dataset": dataset, "arch": arch, "mode": mode, "seed": seed, "epoch": epoch,
                                   "layer": layer, "layer_name": name, "probe_train_size": 500,
                                   "probe_test_size": 500, "train_accuracy": 1.0, "accuracy": acc + wobble})  # fmt: skip
            compressed = float(np.mean(comp_mid))
            gap = 0.02 + 0.002 * compressed if reverse else 0.02 + 0.1 * math.exp(-compressed / 10)
            final_test = (0.97 if e2e != reverse else 0.93) + wobble
            for epoch in epochs:
                frac = epoch / last
                test = 0.1 + (final_test - 0.1) * frac
                rows = [("test", test), ("train", test + gap * frac)]
                for split, acc in rows:
                    metrics.append({"dataset": dataset, "arch": arch, "mode": mode, "seed": seed, "epoch": epoch,
                                    "split": split, "layer": len(LAYERS) - 1, "layer_name": "classifier",
                                    "readout": "classifier", "loss": 1 - acc, "accuracy": acc})  # fmt: skip
                    if not e2e:  # auxiliary-head rows: must not be read as the whole network
                        metrics.append({"dataset": dataset, "arch": arch, "mode": mode, "seed": seed,
                                        "epoch": epoch, "split": split, "layer": 0, "layer_name": "b0",
                                        "readout": "head", "loss": 2.0, "accuracy": 0.5})  # fmt: skip
    return pd.DataFrame(metrics), pd.DataFrame(hsic), pd.DataFrame(probes)
