"""Training modes that carry the label forward instead of through a head: signal propagation
(`sigprop`) and forward-forward (`ff`).

They live apart from `infoplane.modes` (the base class, `e2e` and the layer-wise families) so
each module stays readable; they register in the same `MODES` registry, which imports this
module the first time a mode is looked up (`Registry(plugins=...)`), so `modes` never imports
it and there is no import cycle. docs/training-modes.md describes both against their papers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import losses
from .modes import MODES, Mode

@MODES.register("sigprop")
class SignalPropagation(Mode):
    """Signal propagation (Kohan, Rietman & Siegelmann 2023): the label is a signal that is
    forward-propagated through the same blocks as the data, and every block learns to
    bring each sample's output close to its class's signal output. No backward pass
    crosses a block.

    - Signal: a learned embedding of the one-hot labels into the input space,
      t_0 = W·onehot(c) reshaped to the image shape (a bias-free linear map, trained with
      block 0, the only loss that reaches it). All C class signals go through each block
      together with the data as one batch of B + C (so batch-norm statistics include
      them), h_k = f_k(h_{k-1}.detach()), t_k = f_k(t_{k-1}.detach()).
    - Local loss of block k: with f = the block output average-pooled to ≤ 2048 features
      as for the heads (`losses.pooled_features`), D its size, the logits are the scaled
      dot products s_ic = <f(h_k,i), f(t_k,c)> / sqrt(D) and the loss is the cross-entropy
      of picking the sample's own class c = y_i among the C signals. The paper compares
      data and target activations by such a batch similarity (the authors' code scales it
      by 1/sqrt(D) like attention); taking the C class signals as the candidates makes it a
      plain classification over prototypes. The scores are not normalized: a cosine
      version let the activations shrink layer by layer, which starves the final
      classifier and distorts a fixed-bandwidth kernel.
    - Per-layer prediction (`head_logits`): the same scores against the signals propagated
      in eval mode, i.e. sigprop's own inference rule. The final classifier learns by
      cross-entropy on the detached last block output, as in the other modes.
    """

    def __init__(self, model, spec, training, augment=None, normalization=None):
        super().__init__(model, spec, training, augment, normalization)
        self.num_classes = model.num_classes
        self.embedder = nn.Linear(self.num_classes, math.prod(model.in_shape), bias=False).to(self.device)
        self.parts["embedder"] = self.embedder
        self._optimize([*model.parameters(), *self.embedder.parameters()])

    def signals(self) -> torch.Tensor:
        """The C class signals in the input space, (C, *in_shape)."""
        eye = torch.eye(self.num_classes, device=self.embedder.weight.device, dtype=self.embedder.weight.dtype)
        return self.embedder(eye).view(self.num_classes, *self.model.in_shape)

    def local_losses(self, x, y):
        x = self.augment(x)
        b = x.shape[0]
        h = torch.cat([x, self.signals().to(x.dtype)])
        out = {}
        for k, block in enumerate(self.model.blocks):
            h = block(h if k == 0 else h.detach())
            out[k] = losses.sigprop_loss(h[:b], h[b:], y)
        out[len(self.model.blocks)] = F.cross_entropy(self.model.classifier(h[:b].detach()), y)
        return out

    @torch.no_grad()
    def head_logits(self, outputs):
        t = self.signals().to(outputs[0].dtype)
        logits = {}
        for k, block in enumerate(self.model.blocks):
            t = block(t)
            logits[k] = losses.prototype_logits(outputs[k], t)
        return logits


#: Wavelength, in pixels, of the `waves` label embedding (measured on LeNet5/mnist5k against 4 px,
#: docs/training-modes.md).
WAVELENGTH = 7.0
#: Default amplitude v of the `waves` label (`training.ff_label_value: null`): 1, the standard
#: deviation of the normalized data, so the label varies the image as much as the digits do; the
#: image's maximum (~2.8 on MNIST), the `pixels` default, drowned the digit (chosen on 600 held-out
#: training images, docs/training-modes.md).
WAVE_AMPLITUDE = 1.0


def label_waves(num_classes: int, height: int, width: int, wavelength: float = WAVELENGTH) -> torch.Tensor:
    """(C, H, W) float32: class c's plane wave cos(2π/λ · (i·cos θ_c + j·sin θ_c)), θ_c = π·c/C.

    Every class has the same wavelength and amplitude (so no class gets more goodness from
    its pattern's energy alone) and its own orientation, which a small conv kernel reads
    anywhere in the image; shifting the image does not turn one class's wave into another's.
    """
    i = torch.arange(height, dtype=torch.float64).view(1, -1, 1)
    j = torch.arange(width, dtype=torch.float64).view(1, 1, -1)
    theta = torch.arange(num_classes, dtype=torch.float64).view(-1, 1, 1) * math.pi / num_classes
    return torch.cos(2 * math.pi / wavelength * (i * torch.cos(theta) + j * torch.sin(theta))).float()


def _normalize_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: feed the module a unit-mean-square version of its input."""
    return (losses.rms_normalize(args[0]), *args[1:])


@MODES.register("ff")
class ForwardForward(Mode):
    """Forward-forward (Hinton 2022): every block learns to give high goodness to positive
    data (image with its true label) and low goodness to negative data (image with a wrong
    label); no gradient crosses a block.

    - Goodness g = mean squared activation of the block output; loss
      ½[softplus(θ − g_pos) + softplus(g_neg − θ)] with θ = `training.ff_threshold` (2.0),
      the negative log-likelihood of p(positive) = σ(g − θ). A conv map's goodness,
      `training.ff_goodness` (`losses.goodness`): `mean_square` over every channel and
      position (Hinton), or each channel pooled over its positions first (`channel_mean`,
      `channel_max`); `auto` (default): `channel_max` when the first block convolves. The mean
      of local squares asks every patch whether the digit matches the label, which no patch
      can tell; the max asks whether the channel's feature appears anywhere.
    - Label embedding, `training.ff_label_embedding`:
      `pixels`: the first C pixels (row-major from the top-left corner) of every channel of
      the normalized image are replaced by the one-hot label times v, as in the paper's MNIST
      setup (H·W >= C is checked). `waves`: v times a plane wave of unit amplitude, one
      orientation per class (`label_waves`), is added to every channel over the whole image.
      `auto` (default): waves when the first block convolves, pixels otherwise. A conv
      block is translation-equivariant with a small receptive field: under `pixels` only the
      output positions near the top-left corner see the label, and the goodness, a mean over
      all positions, barely depends on it (docs/training-modes.md has the measurement); a
      wave is readable, by its orientation, from every patch. v is the constant
      `training.ff_label_value` when set; else, under `pixels`, the image's own maximum value
      (the paper's "on" pixel is the brightest intensity; in normalized units that depends
      on the data set), and under `waves` `WAVE_AMPLITUDE` = 1.
    - Negatives: the same images with a label drawn uniformly from the C − 1 wrong classes,
      from torch's global generator (the trainer reseeds it every epoch).
    - Between blocks, each block's input (and the classifier's) is rescaled to unit mean
      square, so the next block cannot read the previous block's goodness (Hinton's length
      normalization, scaled to keep activations O(1)). This is a forward pre-hook that the
      mode installs on `model.blocks[1:]` and `model.classifier`; it is part of the network
      at evaluation too. A layer's recorded representation is still the block output.
    - Prediction (`predict`), `training.ff_readout`:
      `goodness` (default; the authors' code and Hinton 2022): every image is run with each
      of the C candidate labels embedded, as one batch of C·B samples, the goodness of the
      blocks is summed and the scores (B, C) are these sums; the predicted class is their
      argmax, read-out "goodness". `training.ff_goodness_blocks` chooses the blocks: `all`
      (the authors' code) or `all_but_first` (Hinton's "all but the first hidden layer").
      The scores are goodness sums, not log-probabilities: only their argmax (accuracy) is
      comparable with other modes. Batches of more than `predict_max_samples` candidate
      samples are split over the images (never over the labels).
      `softmax`: the final classifier on the neutral-label input (below), read-out
      "classifier".
    - Snapshots and the final classifier (`eval_input`): a neutral label, the code 1/C for
      every class (v/C in every label pixel; the mean of the C waves times v). The final classifier learns by cross-entropy on the detached last block output
      of the neutral-label images (forwarded with the positives and negatives as one batch);
      its logits are the classifier layer's recorded representation in every read-out. FF
      has no per-layer heads.
    """

    keys = ("ff_threshold", "ff_label_value", "ff_label_embedding", "ff_readout", "ff_goodness_blocks", "ff_goodness")
    #: largest number of (image, candidate label) samples forwarded at once by `goodness_scores`
    predict_max_samples = 16384

    @classmethod
    def check_training(cls, training, num_blocks):
        super().check_training(training, num_blocks)
        if training["ff_goodness_blocks"] == "all_but_first" and num_blocks < 2:
            raise ValueError(
                f"training.ff_goodness_blocks = 'all_but_first' needs at least 2 blocks; the network has "
                f"{num_blocks}; use 'all'"
            )

    def __init__(self, model, spec, training, augment=None, normalization=None):
        super().__init__(model, spec, training, augment, normalization)
        self.num_classes = model.num_classes
        if self.num_classes < 2:
            raise ValueError(f"mode 'ff' needs at least 2 classes to draw wrong labels, got {self.num_classes}")
        if len(model.in_shape) != 3:
            raise ValueError(f"mode 'ff' embeds the label in images; input shape {model.in_shape} is not C×H×W")
        convolves = any(isinstance(m, nn.Conv2d) for m in model.blocks[0].modules())
        self.embedding = self.option("ff_label_embedding")
        if self.embedding == "auto":
            self.embedding = "waves" if convolves else "pixels"
        if self.embedding == "pixels" and model.in_shape[1] * model.in_shape[2] < self.num_classes:
            raise ValueError(
                f"mode 'ff' embeds the label in the first {self.num_classes} pixels of each channel; "
                f"input shape {model.in_shape} has too few (needs H·W >= {self.num_classes}); "
                f"set training.ff_label_embedding: waves"
            )
        #: how the goodness reduces a conv map (`losses.FF_GOODNESS`)
        self.goodness_conv = self.option("ff_goodness")
        if self.goodness_conv == "auto":
            self.goodness_conv = "channel_max" if convolves else "mean_square"
        #: (C, H, W) class patterns under `waves`, None under `pixels`
        self.waves = None
        if self.embedding == "waves":
            self.waves = label_waves(self.num_classes, *model.in_shape[1:]).to(self.device)
        for module in [*model.blocks[1:], model.classifier]:
            if not getattr(module, "_ff_input_normalized", False):
                module.register_forward_pre_hook(_normalize_input)
                module._ff_input_normalized = True
        self._optimize(model.parameters())

    def embed(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """`x` with the label `code` (B, C), scaled by v: in its first C pixels per channel
        (`pixels`) or as the code-weighted sum of the class waves added to every channel."""
        value = self.option("ff_label_value")
        if value is None and self.waves is not None:
            value = WAVE_AMPLITUDE
        elif value is None:
            value = x.flatten(1).amax(dim=1, keepdim=True)
        if self.waves is None:
            return losses.embed_label(x, code * value)
        pattern = (code * value).to(self.waves.dtype) @ self.waves.flatten(1)
        return x + pattern.view(x.shape[0], 1, *x.shape[2:]).to(x.dtype)

    def eval_input(self, x):
        neutral = torch.full((x.shape[0], self.num_classes), 1.0 / self.num_classes, device=x.device)
        return self.embed(x, neutral)

    def local_losses(self, x, y):
        x = self.augment(x)
        b, c = x.shape[0], self.num_classes
        wrong = (y + torch.randint(1, c, y.shape, device=y.device)) % c
        h = torch.cat([self.embed(x, F.one_hot(y, c)), self.embed(x, F.one_hot(wrong, c)), self.eval_input(x)])
        threshold = self.option("ff_threshold")
        out = {}
        for k, block in enumerate(self.model.blocks):
            h = block(h.detach())
            good = losses.goodness(h[: 2 * b], self.goodness_conv)
            out[k] = losses.ff_loss(good[:b], good[b:], threshold)
        out[len(self.model.blocks)] = F.cross_entropy(self.model.classifier(h[2 * b :].detach()), y)
        return out

    # -- prediction -------------------------------------------------------------------
    @property
    def readout(self):
        return "goodness" if self.option("ff_readout") == "goodness" else "classifier"

    def predict(self, x, outputs=None):
        if self.readout == "classifier":
            return super().predict(x, outputs)
        return self.goodness_scores(x), "goodness"

    @torch.no_grad()
    def goodness_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) float32: for every image and candidate label c, the goodness summed over the
        chosen blocks of the network fed the image with c embedded. Sample l·b + i of a chunk
        is image i with label l, so the sums reshape to (C, b) and transpose."""
        c = self.num_classes
        first = 0 if self.option("ff_goodness_blocks") == "all" else 1
        chunk = max(1, self.predict_max_samples // c)
        scores = []
        for part in x.split(chunk):
            b = part.shape[0]
            codes = torch.eye(c, device=part.device).repeat_interleave(b, dim=0)
            h = self.embed(part.repeat(c, *([1] * (part.dim() - 1))), codes)
            total = torch.zeros(c * b, device=part.device)
            for k, block in enumerate(self.model.blocks):
                h = block(h)
                if k >= first:
                    total = total + losses.goodness(h, self.goodness_conv)
            scores.append(total.view(c, b).T)
        return torch.cat(scores)
