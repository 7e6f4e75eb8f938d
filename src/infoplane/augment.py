"""Two-view augmentation for supervised contrastive training, as its authors make the views.

Khosla et al. (2020) and the paper's authors (keitaroskmt/E2E-info, `TwoCropTransform`) build
each of the two views of an image independently with torchvision's

    RandomHorizontalFlip(p=0.5) -> RandomResizedCrop(scale=(0.2, 1), ratio=(3/4, 4/3))
    -> RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8) -> RandomGrayscale(p=0.2)

on PIL images. `TwoViewAugmenter` does the same on a whole batch on its device: every sample
gets its own flip, crop box, jitter factors, jitter order and grayscale draw; the crop is
resampled back to the input size with bilinear interpolation in one `grid_sample` call; the
colour steps are batched element-wise operations with torchvision's formulas. The random
parameters are drawn on the CPU from a `torch.Generator` that the training mode reseeds
every epoch, so a resumed run replays the same views and every device sees the same draws;
they reach a GPU through pinned memory, so making a view never stops the host.

The trainer hands modes *normalized* images; flip and crop commute with the per-channel
normalization (bilinear weights sum to one and every sample point lies inside the image), so
they run on the normalized batch, and only the colour steps undo the normalization, work on
[0, 1] images as torchvision does, and redo it.

One-channel images (the digit data sets) get flip and crop only: colour jitter and random
grayscale are skipped. (On a PIL "L" image torchvision's saturation, hue and grayscale steps
do nothing, but its brightness and contrast steps do act; skipping them is a deliberate
simplification, stated in docs/training-modes.md.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from . import runtime

#: RandomResizedCrop: fraction of the image area and aspect-ratio range (torchvision defaults
#: for the ratio, the authors' scale), and the number of box draws before the central fallback.
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10
#: ColorJitter(brightness, contrast, saturation, hue) strengths and the RandomApply probability.
JITTER_STRENGTH = (0.4, 0.4, 0.4, 0.1)
JITTER_P = 0.8
GRAYSCALE_P = 0.2
FLIP_P = 0.5
#: torchvision's luma weights (ITU-R 601-2) for grayscale, contrast and saturation.
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)
#: Jitter operations in torchvision's numbering (the order is a random permutation of these).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of a data set: normalized = (unit - mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, value: Normalization | tuple[Sequence[float], Sequence[float]]) -> Normalization:
        if isinstance(value, Normalization):
            return value
        try:
            mean, std = value
            result = cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))
        except (TypeError, ValueError):
            raise ValueError(
                f"normalization must be a (mean, std) pair of per-channel sequences, got {value!r}"
            ) from None
        if len(result.mean) != len(result.std) or not all(s > 0 for s in result.std):
            raise ValueError(f"normalization needs one mean and one positive std per channel, got {value!r}")
        return result

    def _view(self, values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return runtime.constant(values, like.dtype, like.device)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images back to [0, 1] pixel values."""
        return x * self._view(self.std, x) + self._view(self.mean, x)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        return (u - self._view(self.mean, u)) / self._view(self.std, u)


@dataclass(frozen=True)
class ViewParams:
    """The random draws of one view of a batch of B images (all on the CPU).

    flip (B,) bool; box (B, 4) int64 rows (top, left, height, width) of the crop on the
    flipped image; jitter (B,) bool, whether colour jitter applies; factors (B, 4) float64
    (brightness, contrast, saturation factors, hue shift); order (B, 4) int64, the
    permutation of the four jitter steps; gray (B,) bool.
    """

    flip: torch.Tensor
    box: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor


