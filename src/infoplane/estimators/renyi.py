"""Matrix-based Renyi alpha-entropy MI (``renyi``), bits: formulas in ``RenyiEstimator``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from . import geometry
from .base import ESTIMATORS, Scores
from .geometry import check_label_stack, check_stack, squared_distances
from .mutual_information import MIEstimator, Reference, integer, real, run_lengths
from .null import Permutations, gather_pairs
from .settings import RenyiSettings


# --------------------------------------------------------------------------- matrix-based Renyi


RENYI_WIDTH_RULES = ("silverman", "knn", "fixed")


def renyi_entropy_from_eigenvalues(eigenvalues: torch.Tensor, alpha: float, size: int | None = None) -> torch.Tensor:
    """S_alpha = log2(sum_i lambda_i^alpha) / (1 - alpha) over the last axis (Giraldo et al. 2015).

    Eigenvalues of a unit-trace PSD (m, m) matrix (``size`` = m where the last axis holds the
    spectra of its diagonal blocks, zero-padded). The eigensolver's absolute error is about
    eps * lambda_max, so eigenvalues up to m * eps * lambda_max (the usual numerical-rank
    tolerance) are rounding noise, negative or positive: they are set to 0. Tiny negatives
    would otherwise be NaN under a fractional power, and for alpha < 1 tiny positives would add
    noise^alpha (1e-17^0.5 = 3e-9 each) to the sum."""
    lam = eigenvalues.to(torch.float64)
    tol = (size or lam.shape[-1]) * torch.finfo(torch.float64).eps * lam.amax(dim=-1, keepdim=True)
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


def renyi2_entropy(a: torch.Tensor) -> torch.Tensor:
    """S_2(A) = -log2 sum_i lambda_i^2 = -log2 ||A||_F^2 of a (..., m, m) stack of unit-trace
    symmetric matrices: alpha = 2 in closed form, no eigenvalues."""
    return -torch.log2(a.to(torch.float64).square().sum(dim=(-2, -1)))


def class_blocks(y: torch.Tensor) -> torch.Tensor | None:
    """(B, U, c) sample indices of each batch's classes (U labels present in the stack, c the
    largest class), padded with m; None where the blocks would not save eigenvalue work.

    A_Y o M is zero between samples of different classes, so after grouping the samples by class
    it is block diagonal and its spectrum is the union of the spectra of its U class blocks
    M[I_c, I_c] / m: U eigenproblems of size <= c instead of one of size m (for 10 balanced
    classes in a batch of 128, about 1/25 of the work). Exact, not an approximation. One sync."""
    batches, m = y.shape
    values = torch.unique(y)
    code = torch.searchsorted(values, y)  # (B, m) class number 0..U-1
    count = values.numel()
    sizes = torch.zeros(batches, count, dtype=torch.int64, device=y.device).scatter_add_(
        1, code, torch.ones_like(code))
    largest = int(sizes.max())
    if count * largest**3 * 2 >= m**3:
        return None
    position = torch.arange(m, device=y.device)
    order = (code * m + position).argsort(dim=1)  # grouped by class, sample order kept inside
    grouped = code.gather(1, order)
    start = sizes.cumsum(dim=1) - sizes
    rank = position - start.gather(1, grouped)  # place within the class
    index = torch.full((batches, count * largest), m, dtype=torch.int64, device=y.device)
    return index.scatter_(1, grouped * largest + rank, order).view(batches, count, largest)


def label_joint_entropy(az: torch.Tensor, blocks: torch.Tensor, alpha: float,
                        perms: torch.Tensor | None = None) -> torch.Tensor:
    """S_alpha(A_Y o A_Z[pi, pi] / tr) from the class blocks (``class_blocks``): (B,) without perms,
    (B, P) with (B, P, m) perms. The 1/m of A_Y cancels in the unit-trace normalization."""
    batches, m, _ = az.shape
    count, largest = blocks.shape[1:]
    padded = torch.nn.functional.pad(az.to(torch.float64), (0, 1, 0, 1))  # index m reads 0
    rows_all = blocks[:, None] if perms is None else torch.cat(
        [perms, torch.full((batches, perms.shape[1], 1), m, dtype=perms.dtype, device=perms.device)], dim=2)
    n_perm = 1 if perms is None else perms.shape[1]
    out = torch.empty(batches, n_perm, dtype=torch.float64, device=az.device)
    step = max(1, geometry.STACK_BUDGET_ELEMENTS // (3 * batches * count * largest * largest))
    offset = (torch.arange(batches, device=az.device) * (m + 1) ** 2)[:, None, None, None]
    for start in range(0, n_perm, step):
        part = slice(start, min(n_perm, start + step))
        if perms is None:
            rows = rows_all
        else:
            chunk = rows_all[:, part]
            rows = chunk.gather(2, blocks.reshape(batches, 1, -1).expand(-1, chunk.shape[1], -1))
            rows = rows.view(batches, -1, count, largest)
        flat = offset + rows * (m + 1)
        sub = padded.reshape(-1)[(flat[..., :, None] + rows[..., None, :]).reshape(-1)]
        sub = sub.view(batches, -1, count, largest, largest)
        trace = sub.diagonal(dim1=-2, dim2=-1).sum(dim=(-2, -1))  # (B, p)
        lam = torch.linalg.eigvalsh(sub).reshape(batches, -1, count * largest) / trace[..., None]
        out[:, part] = renyi_entropy_from_eigenvalues(lam, alpha, size=m)
    return out[:, 0] if perms is None else out


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
    permutation invariant, only the joint term is recomputed: X's by one eigvalsh of a (B, P, m, m)
    stack (chunked to ``STACK_BUDGET_ELEMENTS``), Y's from the spectra of the class blocks
    (``class_blocks``: A_Y o M is block diagonal by class, exactly). alpha = 2 needs no eigenvalues:
    S_2(A) = -log2 ||A||_F^2 (``renyi2_entropy``), and its null is a gather of A_Z^2
    (``renyi2_joint_null``), O(P m^2) like the kernel family's. Trade-off: alpha = 2 weighs the
    large eigenvalues more (a collision entropy, less sensitive to the spectrum's tail) than
    alpha -> 1 (Shannon's limit, the literature's 1.01); it is a different estimator, not an
    approximation of alpha = 1.01."""

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
        """X: its normalized Gram (eigenvalues on first need: alpha = 2 needs none); Y: the label
        Gram, its eigenvalues (the class proportions) and its class blocks (``class_blocks``)."""
        s = self.resolve_setting(setting)
        key = self.reference_key(role, s)
        if role == "x":
            x = check_stack(data, "renyi: x")
            self._check_k(s, x.shape[1])
            a, sigma = self._gram(x, s)
            return Reference(self.name, "x", x.shape[0], x.shape[1], key, {"gram": a, "sigma": sigma})
        y = check_label_stack(data)
        m = y.shape[1]
        a = (y[:, :, None] == y[:, None, :]).to(torch.float64) / m
        lam = run_lengths(y) / m  # the class proportions, zero-padded: the eigenvalues of A_Y
        tensors = {"gram": a, "eigenvalues": lam}
        blocks = class_blocks(y)
        if blocks is not None:
            tensors["blocks"] = blocks
        return Reference(self.name, "y", y.shape[0], m, key, tensors)

    @staticmethod
    def _entropy(ref: Reference, alpha: float, device: torch.device) -> torch.Tensor:
        """(B,) S_alpha of a reference's Gram; its eigenvalues computed once, on first need, and kept."""
        if alpha == 2.0 and ref.role == "x":
            return renyi2_entropy(ref.tensors["gram"].to(device))
        if "eigenvalues" not in ref.tensors:
            ref.tensors["eigenvalues"] = torch.linalg.eigvalsh(ref.tensors["gram"])
        return renyi_entropy_from_eigenvalues(ref.tensors["eigenvalues"].to(device), alpha)

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
        blocks = ref_y.tensors.get("blocks")
        blocks = None if blocks is None else blocks.to(device)
        hx, hy = self._entropy(ref_x, alpha, device), self._entropy(ref_y, alpha, device)
        az, sigma_z = self._gram(z, s)
        if alpha == 2.0:
            hz = renyi2_entropy(az)
            hjx, hjy = renyi2_entropy(_unit_trace(ax * az)), renyi2_entropy(_unit_trace(ay * az))
        else:
            hz = matrix_renyi_entropy(az, alpha)
            hjx = matrix_renyi_entropy(_unit_trace(ax * az), alpha)
            hjy = (matrix_renyi_entropy(_unit_trace(ay * az), alpha) if blocks is None
                   else label_joint_entropy(az, blocks, alpha))
        scores = Scores(
            value_xz=hx + hz - hjx,
            value_yz=hy + hz - hjy,
            null_xz=None,
            null_yz=None,
            extra={"entropy_z": hz, "sigma_z": sigma_z, "sigma_x": ref_x.tensors["sigma"].to(device)},
        )
        if perms is not None:
            if alpha == 2.0:
                hj_x, hj_y = renyi2_joint_null([ax, ay], az, perms).unbind(dim=2)
            else:
                hj_x = self._joint_null(ax, az, perms, alpha)
                hj_y = (self._joint_null(ay, az, perms, alpha) if blocks is None
                        else label_joint_entropy(az, blocks, alpha, perms))
            scores.null_xz = hx[:, None] + hz[:, None] - hj_x
            scores.null_yz = hy[:, None] + hz[:, None] - hj_y
        return scores

    @staticmethod
    def _joint_null(a, az, perms, alpha) -> torch.Tensor:
        """(B, P) joint entropies S(A o A_Z[perm, perm] / tr): one eigvalsh per chunk of permutations."""
        batches, n_perm, m = perms.shape
        out = torch.empty(batches, n_perm, dtype=torch.float64, device=az.device)
        # About 4 (B, m, m) float64 temporaries per permutation (gather, product, solver copy).
        step = max(1, geometry.STACK_BUDGET_ELEMENTS // (4 * batches * m * m))
        for start in range(0, n_perm, step):
            part = slice(start, min(n_perm, start + step))
            out[:, part] = matrix_renyi_entropy(_unit_trace(a[:, None] * gather_pairs(az, perms[:, part])), alpha)
        return out


def renyi2_joint_null(refs: list[torch.Tensor], az: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """(B, P, k) S_2(A o A_Z[pi, pi] / tr) for each reference Gram A of refs, without eigenvalues or
    permuted copies: ||A o A_Z[pi, pi]||_F^2 = sum_ij A_ij^2 (A_Z^2)_{pi_i pi_j} is the kernel null's
    gather (``Permutations.dots``, O(P m^2)), and the trace sum_i A_ii (A_Z)_{pi_i pi_i} a vector gather."""
    permutations = Permutations(perms)
    m = az.shape[-1]
    iu = torch.triu_indices(m, m, device=az.device)
    weight = torch.where(iu[0] == iu[1], 1.0, 2.0).to(torch.float64)
    packed = torch.stack([a.square()[:, iu[0], iu[1]] * weight for a in refs], dim=1)  # (B, k, T)
    frobenius = permutations.dots(az.square(), packed)  # (B, P, k)
    diagonals = torch.stack([a.diagonal(dim1=-2, dim2=-1) for a in refs], dim=-1)  # (B, m, k)
    traces = torch.bmm(permutations.gather(az.diagonal(dim1=-2, dim2=-1).contiguous()), diagonals)
    return -torch.log2(frobenius / traces.square())


ESTIMATORS.register(RenyiEstimator.name)(RenyiEstimator())
