"""Binning MI (``binning``), bits: every unit cut into equal bins, one symbol per sample."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from .base import ESTIMATORS, Scores
from .geometry import batch_chunks, check_label_stack, check_stack
from .mutual_information import MIEstimator, Reference, entropy_of_symbols, integer, real, run_lengths
from .settings import BinningSettings


# --------------------------------------------------------------------------- binning


BIN_RANGE_RULES = ("snapshot", "run_max")


def binning_range_max(layer_tensors: Iterable[torch.Tensor | np.ndarray]) -> float:
    """The largest activation of one layer over all snapshots of a run: the upper end of Saxe et
    al.'s (2018) [0, max] bin range for ReLU layers (pass it as the setting ``range_max`` with
    ``bin_range="run_max"``)."""
    best = -math.inf
    count = 0
    for t in layer_tensors:
        t = torch.as_tensor(t)
        if t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            raise ValueError("binning_range_max: a snapshot holds NaN or Inf activations (a diverged run?)")
        best = max(best, float(t.max()))
        count += 1
    if count == 0:
        raise ValueError(
            "binning_range_max: no activations given (pass the layer's tensor from every snapshot of the run)"
        )
    if best < 0:
        raise ValueError(
            f"binning_range_max: the run's largest activation is {best!r} < 0, so [0, max] is empty; "
            "run_max is for non-negative (ReLU) layers: use bin_range 'snapshot' or a fixed [lo, hi]"
        )
    return best


class BinningEstimator(MIEstimator):
    """Binning MI, bits (Shwartz-Ziv & Tishby 2017, "Opening the black box of deep neural networks
    via information"; Saxe et al. 2018, "On the information bottleneck theory of deep learning").

    Every unit is cut into ``bins`` equal bins over [lo, hi] (``bin_range``: "snapshot" = min..max
    of the layer over the whole (B, m, d) stack passed to score; [lo, hi] fixed; "run_max" =
    [0, range_max]); bin index floor((t - lo) / (hi - lo) * bins), values outside [lo, hi] go to
    the edge bins (their share is ``extra["clipped_fraction"]``), t = hi to the last bin; a
    zero-width range puts everything in one bin. A sample's binned vector is one symbol (exact
    row identity, ``torch.unique(dim=0)``). H(T) from the symbol frequencies of each batch; for a
    deterministic layer I(X;T) = H(T) <= log2 m (``extra["saturation_bound"]``);
    I(T;Y) = H(T) - H(T|Y) = H(T) + H(Y) - H(T,Y). No null for I(X;T) (H(T) is invariant to
    shuffling Z against X); I(T;Y) null by re-pairing labels and symbols."""

    name = "binning"
    unit = "bits"
    settings = BinningSettings

    def check_values(self, s: dict) -> dict:
        s["bins"] = integer(s["bins"], "bins", self.name)
        if s["bins"] < 1:
            raise ValueError(
                f"binning: bins (bins per unit) must be >= 1, got {s['bins']}; the papers use 30"
            )
        rng = s["bin_range"]
        if isinstance(rng, str):
            if rng not in BIN_RANGE_RULES:
                raise ValueError(
                    f"binning: bin_range must be 'snapshot', 'run_max' or a pair [lo, hi], got {rng!r}"
                )
        elif isinstance(rng, (list, tuple)) and len(rng) == 2:
            lo, hi = (real(v, "bin_range", self.name) for v in rng)
            if not lo < hi:
                raise ValueError(f"binning: a fixed bin_range [lo, hi] needs lo < hi, got {list(rng)}")
            s["bin_range"] = (lo, hi)
        else:
            raise ValueError(
                f"binning: bin_range must be 'snapshot', 'run_max' or a pair [lo, hi], got {rng!r}"
            )
        if s["bin_range"] == "run_max":
            if s["range_max"] is None:
                raise ValueError(
                    "binning: bin_range 'run_max' needs the setting range_max (the layer's largest "
                    "activation over the run: binning_range_max(...))"
                )
            s["range_max"] = real(s["range_max"], "range_max", self.name)
            if s["range_max"] < 0:
                raise ValueError(
                    f"binning: range_max must be >= 0 for the range [0, range_max], got {s['range_max']}"
                )
        elif s["range_max"] is not None:
            raise ValueError(
                "binning: range_max is only used with bin_range 'run_max'; drop it or set bin_range"
            )
        return s

    def used_keys(self, setting: Mapping) -> tuple[str, ...]:
        """range_max only for bin_range run_max (the stage resolves it per layer and run)."""
        return ("bins", "bin_range", *(("range_max",) if setting.get("bin_range") == "run_max" else ()))

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> Reference:
        key = self.reference_key(role, setting)
        if role == "x":  # I(X;T) = H(T) for a deterministic layer: X is not needed
            x = check_stack(data, "binning: x")
            return Reference(self.name, "x", x.shape[0], x.shape[1], key)
        y = check_label_stack(data)
        classes = torch.unique(y, return_inverse=True)[1]  # labels as 0..C-1
        return Reference(
            self.name, "y", y.shape[0], y.shape[1], key, {"classes": classes, "n_classes": classes.max() + 1}
        )

    @staticmethod
    def _range(z: torch.Tensor, s: dict) -> tuple[float, float]:
        if s["bin_range"] == "snapshot":
            return float(z.min()), float(z.max())
        if s["bin_range"] == "run_max":
            return 0.0, s["range_max"]
        return s["bin_range"]

    def symbols(self, z: torch.Tensor, setting: Mapping | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, m) int64 symbol ids (equal ids = equal binned vectors) and the (B,) clipped fraction."""
        return self._symbols(check_stack(z, "binning: z"), self.resolve_setting(setting))

    def _symbols(self, z: torch.Tensor, s: dict) -> tuple[torch.Tensor, torch.Tensor]:
        batches, m, d = z.shape
        lo, hi = self._range(z, s)
        n = s["bins"]
        index_dtype = torch.int16 if n <= 2**15 else torch.int64
        binned = torch.empty(batches, m, d, dtype=index_dtype, device=z.device)
        clipped = torch.empty(batches, dtype=torch.float64, device=z.device)
        for part in batch_chunks(batches, m * d):
            t = z[part].to(torch.float64)
            clipped[part] = ((t < lo) | (t > hi)).to(torch.float64).mean(dim=(1, 2))
            if hi > lo:
                idx = torch.floor((t - lo) / (hi - lo) * n).clamp_(0, n - 1)
            else:
                idx = torch.zeros_like(t)
            binned[part] = idx.to(index_dtype)
        ids = torch.unique(binned.reshape(batches * m, d), dim=0, return_inverse=True)[1]
        return ids.reshape(batches, m), clipped

    def score_checked(self, ref_x: Reference, ref_y: Reference, z: torch.Tensor, s: dict,
                      perms: torch.Tensor | None) -> Scores:
        device = z.device
        batches, m, _ = z.shape
        sym, clipped = self._symbols(z, s)
        classes = ref_y.tensors["classes"].to(device)
        n_classes = int(ref_y.tensors["n_classes"])
        h_t = entropy_of_symbols(sym)
        h_y = entropy_of_symbols(classes)
        i_ty = h_t + h_y - entropy_of_symbols(sym * n_classes + classes)
        scores = Scores(
            value_xz=h_t,
            value_yz=i_ty,
            null_xz=None,
            null_yz=None,
            extra={
                "saturation_bound": torch.full((batches,), math.log2(m), dtype=torch.float64, device=device),
                "n_symbols": (run_lengths(sym) > 0).sum(dim=-1).to(torch.float64),
                "clipped_fraction": clipped,
            },
        )
        if perms is not None:
            # (Y, Z[perm]): y_i paired with the symbol of z_perm(i).
            joint = (
                sym.gather(1, perms.reshape(batches, -1)).reshape(perms.shape) * n_classes
                + classes[:, None, :]
            )
            scores.null_yz = (h_t + h_y)[:, None] - entropy_of_symbols(joint)
        return scores




ESTIMATORS.register(BinningEstimator.name)(BinningEstimator())
