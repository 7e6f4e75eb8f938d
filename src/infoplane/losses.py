"""Local losses of the training modes that avoid end-to-end backpropagation.

Each function takes one block's output (or its head's projection) for a batch and the
labels, and returns a scalar. They compute in float32 whatever the autocast dtype, because
soft-max and similarity matrices lose too much in bfloat16 (autocast is switched off
inside them, since it would otherwise run their matrix products in bfloat16 again).
"""

from __future__ import annotations

import functools
import math

import torch
from torch.nn import functional as F

from .models import MAX_HEAD_FEATURES


def _float32(fn):
    """Run `fn` with autocast disabled on its first argument's device."""

    @functools.wraps(fn)
    def wrapper(z: torch.Tensor, *args, **kwargs):
        with torch.autocast(device_type=z.device.type, enabled=False):
            return fn(z, *args, **kwargs)

    return wrapper


def pooled_features(z: torch.Tensor, max_features: int = MAX_HEAD_FEATURES) -> torch.Tensor:
    """(B, ...) -> (B, F): average-pool a (B, C, H, W) map, halving H and W (ceil) until
    C·H·W <= max_features, then flatten. The same reduction as `models.AuxHead`."""
    if z.dim() == 4:
        c, h, w = z.shape[1:]
        while c * h * w > max_features and (h > 1 or w > 1):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        if (h, w) != tuple(z.shape[2:]):
            z = F.adaptive_avg_pool2d(z, (h, w))
    return z.flatten(1)


@_float32
def supcon_loss(
    features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, base_temperature: float = 0.07
) -> torch.Tensor:
    """Supervised contrastive loss L^sup_out of Khosla et al. (2020), eq. 2.

    `features` (N, D) holds every view of every sample (N = views × batch) and `labels`
    (N,) their classes. With z = features / ‖features‖, A(i) = all anchors but i and
    P(i) = {p in A(i): y_p = y_i}:

        L = mean_i  -(τ/τ_base) · 1/|P(i)| · Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a∈A(i)} exp(z_i·z_a/τ) )

    Anchors without any positive (a singleton class in a one-view batch) are skipped.
    """
    z = F.normalize(features.float(), dim=1)
    n = z.shape[0]
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positives = (labels.view(-1, 1) == labels.view(1, -1)) & ~self_mask
    count = positives.sum(1)
    mean_log_prob = (log_prob * positives).sum(1) / count.clamp(min=1)
    has_positive = count > 0
    return -(temperature / base_temperature) * mean_log_prob[has_positive].mean()


#: How a conv map (B, C, H, W) becomes a feature vector for a similarity matrix.
#: `std`: the per-channel standard deviation over the spatial positions when C > 3 and H > 1,
#: else the flattened map (Nøkland & Eidnes's released code, copied by the paper's authors);
#: `flatten`: the whole flattened map; `pool`: average-pooled to <= 2048 features first.
SIMILARITY_CONV_FEATURES = ("std", "flatten", "pool")


def similarity_features(z: torch.Tensor, conv: str = "std") -> torch.Tensor:
    """(B, ...) -> (B, F) float32: the vector whose cosine similarities a similarity loss matches."""
    z = z.float()
    if z.dim() != 4:
        return z.flatten(1)
    if conv == "std":
        if z.shape[1] > 3 and z.shape[2] > 1:
            return z.flatten(2).std(dim=2)
        return z.flatten(1)
    if conv == "flatten":
        return z.flatten(1)
    if conv == "pool":
        return pooled_features(z)
    raise ValueError(f"unknown conv-map reduction {conv!r}; allowed: {', '.join(SIMILARITY_CONV_FEATURES)}")


