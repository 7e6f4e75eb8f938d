"""The ridge R = K~ (K~ + eps m I)^-1 of the nocco family (``ridge_matrix``) and the SPD inverse it
uses (``spd_inverse``).

R = K~ (K~ + eps m I)^-1 = I - eps m C^-1 with C = K~ + eps m I: C^-1 from a Cholesky factorization
C = L L^T (m^3/3 flops) and the inverse from the factor (LAPACK potri, ``torch.cholesky_inverse``,
2m^3/3 flops, symmetric by construction), m^3 in all. This is chosen over the Cholesky solve
C R = K~ with m right-hand sides (2.33 m^3 in all): R is needed in full (for the gathered null, Y
and the ceiling), and the accuracy is the solve's: both have a forward error of order cond(C) u in
R (cond(C) = (l_max + eps m) / (eps m)), as C^-1's error, relative to ||C^-1|| = 1/(eps m), is
multiplied by eps m (``ridge_matrix(method="solve")`` keeps the solve; the tests compare both and
the eigh form).

On the CPU, for 96 <= m <= 512 (``BLOCK_SIZES``; the paper's m = 128 among them), LAPACK's potrf and
potri on a 128 x 128 matrix run at a sixth of the float64 GEMM rate, so C^-1 is formed one level of
2 x 2 blocks down (``block_spd_inverse``): two half-size factorizations and inverses, a triangular
solve and four half-size GEMMs, the same m^3 flops (1.0 ms against 1.6 ms for a (7, 128, 128)
stack, one thread; the benchmark's ridge table prints both routes at several m). It is block Cholesky: the Schur
complement is S = A22 - X^T X with X = L11^-1 A12 from the triangular solve (as potrf forms it),
so it is as backward stable; in the tests its R is within 1e-12 of the eigh form where potri's is
within 1e-13. If the factorization fails for a batch member (tiny eps: C not numerically
positive definite), only that member gets R = U diag(l / (l + eps m)) U^T from the symmetric
eigendecomposition K~ = U diag(l) U^T, l clamped at 0; one sync to find such members.

A centered kernel given by few centered features, K~ = F F^T with F (m, r), r <= m / 2 (one-hot
labels: r = the classes; a linear kernel of few units), has R = F (F^T F + eps m I_r)^-1 F^T
(``low_rank_ridge``): an r x r factorization and O(m^2 r) flops instead of m^3.
"""

from __future__ import annotations

import torch

#: Sizes m at which C^-1 is formed by ``block_spd_inverse`` on the CPU: where it beat potrf + potri
#: in the benchmark's ridge table for a stack of 7, two runs, one thread (block/potri 0.80 at
#: m = 96, 0.62 at 128, 0.96 at 160, 0.93 at 200, 0.76-0.80 at 256, 0.84 at 384, 0.74-0.76 at 512;
#: 1.06 at 64 and 1.00-1.06 at 1000, where LAPACK's own blocking pays). Elsewhere, and on GPUs
#: (where the extra launches cost more than the flops), potrf + potri.
BLOCK_SIZES = range(96, 513)

RIDGE_METHODS = ("cholesky", "solve", "eigh")


def _factor(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, failed): the Cholesky factor of a (B, n, n) stack, the identity where it failed (a partial
    factor must not reach potri or a solve; the member is redone by the caller), no sync."""
    factor, info = torch.linalg.cholesky_ex(c)
    failed = info != 0
    eye = torch.eye(c.shape[-1], dtype=c.dtype, device=c.device)
    return torch.where(failed[:, None, None], eye, factor), failed


def block_spd_inverse(c: torch.Tensor, scale: float = 1.0, identity: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(identity I + scale C^-1, failed) of a (B, m, m) symmetric positive definite stack, by one
    level of 2 x 2 blocks (the affine map applied to the blocks, before they are joined).

    With C = [[A11, A12], [A12^T, A22]], L11 L11^T = A11, X = L11^-1 A12, the Schur complement
    S = A22 - X^T X = L22 L22^T, W = A11^-1 A12:
    C^-1 = [[A11^-1 + W S^-1 W^T, -W S^-1], [-S^-1 W^T, S^-1]], A11^-1 and S^-1 from their factors.
    Symmetric by construction (the top-left block symmetrized). ``failed``: a factorization failed."""
    half = c.shape[-1] // 2
    a11, a12, a22 = c[:, :half, :half], c[:, :half, half:], c[:, half:, half:]
    l11, failed = _factor(a11)
    x = torch.linalg.solve_triangular(l11, a12, upper=False)
    l22, failed_s = _factor(torch.baddbmm(a22, x.mT, x, alpha=-1.0))
    inv11, inv22 = torch.cholesky_inverse(l11), torch.cholesky_inverse(l22)
    w = torch.bmm(inv11, a12)
    ws = torch.bmm(w, inv22)  # W S^-1
    corner = torch.bmm(ws, w.mT)
    corner = (corner + corner.mT).mul_(0.5).add_(inv11)
    out = torch.empty_like(c)
    out[:, :half, :half] = corner.mul_(scale)
    out[:, :half, half:] = ws.mul_(-scale)
    out[:, half:, :half] = ws.mT
    out[:, half:, half:] = inv22.mul_(scale)
    if identity:
        out.diagonal(dim1=-2, dim2=-1).add_(identity)
    return out, failed | failed_s


