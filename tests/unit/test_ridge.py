"""The ridge's linear algebra (infoplane.estimators.ridge): the block SPD inverse the CPU uses at the
paper's m = 128 against potri, the float64 NumPy inverse and the eigh form; its fallback; its choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsic_reference import correlated, ref_center, ref_gram, ref_ridge

from infoplane.estimators import KERNELS, Geometry, ridge_matrix, spd_inverse
from infoplane.estimators.ridge import BLOCK_SIZES, block_spd_inverse


def gaussian_centered(m: int, seed: int, sigma: float = 5.0) -> np.ndarray:
    a, _, _ = correlated(m, seed=seed)
    return ref_center(ref_gram(a, "gaussian", sigma=sigma))


@pytest.mark.parametrize("m", [128, 129, 97])
@pytest.mark.parametrize("epsilon,sigma", [(1e-5, 5.0), (1e-8, 0.5)])
def test_block_inverse_gives_the_ridge_of_the_float64_reference(m, epsilon, sigma):
    """At the paper's m (and odd m: unequal halves) R from the block inverse matches the naive float64
    R, the eigh form and the potri route, also ill-conditioned (eps = 1e-8: cond(C) ~ 1e8)."""
    stack = np.stack([gaussian_centered(m, seed, sigma) for seed in (1, 2, 3)])
    shifted = torch.tensor(stack) + epsilon * m * torch.eye(m, dtype=torch.float64)
    block, failed = block_spd_inverse(shifted)
    lapack, _ = spd_inverse(shifted, block=False)
    assert not failed.any()
    assert not torch.equal(block, lapack)  # really another route, not the same call
    tolerance = 2e-8 if epsilon == 1e-8 else 1e-11
    r_block = np.eye(m) - epsilon * m * block.numpy()
    for i, k in enumerate(stack):
        want = ref_ridge(ref_gram(correlated(m, seed=i + 1)[0], "gaussian", sigma=sigma), epsilon)
        np.testing.assert_allclose(r_block[i], want, atol=tolerance)
    eigh = ridge_matrix(torch.tensor(stack), epsilon, "eigh").numpy()
    np.testing.assert_allclose(r_block, eigh, atol=tolerance)
    np.testing.assert_allclose(block.numpy(), lapack.numpy(), rtol=0, atol=tolerance / (epsilon * m))
    np.testing.assert_array_equal(block.numpy(), block.mT.numpy())  # symmetric by construction


def test_the_engine_uses_the_block_inverse_on_the_cpu_at_the_paper_size_only():
    """spd_inverse's default: the block route on the CPU for m in BLOCK_SIZES (128), potri elsewhere;
    ridge_matrix follows it, and a batch member computed alone equals it in the stack."""
    assert 128 in BLOCK_SIZES and 48 not in BLOCK_SIZES and 1000 not in BLOCK_SIZES
    for m, route in [(128, True), (48, False)]:
        c = torch.tensor(gaussian_centered(m, 4)) + 1e-5 * m * torch.eye(m, dtype=torch.float64)
        c = c.expand(2, m, m).clone()
        got, _ = spd_inverse(c)
        torch.testing.assert_close(got, spd_inverse(c, block=route)[0], rtol=0, atol=0)
    stack = torch.tensor(np.stack([gaussian_centered(128, seed) for seed in (5, 6)]))
    together = ridge_matrix(stack, 1e-5)
    for i in range(2):
        torch.testing.assert_close(ridge_matrix(stack[i], 1e-5), together[i], rtol=1e-12, atol=1e-12)


def test_block_route_falls_back_to_eigh_for_the_failed_member_only():
    """A member that is not positive semi-definite, failing in the first block or only in the Schur
    complement, gets R from the clamped eigendecomposition; its neighbours keep the block route."""
    m = 128
    rng = np.random.default_rng(7)
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    lam = np.linspace(0.0, 2.0, m)
    lam[::17] = -1.0  # negative directions spread over both halves: the first block fails
    spread = u @ np.diag(lam) @ u.T
    tail = np.diag(np.r_[np.ones(m // 2), -np.ones(m - m // 2)])  # A11 = I is fine, S = -I is not
    good = gaussian_centered(m, 8)
    stack = torch.tensor(np.stack([good, spread, tail, good]))
    got = ridge_matrix(stack, 1e-3).numpy()
    shift = 1e-3 * m  # below the negative eigenvalues' size: C is not positive definite
    for i, fake in [(1, spread), (2, tail)]:
        w, v = np.linalg.eigh(fake)
        keep = np.clip(w, 0, None)
        np.testing.assert_allclose(got[i], v @ np.diag(keep / (keep + shift)) @ v.T, atol=1e-12)
    np.testing.assert_allclose(got[0], good @ np.linalg.inv(good + shift * np.eye(m)), atol=1e-12)
    np.testing.assert_array_equal(got[0], got[3])
    _, failed = block_spd_inverse(torch.tensor(np.stack([good, spread, tail])) + shift * torch.eye(m, dtype=torch.float64))
    assert failed.tolist() == [False, True, True]


@pytest.mark.parametrize("epsilon", [1e-5, 1e-8])
def test_low_rank_ridge_of_labels_and_few_units_matches_the_full_inverse(epsilon):
    """One-hot labels (4 classes, one batch with a single class: K~ = 0, R = 0) and a linear kernel of
    3 units: R = F (F^T F + eps m I)^-1 F^T equals the naive float64 K~ (K~ + eps m I)^-1."""
    m = 40
    a, _, y = correlated(m, seed=11)
    labels = torch.tensor(np.stack([y, np.zeros(m, dtype=np.int64)]))
    onehot = KERNELS.get("onehot")(Geometry(labels[..., None], "y"))
    assert onehot.features is not None
    got = onehot.ridge(epsilon).numpy()
    np.testing.assert_allclose(got[0], ref_ridge(ref_gram(y, "onehot"), epsilon), atol=1e-10)
    np.testing.assert_array_equal(got[1], np.zeros((m, m)))
    np.testing.assert_array_equal(got[0], got[0].T)
    units = torch.tensor(a.reshape(m, -1)[:, :3])[None]
    linear = KERNELS.get("linear")(Geometry(units, "z"))
    want = ref_ridge(ref_gram(a.reshape(m, -1)[:, :3], "linear"), epsilon)
    np.testing.assert_allclose(linear.ridge(epsilon)[0].numpy(), want, atol=2e-8 if epsilon == 1e-8 else 1e-10)
    full = ridge_matrix(linear.centered, epsilon)[0].numpy()
    assert not np.array_equal(linear.ridge(epsilon)[0].numpy(), full)  # the other route, same R
    np.testing.assert_allclose(linear.ridge(epsilon)[0].numpy(), full, atol=2e-8 if epsilon == 1e-8 else 1e-10)
    wide = KERNELS.get("linear")(Geometry(torch.tensor(a.reshape(m, -1))[None], "z"))  # 24 units > m / 2
    assert wide.features is None