def cosine_similarity_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, F) -> (B, B) "adjusted" cosine similarities: each row centred on its own mean, then
    unit-normalized, S = f fᵀ."""
    f = features.float()
    f = F.normalize(f - f.mean(dim=1, keepdim=True), dim=1)
    return f @ f.T


def label_similarity(labels: torch.Tensor, num_classes: int, centered: bool) -> torch.Tensor:
    """(B, B) target similarity of the one-hot labels: onehot·onehotᵀ (1 within a class, 0
    between; the paper's authors), or, `centered`, the adjusted cosine similarity of the one-hot
    vectors (1 within a class, -1/(C-1) between; Nøkland & Eidnes 2019)."""
    onehot = F.one_hot(labels, num_classes).float()
    return cosine_similarity_matrix(onehot) if centered else onehot @ onehot.T


@_float32
def similarity_matching_loss(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, conv: str = "std", centered_target: bool = False
) -> torch.Tensor:
    """Similarity matching: MSE between the adjusted cosine similarity matrix of the features
    and the labels' target similarity.

        f = similarity_features(features, conv),  f_i <- (f_i - mean(f_i)) / ||f_i - mean(f_i)||,
        S = f fᵀ,  L = mean_ij (S_ij - T_ij)²

    with T = onehot·onehotᵀ by default (the paper's authors' `similarity` loss) or the centred
    target of Nøkland & Eidnes (`centered_target`, see `label_similarity`).
    """
    target = label_similarity(labels, num_classes, centered_target)
    return F.mse_loss(cosine_similarity_matrix(similarity_features(features, conv)), target)


@_float32
def predsim_loss(
    logits: torch.Tensor,
    projection: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    beta: float = 0.99,
    conv: str = "std",
) -> torch.Tensor:
    """Nøkland & Eidnes (2019) `predsim`: (1 - β)·CE(logits, y) + β·sim, where sim is the
    similarity matching loss of the block's learned projection against the centred-label target."""
    prediction = F.cross_entropy(logits.float(), labels)
    similarity = similarity_matching_loss(projection, labels, num_classes, conv=conv, centered_target=True)
    return (1.0 - beta) * prediction + beta * similarity


@_float32
def prototype_logits(data: torch.Tensor, signals: torch.Tensor) -> torch.Tensor:
    """(B, C) scaled dot products <f(h_i), f(t_c)> / sqrt(D) between each sample's pooled
    features f(h_i) ∈ R^D and each class's propagated signal f(t_c) (signal propagation's
    per-layer prediction). Unnormalized, as attention scores, so the loss keeps the
    activations from shrinking (a cosine version lets them fade layer by layer)."""
    fx, ft = pooled_features(data).float(), pooled_features(signals).float()
    return fx @ ft.T / math.sqrt(fx.shape[1])


def sigprop_loss(data: torch.Tensor, signals: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of matching every sample to its own class's signal among all C signals."""
    return F.cross_entropy(prototype_logits(data, signals), labels)


#: How forward-forward's goodness reduces a conv map (B, C, H, W); any other output is a vector
#: and its goodness is always its mean square. `mean_square`: the mean squared activation over
#: every channel and position (Hinton 2022), a mean of local terms; `channel_mean` /
#: `channel_max`: each channel is first pooled over its positions (mean / max), then the mean
#: square over the channels, so the goodness does not depend on where in the map a channel fires.
FF_GOODNESS = ("mean_square", "channel_mean", "channel_max")


def goodness(z: torch.Tensor, conv: str = "mean_square") -> torch.Tensor:
    """Forward-forward goodness per sample (B,), float32: the mean square of the output, after
    pooling each channel of a conv map over its positions unless `conv` is `mean_square`."""
    z = z.float()
    if z.dim() == 4 and conv != "mean_square":
        if conv == "channel_mean":
            z = z.mean(dim=(2, 3))
        elif conv == "channel_max":
            z = z.amax(dim=(2, 3))
        else:
            raise ValueError(f"unknown ff goodness {conv!r}; allowed: {', '.join(FF_GOODNESS)}")
    return z.pow(2).flatten(1).mean(dim=1)


def ff_loss(good_pos: torch.Tensor, good_neg: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hinton (2022): p(positive) = σ(goodness − θ); the negative log-likelihood of calling the
    positive samples positive and the negative ones negative, averaged over both:
    L = ½ [mean softplus(θ − g_pos) + mean softplus(g_neg − θ)]."""
    return 0.5 * (F.softplus(threshold - good_pos).mean() + F.softplus(good_neg - threshold).mean())


def rms_normalize(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale every sample to unit mean square, so its goodness (≡ 1) carries no information."""
    scale = z.pow(2).flatten(1).mean(dim=1).add(eps).rsqrt()
    return z * scale.view(-1, *([1] * (z.dim() - 1))).to(z.dtype)


def embed_label(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Write `code` (B, C) over the first C pixels (row-major, from the top-left corner) of
    every channel of the images `x` (B, ch, H, W); the rest of the image is unchanged."""
    b, ch = x.shape[:2]
    c = code.shape[1]
    flat = x.reshape(b, ch, -1)
    slots = code.to(x.dtype).unsqueeze(1).expand(b, ch, c)
    return torch.cat([slots, flat[:, :, c:]], dim=2).reshape(x.shape)