def spd_inverse(c: torch.Tensor, block: bool | None = None, *, scale: float = 1.0,
                identity: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(identity I + scale C^-1, failed) of a (B, m, m) symmetric positive definite stack (C^-1 by
    default): ``block_spd_inverse`` where ``block`` (None: on the CPU at ``BLOCK_SIZES``), else
    potrf + potri. No sync."""
    if block is None:
        block = c.device.type == "cpu" and c.shape[-1] in BLOCK_SIZES
    if block and c.shape[-1] >= 2:
        return block_spd_inverse(c, scale, identity)
    factor, failed = _factor(c)
    inverse = torch.cholesky_inverse(factor).mul_(scale)
    if identity:
        inverse.diagonal(dim1=-2, dim2=-1).add_(identity)
    return inverse, failed


def ridge_matrix(centered: torch.Tensor, epsilon: float, method: str = "cholesky",
                 block: bool | None = None) -> torch.Tensor:
    """R = K~ (K~ + eps m I)^-1 of a (m, m) or (B, m, m) centered kernel, float64.

    ``cholesky`` (the engine's): R = I - eps m C^-1 with C^-1 from ``spd_inverse``, 1 m^3 flops in
    all (``block``: force or forbid its block route); ``solve``: the Cholesky solve C R = K~ with m
    right-hand sides, 2.33 m^3; ``eigh``:
    R = U diag(l / (l + eps m)) U^T, l clamped at 0. For the Cholesky methods, batch members whose
    factorization fails (not numerically positive definite) get the eigh form; one sync to find them."""
    if method not in RIDGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, RIDGE_METHODS))}, got {method!r}")
    single = centered.ndim == 2
    k = centered.unsqueeze(0) if single else centered
    shift = epsilon * k.shape[-1]
    if method == "eigh":
        r = _ridge_eigh(k, shift)
    else:
        shifted = k.clone()
        shifted.diagonal(dim1=-2, dim2=-1).add_(shift)
        if method == "solve":
            factor, failed = _factor(shifted)
            r = torch.cholesky_solve(k, factor)
        else:
            r, failed = spd_inverse(shifted, block, scale=-shift, identity=1.0)
        del shifted
        if r.mT.is_contiguous() and not r.is_contiguous():  # LAPACK's column-major output: R = R^T, row-major
            r = r.mT
        if bool(failed.any()):
            idx = failed.nonzero().squeeze(1)
            r[idx] = _ridge_eigh(k[idx], shift)
    return r[0] if single else r


def low_rank_pays(rank: int, m: int) -> bool:
    """Whether ``low_rank_ridge`` is the route for features of this rank: r <= m / 2."""
    return 2 * rank <= m


def low_rank_ridge(features: torch.Tensor, epsilon: float) -> torch.Tensor | None:
    """R of the centered kernel K~ = F F^T of (B, m, r) centered features F, r < m, by the push-through
    identity R = F (F^T F + eps m I_r)^-1 F^T = P^T P with P = L^-1 F^T, L L^T = F^T F + eps m I_r:
    O(m^2 r) flops instead of m^3 (one-hot labels: r = the classes; a linear kernel of few units).
    Symmetrized; None (one sync) where a factorization fails, for the caller's full route."""
    f = features.to(torch.float64)
    shift = epsilon * f.shape[1]
    small = f.mT @ f
    small.diagonal(dim1=-2, dim2=-1).add_(shift)
    factor, info = torch.linalg.cholesky_ex(small)
    if bool((info != 0).any()):
        return None
    half = torch.linalg.solve_triangular(factor, f.mT, upper=False)  # (B, r, m)
    r = half.mT @ half
    return (r + r.mT).mul_(0.5)


def _ridge_eigh(k: torch.Tensor, shift: float) -> torch.Tensor:
    lam, vec = torch.linalg.eigh(k)
    lam = lam.clamp_min(0.0)
    half = vec * (lam / (lam + shift)).sqrt()[:, None, :]
    return half @ half.mT
