"""The permutation null: P permutations of each batch's samples, drawn once per call and shared by
every layer and setting, the gathers that evaluate an estimator under them, and the p-value.

A null value is the same estimator on (X, Z_pi) and (Y, Z_pi), Z's samples shuffled. With the p-th
joint permutation (pi_1p, ..., pi_Bp) of the B batches, the p-value of the reported value (the mean
over batches) is p = (1 + #{p: mean_b null_{b,p} >= mean_b value_b}) / (1 + P): under independence
the joint permutations leave the data's distribution unchanged, so this is an exact Monte-Carlo
permutation test of the statistic that is reported, for any B (its smallest value is 1/(1 + P)). A
null within ``TIE_TOLERANCE`` (relative) of the value counts as >= (exact ties, e.g. an invariant
permutation, are kept exact under rounding). (Pooling the per-batch counts instead, (1 + sum_b
#{pi: null_{b,pi} >= value_b}) / (1 + P B), is exact only for B = 1: for B > 1 its null
distribution piles up around 1/2 -- the mean of B independent uniform ranks -- so p < 0.05 almost
never happens under independence: a test with 4 batches found it in 0 of 60 independent pairs
instead of about 5%.)

The kernel family's null without recomputation: permuting Z's samples permutes rows and columns of
K_Z, K~_Z, K^_Z and R_Z (H, the diagonal and the ridge commute with permutations), so a null value
is sum_ij A_ij M_{pi_i pi_j} for the reference's matrix A and Z's matrix M: a gather of M's upper
triangle at (pi_i, pi_j) (symmetry halves the work; the packed reference carries the factor 2 off
the diagonal) and a batched dot, O(P m^2), no factorization (``Permutations.dots``).
"""

from __future__ import annotations

import math

import torch

TIE_TOLERANCE = 1e-12
# A null chunk gathers at most this many float64 entries at once (plus as many int32 indices).
NULL_CHUNK_ELEMENTS = 1 << 23
# On the CPU a chunk stays cache-sized: LeNet5's 5 layers of 7 x 128 with P = 32 (references kept)
# took 36.1 ms with chunks of 2**18 entries (4 permutations) against 38.3 ms with one chunk of all
# 32 (2**23), 40.3 ms at 2**17 and 49.5 ms at 2**16 (Python overhead per chunk); best of 25, alternating.
NULL_CHUNK_ELEMENTS_CPU = 1 << 18
# On the CPU the layers of a LayerStack are gathered in groups of at most this many entries: one
# gather into a fresh 74 MB buffer (5 LeNet5 layers, 7 x 128, P = 32) took 61 ms against 12.5 ms
# for five 15 MB ones (page faults of large fresh allocations; shared 2-core machine, one thread).
NULL_GROUP_ELEMENTS_CPU = 1 << 21
# The gather indices of all chunks are kept for the whole call when they total at most this many.
NULL_INDEX_CACHE_ELEMENTS = 1 << 24


def p_values(value: torch.Tensor, joint: torch.Tensor, permutations: int, has_nan: torch.Tensor) -> torch.Tensor:
    """(R,) permutation p-values of the (R,) batch-mean values against the (R, P) batch-mean nulls
    of the joint permutations; NaN where a row's null holds a NaN."""
    scale = torch.maximum(value.abs(), joint.abs().amax(dim=1))
    hits = (joint >= (value - TIE_TOLERANCE * scale)[:, None]).sum(dim=1).to(torch.float64)
    return torch.where(has_nan, math.nan, (1.0 + hits) / (1.0 + permutations))


# --------------------------------------------------------------------------- permutations