def sample_crop_boxes(batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 4) int64 boxes (top, left, h, w) drawn as torchvision's RandomResizedCrop.get_params.

    Per sample: up to CROP_ATTEMPTS draws of an area fraction uniform in CROP_SCALE and a
    log-uniform aspect ratio in CROP_RATIO, w = round(sqrt(area·ratio)), h = round(sqrt(area/ratio));
    the first draw that fits the image wins, its position uniform over the valid offsets;
    if none fits, the central crop of the largest box within the ratio range. All attempts
    are drawn at once for the whole batch.
    """
    area = height * width
    fraction = torch.empty(batch, CROP_ATTEMPTS, dtype=torch.float64).uniform_(*CROP_SCALE, generator=generator)
    log_ratio = torch.empty(batch, CROP_ATTEMPTS, dtype=torch.float64).uniform_(
        math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator
    )
    position = torch.rand(batch, 2, dtype=torch.float64, generator=generator)
    target, ratio = area * fraction, torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target * ratio)).long()
    h = torch.round(torch.sqrt(target / ratio)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting attempt
    found = fits.any(dim=1)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)

    # central fallback, as torchvision: clamp the whole image's aspect ratio into the range
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        fall_w, fall_h = width, int(round(width / CROP_RATIO[0]))
    elif in_ratio > CROP_RATIO[1]:
        fall_w, fall_h = int(round(height * CROP_RATIO[1])), height
    else:
        fall_w, fall_h = width, height
    h = torch.where(found, h, fall_h)
    w = torch.where(found, w, fall_w)
    top = torch.floor(position[:, 0] * (height - h + 1)).long().clamp(max=height - h)
    left = torch.floor(position[:, 1] * (width - w + 1)).long().clamp(max=width - w)
    top = torch.where(found, top, (height - fall_h) // 2)
    left = torch.where(found, left, (width - fall_w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def _crop_coordinates(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) source pixel coordinates of resizing a crop [start, start+length) to `size`
    pixels with half-pixel-centred bilinear interpolation (align_corners=False), as
    torch/torchvision's resize: src = (dst + 0.5)·length/size - 0.5, clamped to the crop."""
    dst = torch.arange(size, dtype=torch.float64) + 0.5
    scale = (length.double() / size).unsqueeze(1)
    src = torch.minimum((dst * scale - 0.5).clamp(min=0.0), (length.double() - 1).unsqueeze(1))
    return start.double().unsqueeze(1) + src


