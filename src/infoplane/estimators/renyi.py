"""Matrix-based Renyi alpha-entropy MI (``renyi``), bits: formulas in ``RenyiEstimator``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from . import geometry
from .base import ESTIMATORS, Scores
from .geometry import check_label_stack, check_stack, squared_distances
from .mutual_information import MIEstimator, Reference, integer, real, run_lengths
from .null import gather_pairs
from .settings import RenyiSettings


# --------------------------------------------------------------------------- matrix-based Renyi


RENYI_WIDTH_RULES = ("silverman", "knn", "fixed")


def renyi_entropy_from_eigenvalues(eigenvalues: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_alpha = log2(sum_i lambda_i^alpha) / (1 - alpha) over the last axis (Giraldo et al. 2015).

    Eigenvalues of a unit-trace PSD (m, m) matrix. The eigensolver's absolute error is about
    eps * lambda_max, so eigenvalues up to m * eps * lambda_max (the usual numerical-rank
    tolerance) are rounding noise, negative or positive: they are set to 0. Tiny negatives
    would otherwise be NaN under a fractional power, and for alpha < 1 tiny positives would add
    noise^alpha (1e-17^0.5 = 3e-9 each) to the sum."""
    lam = eigenvalues.to(torch.float64)
    tol = lam.shape[-1] * torch.finfo(torch.float64).eps * lam.amax(dim=-1, keepdim=True)
    lam = torch.where(lam > tol, lam, 0.0)
    return torch.log2(lam.pow(alpha).sum(dim=-1)) / (1.0 - alpha)


def matrix_renyi_entropy(a: torch.Tensor, alpha: float) -> torch.Tensor:
    """S_alpha(A) of a (..., m, m) stack of unit-trace PSD matrices, by batched eigvalsh."""
    return renyi_entropy_from_eigenvalues(torch.linalg.eigvalsh(a.to(torch.float64)), alpha)


def normalized_gram(k: torch.Tensor) -> torch.Tensor:
    """A_ij = K_ij / (m sqrt(K_ii K_jj)), so that tr A = 1 (Giraldo et al. 2015)."""
    m = k.shape[-1]
    root = k.diagonal(dim1=-2, dim2=-1).sqrt()
    return k / (m * root[..., :, None] * root[..., None, :])


def _unit_trace(h: torch.Tensor) -> torch.Tensor:
    return h / h.diagonal(dim1=-2, dim2=-1).sum(dim=-1)[..., None, None]


def renyi_width(
    d2: torch.Tensor, dim: int, rule: str, k: int | None = None, sigma: float | None = None
) -> torch.Tensor:
    """(B,) Gaussian kernel width sigma per batch from the (B, m, m) squared distances.

    - ``silverman``: Silverman's (1986, section 4.3.2) normal-reference rule for a d-variate
      Gaussian kernel, sigma = s (4 / ((d + 2) m))^(1 / (d + 4)), with s^2 the mean over the d
      units of their sample variances (ddof 1), s^2 = sum_ij D_ij / (2 m (m - 1) d).
    - ``knn``: the mean over samples of the mean Euclidean distance to their k nearest other
      samples (Wickstrom et al. 2019).
    - ``fixed``: sigma as given.
    """
    batches, m, _ = d2.shape
    if rule == "silverman":
        spread = (d2.sum(dim=(1, 2)) / (2.0 * m * (m - 1) * dim)).sqrt()
        return spread * (4.0 / ((dim + 2.0) * m)) ** (1.0 / (dim + 4.0))
    if rule == "knn":
        off = d2 + torch.diag(torch.full((m,), math.inf, dtype=d2.dtype, device=d2.device))
        nearest = off.topk(k, dim=-1, largest=False).values  # (B, m, k) squared distances
        return nearest.sqrt().mean(dim=(1, 2))
    if rule == "fixed":
        return torch.full((batches,), float(sigma), dtype=torch.float64, device=d2.device)
    raise ValueError(f"renyi: unknown width rule {rule!r}; allowed: {', '.join(RENYI_WIDTH_RULES)}")