class Permutations:
    """P permutations per batch, (B, P, m) int64, and the gathers of the null.

    Row i of a permuted batch is sample perms[b, p, i], so a kernel matrix M of Z becomes
    M_perm[i, j] = M[pi_i, pi_j]."""

    def __init__(self, perms: torch.Tensor) -> None:
        if perms.ndim != 3:
            raise ValueError(f"permutations must have shape (B, P, m), got {tuple(perms.shape)}")
        self.perms = perms
        self.batches, self.count, self.m = perms.shape
        self.triangle = self.m * (self.m + 1) // 2
        budget = NULL_CHUNK_ELEMENTS_CPU if perms.device.type == "cpu" else NULL_CHUNK_ELEMENTS
        self.chunk = max(1, budget // max(1, self.batches * self.triangle))
        self._index_cache: dict[int, torch.Tensor] | None = (
            {} if self.batches * self.count * self.triangle <= NULL_INDEX_CACHE_ELEMENTS else None)

    @classmethod
    def draw(cls, batches: int, count: int, m: int, seed: int, device: torch.device) -> Permutations:
        """Independent uniform permutations per batch from a CPU generator: identical on every device."""
        gen = torch.Generator().manual_seed(int(seed))
        keys = torch.rand((batches, count, m), generator=gen, dtype=torch.float64)
        return cls(keys.argsort(dim=-1).to(device))

    def _index(self, start: int) -> torch.Tensor:
        """Flat indices b m^2 + pi_i m + pi_j of the upper triangle (i <= j) for one chunk of permutations,
        (B * Pc * T,), int32 where B m^2 fits (index_select reads int32 about twice as fast as gather
        reads int64 indices)."""
        if self._index_cache is not None and start in self._index_cache:
            return self._index_cache[start]
        m = self.m
        dtype = torch.int32 if self.batches * m * m < 2**31 else torch.int64
        p = self.perms[:, start:start + self.chunk].to(dtype)
        iu = torch.triu_indices(m, m, device=p.device)
        offset = (torch.arange(self.batches, device=p.device, dtype=dtype) * (m * m))[:, None, None]
        index = (p * m + offset).index_select(2, iu[0]).add_(p.index_select(2, iu[1])).reshape(-1)
        if self._index_cache is not None:
            self._index_cache[start] = index
        return index

    def dots(self, matrix: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        """(L B, P, k): sum_{i<=j} packed[b, k, t(i,j)] matrix[b, pi_i, pi_j] for every permutation.

        ``matrix`` is (L B, m, m), L >= 1 layers stacked layer-major (``LayerStack``), each layer's batch
        b permuted by the same perms[b] (one index serves every layer); ``packed`` is (L B, k, T). The
        product is taken as packed @ gathered^T (L B, k, Pc), which BLAS runs ~2.5x faster than
        gathered @ packed^T for these shapes (k = 2 columns). Layers go in groups whose gathered
        entries stay within ``NULL_CHUNK_ELEMENTS`` (``NULL_GROUP_ELEMENTS_CPU`` on the CPU)."""
        layers = matrix.shape[0] // self.batches
        if layers * self.batches != matrix.shape[0]:
            raise ValueError(f"the null needs a multiple of {self.batches} batch members, got {matrix.shape[0]}")
        flat = matrix.reshape(layers, -1)
        rows = []
        for start in range(0, self.count, self.chunk):
            stop = min(start + self.chunk, self.count)
            index = self._index(start)
            cap = NULL_GROUP_ELEMENTS_CPU if matrix.device.type == "cpu" else NULL_CHUNK_ELEMENTS
            group = max(1, min(cap, NULL_CHUNK_ELEMENTS) // max(1, index.numel()))
            parts = []
            for first in range(0, layers, group):
                last = min(layers, first + group)
                if last - first == 1:  # 1-D: the CPU's index_select along dim 1 of a 2-D tensor is ~4x slower
                    gathered = flat[first].index_select(0, index)
                else:
                    gathered = flat[first:last].index_select(1, index)
                gathered = gathered.view((last - first) * self.batches, stop - start, self.triangle)
                parts.append(torch.bmm(packed[first * self.batches:last * self.batches], gathered.mT))
            rows.append(parts[0] if len(parts) == 1 else torch.cat(parts))
        return (rows[0] if len(rows) == 1 else torch.cat(rows, dim=2)).mT

    def gather(self, vectors: torch.Tensor) -> torch.Tensor:
        """(L B, P, m) vectors[l B + b, pi_i] of (L B, m) per-sample numbers (L >= 1 layers, layer-major)."""
        layers = vectors.shape[0] // self.batches
        index = self.perms.reshape(1, self.batches, -1).expand(layers, -1, -1)
        out = vectors.reshape(layers, self.batches, self.m).gather(2, index)
        return out.view(layers * self.batches, self.count, self.m)


def check_perms(
    perms: torch.Tensor | None, batches: int, m: int, device: torch.device
) -> torch.Tensor | None:
    """None, or (B, P, m) int64 on device where every row is a permutation of 0..m-1."""
    if perms is None:
        return None
    if not isinstance(perms, torch.Tensor) or perms.ndim != 3 or perms.is_floating_point():
        raise ValueError(
            f"perms must be a (B, P, m) int64 tensor of permutations (or None), got "
            f"{getattr(perms, 'dtype', type(perms).__name__)} of shape {tuple(getattr(perms, 'shape', ()))}"
        )
    if perms.shape[0] != batches or perms.shape[2] != m:
        raise ValueError(f"perms has shape {tuple(perms.shape)}; expected (B={batches}, P, m={m})")
    perms = perms.to(device=device, dtype=torch.int64)
    expected = torch.arange(m, device=device)
    if perms.numel() and not bool((perms.sort(dim=-1).values == expected).all()):
        raise ValueError("perms: every row perms[b, p] must be a permutation of 0..m-1")
    return perms


def gather_pairs(a: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """(B, m, m) and (B, P, m) -> (B, P, m, m) with out[b, p, i, j] = a[b, perm_i, perm_j]."""
    b_idx = torch.arange(a.shape[0], device=a.device)[:, None, None, None]
    return a[b_idx, perms[:, :, :, None], perms[:, :, None, :]]


def inverse_permutations(perms: torch.Tensor) -> torch.Tensor:
    """inv[..., perms[..., i]] = i."""
    inv = torch.empty_like(perms)
    return inv.scatter_(-1, perms, torch.arange(perms.shape[-1], device=perms.device).expand_as(perms))