def flip_resized_crop(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Per sample: mirror left-right where `flip`, cut `box` (top, left, h, w) and resize it back
    to the input size, bilinear; one `grid_sample` for the batch (B, C, H, W).

    Sample coordinates are computed in float64 on the CPU (B·(H+W) numbers) and sent to the
    device; the crop box always lies inside the image, so no padding value is ever read.
    """
    b, _, height, width = x.shape
    top, left, h, w = box.unbind(1)
    rows = _crop_coordinates(top, h, height)  # (B, H)
    cols = _crop_coordinates(left, w, width)  # (B, W), on the flipped image
    cols = torch.where(flip.unsqueeze(1), (width - 1) - cols, cols)
    gy = runtime.to_device(((2 * rows + 1) / height - 1).to(x.dtype), x.device)
    gx = runtime.to_device(((2 * cols + 1) / width - 1).to(x.dtype), x.device)
    grid = torch.stack([gx.unsqueeze(1).expand(b, height, width), gy.unsqueeze(2).expand(b, height, width)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# -- colour steps on [0, 1] RGB batches (B, 3, H, W), one factor per sample --------------------
def luma(u: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grayscale 0.2989 R + 0.587 G + 0.114 B."""
    r, g, b = u.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def _per_sample(factor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return runtime.to_device(factor, like.device).to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _mask(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return runtime.to_device(flags, like.device).view(-1, *([1] * (like.dim() - 1)))


def blend(u: torch.Tensor, reference: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """clamp(f·u + (1 - f)·reference, 0, 1): torchvision's brightness/contrast/saturation step."""
    f = _per_sample(factor, u)
    return (f * u + (1.0 - f) * reference).clamp(0.0, 1.0)


def adjust_brightness(u: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(u, torch.zeros((), dtype=u.dtype, device=u.device), factor)


def adjust_contrast(u: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend towards each image's mean luma."""
    return blend(u, luma(u).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(u: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend towards each pixel's luma."""
    return blend(u, luma(u), factor)


def adjust_hue(u: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of every pixel by `shift` (fraction of the colour circle).

    RGB -> HSV: V = max, chroma c = max - min, H = ((G-B)/c mod 6, (B-R)/c + 2, (R-G)/c + 4)/6
    for max = R, G, B (first match), 0 where c = 0. HSV -> RGB with the closed form
    channel_n = V - c·clamp(min(k_n, 4 - k_n), 0, 1), k_n = (n + 6H) mod 6, n = 5, 3, 1 for
    R, G, B (c = V·S, so saturation never has to be divided out).
    """
    r, g, b = u.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)
    chroma = value - torch.minimum(torch.minimum(r, g), b)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        value == r,
        torch.remainder((g - b) / safe, 6.0),
        torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    hue = torch.where(chroma > 0, hue / 6.0, torch.zeros_like(hue))
    hue = torch.remainder(hue + _per_sample(shift, hue), 1.0)
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + 6.0 * hue, 6.0)
        channels.append(value - chroma * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, dim=1)


def color_jitter(u: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """ColorJitter on a batch with per-sample factors (B, 4) and step order (B, 4).

    Step t applies, to every sample, the operation order[:, t]; brightness, contrast and
    saturation are one blend with a per-sample reference (0, mean luma, pixel luma), hue is
    computed for the batch and selected where scheduled. Four steps, no host sync.
    """
    factors = runtime.to_device(factors, u.device).to(u.dtype)
    order = runtime.to_device(order, u.device)
    for step in range(order.shape[1]):
        op = order[:, step]
        factor = factors.gather(1, op.unsqueeze(1)).squeeze(1)
        gray = luma(u)
        op_map = op.view(-1, 1, 1, 1)
        reference = torch.where(
            op_map == BRIGHTNESS,
            torch.zeros_like(gray),
            torch.where(op_map == CONTRAST, gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(gray), gray),
        )
        u = torch.where(op_map == HUE, adjust_hue(u, factor), blend(u, reference, factor))
    return u


class TwoViewAugmenter:
    """One random view per call of a normalized batch (B, C, H, W), drawn as the authors' views.

    `sample(B)` draws the parameters from `self.generator` (CPU; `reseed` per epoch), `apply`
    makes the view from them deterministically, `__call__` does both. Calling it twice on a
    batch gives the two independent views of supervised contrastive training. C must be 3
    (full pipeline, needs `normalization`) or 1 (flip and crop only).
    """

    def __init__(self, in_shape: Sequence[int], normalization: Normalization | tuple | None = None) -> None:
        if len(in_shape) != 3:
            raise ValueError(f"two-view augmentation needs C×H×W images, got input shape {tuple(in_shape)}")
        channels = in_shape[0]
        if channels not in (1, 3):
            raise ValueError(
                f"two-view augmentation colour-jitters RGB (3-channel) or skips colour for 1-channel images; "
                f"input shape {tuple(in_shape)} has {channels} channels; set training.supcon_views: flip"
            )
        self.in_shape = tuple(in_shape)
        self.colour = channels == 3
        self.normalization = None if normalization is None else Normalization.of(normalization)
        if self.colour and self.normalization is None:
            raise ValueError(
                "two-view augmentation of RGB images colour-jitters [0, 1] pixels, so it needs the data set's "
                "normalization: pass normalization=(dataset.mean, dataset.std) to make_mode (the trainer does), "
                "or set training.supcon_views: flip"
            )
        if self.normalization is not None and len(self.normalization.mean) != channels:
            raise ValueError(f"normalization has {len(self.normalization.mean)} channels but the input has {channels}")
        self.generator = torch.Generator()

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def sample(self, batch: int) -> ViewParams:
        """All random draws of one view (colour draws are made, and unused, for 1 channel)."""
        gen = self.generator
        _, height, width = self.in_shape
        flip = torch.rand(batch, generator=gen) < FLIP_P
        box = sample_crop_boxes(batch, height, width, gen)
        jitter = torch.rand(batch, generator=gen) < JITTER_P
        low = torch.tensor([1 - s for s in JITTER_STRENGTH[:3]] + [-JITTER_STRENGTH[3]], dtype=torch.float64)
        high = torch.tensor([1 + s for s in JITTER_STRENGTH[:3]] + [JITTER_STRENGTH[3]], dtype=torch.float64)
        factors = low + (high - low) * torch.rand(batch, 4, dtype=torch.float64, generator=gen)
        order = torch.rand(batch, 4, generator=gen).argsort(dim=1)
        gray = torch.rand(batch, generator=gen) < GRAYSCALE_P
        return ViewParams(flip, box, jitter, factors, order, gray)

    @torch.no_grad()
    def apply(self, x: torch.Tensor, params: ViewParams) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"batch of shape {tuple(x.shape)} does not match the input shape {self.in_shape}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = flip_resized_crop(x.float(), params.box, params.flip)
            if not self.colour:
                return x
            unit = self.normalization.to_unit(x).clamp(0.0, 1.0)
            jittered = color_jitter(unit, params.factors, params.order)
            unit = torch.where(_mask(params.jitter, unit), jittered, unit)
            unit = torch.where(_mask(params.gray, unit), luma(unit).expand_as(unit), unit)
            return self.normalization.from_unit(unit)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0]))