def gaussian_gram(d2: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """K_ij = exp(-D_ij / (2 sigma_b^2)) per batch; a zero width (all samples equal, or a k-NN
    width of duplicates) gives its limit: 1 where D_ij = 0, else 0."""
    scale = (2.0 * sigma.to(torch.float64) ** 2)[:, None, None]
    return torch.where(d2 > 0, torch.exp(-d2 / scale), 1.0)


class RenyiEstimator(MIEstimator):
    """Matrix-based Renyi alpha-entropy MI, bits (Giraldo, Rao & Principe 2015, "Measures of
    entropy from data using infinitely divisible kernels"; Yu et al. 2019; Wickstrom et al. 2019).

    A = K / (m sqrt(K_ii K_jj)), S_alpha(A) = log2(sum lambda^alpha) / (1 - alpha),
    S_alpha(A, B) = S_alpha(A o B / tr(A o B)), I_alpha = S_alpha(A) + S_alpha(B) - S_alpha(A, B).
    X and Z: Gaussian Gram exp(-||a_i - a_j||^2 / (2 sigma^2)) with the width rule ``width``
    (``renyi_width``) applied to each batch and each variable. Y: the one-hot kernel
    K_ij = [y_i = y_j], whose normalized Gram has the class proportions as eigenvalues, so
    S_alpha(A_Y) is the Renyi entropy of the proportions (used in closed form).
    Null: S(A_X) + S(A_Z) - S(A_X o P A_Z P^T / tr), and the same with A_Y: the marginals are
    permutation invariant, only the joint term is recomputed (a (B*P, m, m) eigvalsh)."""

    name = "renyi"
    unit = "bits"
    settings = RenyiSettings

    def check_values(self, s: dict) -> dict:
        s["alpha"] = real(s["alpha"], "alpha", self.name)
        if s["alpha"] <= 0 or s["alpha"] == 1.0:
            raise ValueError(
                f"renyi: alpha must be > 0 and != 1 (alpha = 1 is the Shannon limit, where "
                f"1/(1 - alpha) diverges), got {s['alpha']!r}; the usual choice is alpha = 1.01"
            )
        if s["width"] not in RENYI_WIDTH_RULES:
            raise ValueError(
                f"renyi: unknown width rule {s['width']!r}; allowed: {', '.join(RENYI_WIDTH_RULES)}"
            )
        s["k"] = integer(s["k"], "k", self.name)
        if s["k"] < 1:
            raise ValueError(f"renyi: k (nearest neighbours of the knn width) must be >= 1, got {s['k']}")
        if s["width"] == "fixed" and s["sigma"] is None:
            raise ValueError("renyi: width 'fixed' needs the setting sigma (the kernel width, > 0)")
        if s["sigma"] is not None:
            s["sigma"] = real(s["sigma"], "sigma", self.name)
            if s["sigma"] <= 0:
                raise ValueError(f"renyi: sigma (the fixed kernel width) must be > 0, got {s['sigma']!r}")
        return s

    def used_keys(self, setting: Mapping) -> tuple[str, ...]:
        """The keys a setting uses: sigma only for the fixed width, k only for knn."""
        width = setting.get("width", self.settings.defaults()["width"])
        return ("alpha", "width", *(("k",) if width == "knn" else ()), *(("sigma",) if width == "fixed" else ()))

    def _width_key(self, s: dict) -> tuple:
        if s["width"] == "knn":
            return ("knn", s["k"])
        if s["width"] == "fixed":
            return ("fixed", s["sigma"])
        return ("silverman",)

    def reference_key(self, role: str, setting: Mapping | None) -> tuple:
        """X's reference depends on the width rule only (alpha enters in score); Y's on nothing."""
        s = self.resolve_setting(setting)
        if role == "x":
            return (self.name, "x", *self._width_key(s))
        if role == "y":
            return (self.name, "y")
        raise ValueError(f"role must be 'x' or 'y', got {role!r}")

    def _check_k(self, s: dict, m: int) -> None:
        if s["width"] == "knn" and s["k"] >= m:
            raise ValueError(
                f"renyi: k = {s['k']} nearest neighbours needs k < m = {m} (each sample has m - 1 "
                "others); lower k or use larger batches"
            )

    def _gram(self, t: torch.Tensor, s: dict) -> tuple[torch.Tensor, torch.Tensor]:
        d2 = squared_distances(t)
        sigma = renyi_width(d2, t.shape[-1], s["width"], k=s["k"], sigma=s["sigma"])
        return normalized_gram(gaussian_gram(d2, sigma)), sigma

    def prepare(self, data: torch.Tensor, role: str, setting: Mapping | None) -> Reference:
        s = self.resolve_setting(setting)
        key = self.reference_key(role, s)
        if role == "x":
            x = check_stack(data, "renyi: x")
            self._check_k(s, x.shape[1])
            a, sigma = self._gram(x, s)
            lam = torch.linalg.eigvalsh(a)
            return Reference(
                self.name, "x", x.shape[0], x.shape[1], key, {"gram": a, "eigenvalues": lam, "sigma": sigma}
            )
        y = check_label_stack(data)
        m = y.shape[1]
        a = (y[:, :, None] == y[:, None, :]).to(torch.float64) / m
        lam = run_lengths(y) / m  # the class proportions, zero-padded: the eigenvalues of A_Y
        return Reference(self.name, "y", y.shape[0], m, key, {"gram": a, "eigenvalues": lam})

    def score_checked(self, ref_x: Reference, ref_y: Reference, z: torch.Tensor, s: dict,
                      perms: torch.Tensor | None) -> Scores:
        if ref_x.key != self.reference_key("x", s):
            raise ValueError(
                f"renyi: ref_x was prepared with {ref_x.key} but score got the width {self._width_key(s)}"
            )
        self._check_k(s, z.shape[1])
        device = z.device
        alpha = s["alpha"]
        ax, ay = ref_x.tensors["gram"].to(device), ref_y.tensors["gram"].to(device)
        hx = renyi_entropy_from_eigenvalues(ref_x.tensors["eigenvalues"].to(device), alpha)
        hy = renyi_entropy_from_eigenvalues(ref_y.tensors["eigenvalues"].to(device), alpha)
        az, sigma_z = self._gram(z, s)
        hz = matrix_renyi_entropy(az, alpha)
        joint = torch.stack([_unit_trace(ax * az), _unit_trace(ay * az)], dim=1)  # (B, 2, m, m)
        hj = matrix_renyi_entropy(joint, alpha)
        scores = Scores(
            value_xz=hx + hz - hj[:, 0],
            value_yz=hy + hz - hj[:, 1],
            null_xz=None,
            null_yz=None,
            extra={"entropy_z": hz, "sigma_z": sigma_z, "sigma_x": ref_x.tensors["sigma"].to(device)},
        )
        if perms is not None:
            hj_null = self._joint_null(ax, ay, az, perms, alpha)  # (B, P, 2)
            scores.null_xz = hx[:, None] + hz[:, None] - hj_null[..., 0]
            scores.null_yz = hy[:, None] + hz[:, None] - hj_null[..., 1]
        return scores

    @staticmethod
    def _joint_null(ax, ay, az, perms, alpha) -> torch.Tensor:
        """(B, P, 2) joint entropies S(A_X o A_Z[perm, perm]) and S(A_Y o A_Z[perm, perm])."""
        batches, n_perm, m = perms.shape
        out = torch.empty(batches, n_perm, 2, dtype=torch.float64, device=az.device)
        # About 6 (B, m, m) float64 temporaries per permutation (gather, products, stack, solver copy).
        step = max(1, geometry.STACK_BUDGET_ELEMENTS // (6 * batches * m * m))
        for start in range(0, n_perm, step):
            part = slice(start, min(n_perm, start + step))
            azp = gather_pairs(az, perms[:, part])  # (B, p, m, m)
            joint = torch.stack([_unit_trace(ax[:, None] * azp), _unit_trace(ay[:, None] * azp)], dim=2)
            out[:, part] = matrix_renyi_entropy(joint, alpha)
        return out




ESTIMATORS.register(RenyiEstimator.name)(RenyiEstimator())
