"""Pairwise-distance (KDE) MI of the layer plus Gaussian noise (``kde``), nats or bits."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from . import geometry
from .base import ESTIMATORS, Scores
from .geometry import batch_chunks, check_label_stack, check_stack, squared_distances
from .mutual_information import LOG2E, MIEstimator, Reference, real
from .null import inverse_permutations
from .settings import KdeSettings


# --------------------------------------------------------------------------- KDE (pairwise distances)


KDE_UNITS = ("nats", "bits")


class KDEEstimator(MIEstimator):
    """Pairwise-distance MI of the layer plus Gaussian noise N(0, s^2 I) (Kolchinsky & Tracey
    2017, "Estimating mixture entropy with pairwise distances"; Saxe et al. 2018).

    With D_ij = ||t_i - t_j||^2 and L_i = log((1/m) sum_j exp(-D_ij / (2 s^2))) (log-sum-exp):
    I(T;X) = -(1/m) sum_i L_i; the KL upper bound on the entropy of the noisy layer is
    H(T) = d/2 - (1/m) sum_i [L_i - (d/2) log(2 pi s^2)] = (d/2) log(2 pi e s^2) - mean_i L_i;
    I(T;Y) = H(T) - sum_c p_c H(T | Y = c) with each conditional term the same bound on the m_c
    samples of class c. Since sum_c p_c = 1 the (d/2) log(2 pi e s^2) terms cancel exactly:
    I(T;Y) = (1/m) sum_i [L^{(y_i)}_i - L_i], L^{(c)}_i = log((1/m_c) sum_{j: y_j = c} exp(...)),
    one masked log-sum-exp over the same-class pairs (this form is used; no large constants).

    No null for I(T;X): for a deterministic layer on distinct inputs, I(T;X) = H(T) - H(noise)
    involves X only through "each sample is its own input", so shuffling Z against X leaves it
    exactly unchanged (null_xz = None). I(T;Y) null: the labels re-paired by the permutations."""

    name = "kde"
    unit = "nats"  # the default; ``unit_for(setting)`` gives the unit of a setting
    settings = KdeSettings

    def check_values(self, s: dict) -> dict:
        s["noise_variance"] = real(s["noise_variance"], "noise_variance", self.name)
        if s["noise_variance"] <= 0:
            raise ValueError(
                f"kde: noise_variance (s^2 of the added Gaussian noise) must be > 0, got "
                f"{s['noise_variance']!r}; Saxe et al. use 0.1"
            )
        if not isinstance(s["relative"], (bool, np.bool_)):
            raise ValueError(f"kde: setting 'relative' must be true or false, got {s['relative']!r}")
        s["relative"] = bool(s["relative"])
        if s["unit"] not in KDE_UNITS:
            raise ValueError(f"kde: unit must be one of {', '.join(KDE_UNITS)}, got {s['unit']!r}")
        return s

    def unit_for(self, setting: Mapping | None = None) -> str:
        return self.resolve_setting(setting)["unit"]

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> Reference:
        key = self.reference_key(role, setting)
        if role == "x":  # X enters only as "each sample is a distinct input": keep the shape
            x = check_stack(data, "kde: x")
            return Reference(self.name, "x", x.shape[0], x.shape[1], key)
        y = check_label_stack(data)
        return Reference(self.name, "y", y.shape[0], y.shape[1], key, {"labels": y})

    def noise_variance(self, z: torch.Tensor, setting: Mapping | None) -> torch.Tensor:
        """(B,) s^2 per batch: the setting's, or with ``relative`` that times the batch's mean
        squared activation (1/(m d)) sum_i ||t_i||^2 (then the estimate is scale invariant)."""
        return self._noise_variance(check_stack(z, "kde: z"), self.resolve_setting(setting))

    @staticmethod
    def _noise_variance(z: torch.Tensor, s: dict) -> torch.Tensor:
        if not s["relative"]:
            return torch.full((z.shape[0],), s["noise_variance"], dtype=torch.float64, device=z.device)
        return s["noise_variance"] * _mean_square(z)

    def score_checked(self, ref_x: Reference, ref_y: Reference, z: torch.Tensor, s: dict,
                      perms: torch.Tensor | None) -> Scores:
        device = z.device
        batches, m, d = z.shape
        s2 = self._noise_variance(z, s)
        d2 = squared_distances(z)
        # -D / (2 s^2); a zero s^2 (relative noise on an all-zero layer, where D = 0) gives 0.
        logits = torch.where(d2 > 0, -d2 / (2.0 * s2[:, None, None]), 0.0)
        lse_all = torch.logsumexp(logits, dim=-1)  # (B, m)
        log_m = math.log(m)
        i_tx = (log_m - lse_all).mean(dim=-1)
        y = ref_y.tensors["labels"].to(device)
        i_ty = self._label_term(logits, y) - (lse_all - log_m).mean(dim=-1)
        scale = LOG2E if s["unit"] == "bits" else 1.0
        entropy_bound = 0.5 * d * torch.log(2.0 * math.pi * math.e * s2) + i_tx
        scores = Scores(
            value_xz=i_tx * scale,
            value_yz=i_ty * scale,
            null_xz=None,
            null_yz=None,
            extra={"effective_noise_variance": s2, "entropy_bound": entropy_bound * scale},
        )
        if perms is not None:
            # (Y, Z[perm]) pairs y_i with z_perm(i): the same as the labels y[inv] on unpermuted Z.
            y_null = y.gather(1, inverse_permutations(perms).reshape(batches, -1)).reshape(perms.shape)
            n_perm = perms.shape[1]
            null = torch.empty(batches, n_perm, dtype=torch.float64, device=device)
            step = max(1, geometry.STACK_BUDGET_ELEMENTS // (3 * batches * m * m))  # masked logits, exp, mask
            for start in range(0, n_perm, step):
                part = slice(start, min(n_perm, start + step))
                null[:, part] = self._label_term(logits[:, None], y_null[:, part])
            scores.null_yz = (null - (lse_all - log_m).mean(dim=-1)[:, None]) * scale
        return scores

    @staticmethod
    def _label_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(1/m) sum_i log((1/m_{y_i}) sum_{j: y_j = y_i} exp(logits_ij)), batched over leading axes."""
        same = labels[..., :, None] == labels[..., None, :]
        lse_same = torch.logsumexp(logits.masked_fill(~same, -math.inf), dim=-1)
        return (lse_same - same.sum(dim=-1).to(torch.float64).log()).mean(dim=-1)


def _mean_square(z: torch.Tensor) -> torch.Tensor:
    """(B,) mean of t^2 over each batch's samples and units, float64, in bounded chunks."""
    out = torch.empty(z.shape[0], dtype=torch.float64, device=z.device)
    for part in batch_chunks(z.shape[0], z.shape[1] * z.shape[2]):
        out[part] = z[part].to(torch.float64).square().mean(dim=(1, 2))
    return out




ESTIMATORS.register(KDEEstimator.name)(KDEEstimator())
