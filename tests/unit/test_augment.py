"""The authors' two-view supcon augmentation against torchvision, one image at a time.

Tolerance: the pipeline computes in float32, with different arithmetic than torchvision
(crop coordinates through `grid_sample`'s normalized grid, hue by a closed-form HSV
inverse). On [0, 1] pixels a grid coordinate is off by at most ~W·6e-8 ≈ 2e-6 pixels,
which moves an interpolated value by at most that times the largest neighbour difference
(<= 1), and each colour step adds a few float32 roundings (~1e-7 each). So 1e-5 on [0, 1]
values bounds every legitimate difference with a margin of ~5x, while any wrong formula,
factor, order or box moves pixels by far more (a 1-pixel shift or a 1% factor error
already gives > 1e-3 on these random images).
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from infoplane import augment as A

TOLERANCE = 1e-5
CIFAR = A.Normalization((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
TV_STEPS = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


def _images(batch: int, channels: int = 3, size: tuple[int, int] = (20, 24), seed: int = 0) -> torch.Tensor:
    """Random [0, 1] images with some pure, gray and saturated pixels (hue's special cases)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, channels, *size, generator=g)
    u[:, :, 0, :4] = 0.5  # gray: chroma 0
    if channels == 3:
        for col in range(3):  # pure red, green, blue
            u[:, :, 1, col] = torch.eye(3)[col]
    u[:, :, 2, :2] = 0.0  # black
    return u


def _reference_view(u: torch.Tensor, p: A.ViewParams, i: int, colour: bool = True) -> torch.Tensor:
    """torchvision.transforms.v2.functional on image i with the drawn parameters, in the
    authors' order: flip, resized crop, jitter steps in their order (if applied), grayscale."""
    img = u[i]
    if p.flip[i]:
        img = TF.horizontal_flip(img)
    top, left, h, w = p.box[i].tolist()
    img = TF.resized_crop(
        img, top, left, h, w, list(u.shape[2:]), interpolation=InterpolationMode.BILINEAR, antialias=True
    )
    if not colour:
        return img
    if p.jitter[i]:
        for op in p.order[i].tolist():
            img = TV_STEPS[op](img, float(p.factors[i, op]))
    if p.gray[i]:
        img = TF.rgb_to_grayscale(img, num_output_channels=3)
    return img


def _covering_params(aug: A.TwoViewAugmenter, batch: int) -> A.ViewParams:
    """Drawn parameters with flip, jitter and grayscale set to cover all 8 combinations."""
    p = aug.sample(batch)
    index = torch.arange(batch)
    return A.ViewParams(
        flip=index % 2 == 1,
        box=p.box,
        jitter=(index // 2) % 2 == 0,
        factors=p.factors,
        order=p.order,
        gray=(index // 4) % 2 == 1,
    )


# -- the whole view, image by image ---------------------------------------------------------------
def test_rgb_view_matches_torchvision_image_by_image():
    u = _images(16)
    aug = A.TwoViewAugmenter(tuple(u.shape[1:]), CIFAR)
    aug.reseed(5)
    params = _covering_params(aug, len(u))
    view = CIFAR.to_unit(aug.apply(CIFAR.from_unit(u), params))
    for i in range(len(u)):
        expected = _reference_view(u, params, i)
        assert (view[i] - expected).abs().max().item() < TOLERANCE, f"image {i}"
    assert params.jitter.any() and params.gray.any() and params.flip.any()


def test_one_channel_view_is_flip_and_crop_only():
    """Digits: flip and resized crop as torchvision; colour draws are ignored, no normalization needed."""
    u = _images(8, channels=1, size=(28, 28))
    aug = A.TwoViewAugmenter((1, 28, 28))
    aug.reseed(1)
    params = _covering_params(aug, len(u))
    mnist = A.Normalization((0.1307,), (0.3081,))
    view = mnist.to_unit(aug.apply(mnist.from_unit(u), params))  # crop commutes with normalization
    for i in range(len(u)):
        expected = _reference_view(u, params, i, colour=False)
        assert (view[i] - expected).abs().max().item() < TOLERANCE, f"image {i}"


# -- each step on its own, per-sample factors -------------------------------------------------------
@pytest.mark.parametrize("op", [A.BRIGHTNESS, A.CONTRAST, A.SATURATION, A.HUE])
def test_each_colour_step_matches_torchvision(op):
    u = _images(12)
    g = torch.Generator().manual_seed(op)
    low, high = (-0.5, 0.5) if op == A.HUE else (0.0, 2.0)  # wider than the jitter ranges
    factors = low + (high - low) * torch.rand(len(u), generator=g, dtype=torch.float64)
    step = [A.adjust_brightness, A.adjust_contrast, A.adjust_saturation, A.adjust_hue][op]
    out = step(u, factors)
    for i in range(len(u)):
        expected = TV_STEPS[op](u[i], float(factors[i]))
        assert (out[i] - expected).abs().max().item() < TOLERANCE, f"image {i}, factor {float(factors[i])}"


def test_grayscale_and_jitter_order_match_torchvision():
    u = _images(10)
    gray = A.luma(u).expand_as(u)
    for i in range(len(u)):
        assert (gray[i] - TF.rgb_to_grayscale(u[i], num_output_channels=3)).abs().max() < TOLERANCE
    g = torch.Generator().manual_seed(3)
    factors = torch.stack(
        [torch.empty(10, dtype=torch.float64).uniform_(0.6, 1.4, generator=g) for _ in range(3)]
        + [torch.empty(10, dtype=torch.float64).uniform_(-0.1, 0.1, generator=g)],
        dim=1,
    )
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(10)])
    out = A.color_jitter(u, factors, order)
    for i in range(len(u)):
        img = u[i]
        for op in order[i].tolist():
            img = TV_STEPS[op](img, float(factors[i, op]))
        assert (out[i] - img).abs().max() < TOLERANCE, f"image {i}, order {order[i].tolist()}"
    # the order matters: the same factors in another order give another image
    reversed_out = A.color_jitter(u, factors, order.flip(1))
    assert (reversed_out - out).abs().max() > 1e-3


@pytest.mark.parametrize("size", [(20, 24), (32, 32), (7, 5)])
def test_flip_resized_crop_matches_torchvision(size):
    u = _images(12, size=size)
    boxes = A.sample_crop_boxes(12, *size, torch.Generator().manual_seed(2))
    flip = torch.arange(12) % 3 == 0
    out = A.flip_resized_crop(u, boxes, flip)
    for i in range(12):
        img = TF.horizontal_flip(u[i]) if flip[i] else u[i]
        top, left, h, w = boxes[i].tolist()
        expected = TF.resized_crop(
            img, top, left, h, w, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        assert (out[i] - expected).abs().max() < TOLERANCE, f"image {i}, box {boxes[i].tolist()}"


# -- the random draws --------------------------------------------------------------------------
def _moments(boxes: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
    top, left, h, w = boxes.double().unbind(1)
    return {
        "area": h * w / (height * width),
        "log_ratio": torch.log(w / h),
        "top": (top + h / 2) / height,  # box centre
        "left": (left + w / 2) / width,
    }


@pytest.mark.parametrize("size", [(32, 32), (6, 40)])  # (6, 40): mostly the central fallback
def test_crop_boxes_follow_torchvision_by_simulation(size):
    """Calibration by simulation: the batched draw and torchvision's RandomResizedCrop.get_params
    give boxes with the same mean area, log aspect ratio and centre, within 5 standard errors
    of the difference of two means of n = 4000 (a false alarm has probability < 1e-6 per moment)."""
    height, width = size
    n = 4000
    ours = A.sample_crop_boxes(n, height, width, torch.Generator().manual_seed(11))
    torch.manual_seed(12)
    image = torch.zeros(1, height, width)
    authors = {"scale": [0.2, 1.0], "ratio": [3 / 4, 4 / 3]}  # RandomResizedCrop(scale=(0.2, 1.0)), default ratio
    theirs = torch.tensor([RandomResizedCrop.get_params(image, **authors) for _ in range(n)])
    top, left, h, w = ours.unbind(1)
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    for name, a in _moments(ours, height, width).items():
        b = _moments(theirs, height, width)[name]
        se = math.sqrt(a.var().item() / n + b.var().item() / n)
        assert abs(a.mean().item() - b.mean().item()) <= 5 * se + 1e-12, (name, a.mean().item(), b.mean().item(), se)


def test_draw_frequencies_ranges_and_orders():
    """n = 20000 draws: flip, jitter and grayscale rates within 5 binomial standard errors of
    0.5, 0.8, 0.2; factors inside their ranges; every order a permutation, each step at each
    position with rate 1/4 (5 standard errors)."""
    n = 20000
    aug = A.TwoViewAugmenter((3, 8, 8), CIFAR)
    aug.reseed(0)
    p = aug.sample(n)
    for flags, rate in ((p.flip, 0.5), (p.jitter, 0.8), (p.gray, 0.2)):  # the authors' probabilities
        assert abs(flags.double().mean().item() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    for k in range(3):  # ColorJitter(0.4, 0.4, 0.4, 0.1): factors uniform in [0.6, 1.4], hue in [-0.1, 0.1]
        assert p.factors[:, k].min() >= 0.6 and p.factors[:, k].max() <= 1.4
        assert abs(p.factors[:, k].mean().item() - 1.0) < 5 * 0.8 / math.sqrt(12 * n)
        assert p.factors[:, k].max() - p.factors[:, k].min() > 0.79
    assert p.factors[:, 3].abs().max() <= 0.1 and p.factors[:, 3].max() - p.factors[:, 3].min() > 0.199
    assert torch.equal(p.order.sort(dim=1).values, torch.arange(4).expand(n, 4))
    counts = torch.stack([(p.order == op).double().mean(dim=0) for op in range(4)])
    assert (counts - 0.25).abs().max() < 5 * math.sqrt(0.25 * 0.75 / n)


def test_two_views_differ_and_reseeding_replays_them():
    u = _images(16, size=(16, 16))
    x = CIFAR.from_unit(u)
    aug = A.TwoViewAugmenter((3, 16, 16), CIFAR)
    aug.reseed(7)
    first, second = aug(x), aug(x)
    per_image = (first - second).flatten(1).abs().amax(dim=1)
    assert (per_image > 1e-3).all(), per_image
    assert ((first - x).flatten(1).abs().amax(dim=1) > 1e-3).all()
    aug.reseed(7)  # what a resumed run does at the start of the epoch
    assert torch.equal(aug(x), first) and torch.equal(aug(x), second)
    aug.reseed(8)
    assert not torch.equal(aug(x), first)


def test_views_stay_float32_under_autocast():
    x = CIFAR.from_unit(_images(4, size=(16, 16)))
    aug = A.TwoViewAugmenter((3, 16, 16), CIFAR)
    aug.reseed(1)
    plain = aug(x)
    aug.reseed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = aug(x)
    assert mixed.dtype == torch.float32 and torch.equal(plain, mixed)


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="normalization=\\(dataset.mean, dataset.std\\)"):
        A.TwoViewAugmenter((3, 8, 8))
    with pytest.raises(ValueError, match="supcon_views: flip"):
        A.TwoViewAugmenter((2, 8, 8))
    with pytest.raises(ValueError, match="normalization has 1 channels but the input has 3"):
        A.TwoViewAugmenter((3, 8, 8), ((0.5,), (0.5,)))
    with pytest.raises(ValueError, match="positive std"):
        A.Normalization.of(((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)))
    aug = A.TwoViewAugmenter((1, 8, 8))
    with pytest.raises(ValueError, match="does not match the input shape"):
        aug(torch.zeros(2, 1, 9, 8))
