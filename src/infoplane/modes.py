"""Training modes: how the blocks of a `BlockNet` learn.

A mode owns what it adds to the network (auxiliary heads, a signal embedder, optimizers,
schedules) and exposes one training step per minibatch. The trainer (`infoplane.train`)
is the same for every mode: it feeds batches, evaluates `model` through its final
classifier on `mode.eval_input(x)`, asks the mode for per-layer head predictions, saves
snapshots and checkpoints. Accuracy is always the whole network's prediction through the
final classifier; heads add per-layer accuracy where a mode has them.

Mode names in configs and output paths are spec strings `family[-loss[-head]]`:

- `e2e`: cross-entropy on the final classifier, gradients through every block.
- `layerwise-{ce,predsim,supcon}[-mlp]`, `layerwise-sim`: simultaneous layer-wise training,
  one local loss per block on its detached input (`LayerWise`).
- `layerwise_seq-{ce,predsim,supcon}[-mlp]`, `layerwise_seq-sim`: sequential layer-wise
  training, block k trained then frozen before block k+1 (`LayerWiseSequential`).
- `sigprop`: signal propagation (Kohan et al. 2023, `alternatives.SignalPropagation`).
- `ff`: forward-forward (Hinton 2022, `alternatives.ForwardForward`).

Every mode except `e2e` trains without end-to-end backpropagation: each block's input is
detached, so a loss never reaches another block; the final classifier learns from the
detached output of the last block. `Mode.local_losses(x, y)` returns these losses keyed by
layer index (0..K-1 for blocks, K for the classifier); `train_step` sums and steps them.
`Mode.predict(x)` is the whole network's prediction with the name of its read-out (the
final classifier for every mode, the summed goodness over candidate labels for `ff` by
default). Register a family with `@MODES.register("family")` on a `Mode` subclass.
docs/training-modes.md describes every mode against its original paper and the authors' code.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from . import contracts, losses
from .augment import Normalization, TwoViewAugmenter
from .models import AuxHead, BlockNet
from .optim import make_optimizer, make_scheduler
from .registry import Registry

#: `sigprop` and `ff` live in `infoplane.alternatives`, imported on the first lookup.
MODES: Registry = Registry("mode", plugins=("infoplane.alternatives",))
LOCAL_LOSSES = ("ce", "predsim", "sim", "supcon")
HEADS = ("linear", "mlp")
#: Local losses computed on the block output itself: no head, no head suffix.
HEADLESS_LOSSES = ("sim",)

#: Values allowed for the mode-specific string options.
SUPCON_VIEWS = ("authors", "flip")
FF_READOUTS = ("goodness", "softmax")
FF_GOODNESS_BLOCKS = ("all", "all_but_first")
FF_LABEL_EMBEDDINGS = ("auto", "pixels", "waves")
FF_GOODNESS = ("auto", *losses.FF_GOODNESS)

#: String options of the `training` section and the values each allows (the code dispatches
#: on them, so they are owned here and checked by `check_option`; the schema holds defaults
#: and numeric ranges).
CHOICE_OPTIONS: dict[str, tuple[str, ...]] = {
    "supcon_views": SUPCON_VIEWS,
    "predsim_conv_features": losses.SIMILARITY_CONV_FEATURES,
    "ff_readout": FF_READOUTS,
    "ff_goodness_blocks": FF_GOODNESS_BLOCKS,
    "ff_label_embedding": FF_LABEL_EMBEDDINGS,
    "ff_goodness": FF_GOODNESS,
}


def check_option(key: str, value) -> None:
    """Raise ValueError naming `training.<key>` when a string option has a value the code lacks."""
    if key in CHOICE_OPTIONS and value not in CHOICE_OPTIONS[key]:
        raise ValueError(f"training.{key}: got {value!r}; allowed: {', '.join(CHOICE_OPTIONS[key])}")


_PART = contracts.MODE_PART
_SPEC = re.compile(rf"^(?P<family>{_PART})(?:-(?P<loss>{_PART}))?(?:-(?P<head>{_PART}))?$")


@dataclass(frozen=True)
class ModeSpec:
    """A parsed mode name; `name` is what appears in paths and tables."""

    family: str
    loss: str | None = None
    head: str | None = None

    @property
    def name(self) -> str:
        return "-".join(p for p in (self.family, self.loss, self.head) if p)

    @classmethod
    def parse(cls, text: str) -> ModeSpec:
        match = _SPEC.match(text)
        if not match:
            raise ValueError(
                f"mode {text!r} is not of the form family[-loss[-head]], e.g. 'layerwise-ce'; "
                f"families: {', '.join(MODES.names())}"
            )
        spec = cls(**match.groupdict())
        mode = MODES.get(spec.family)
        mode.check_spec(spec)
        return mode.canonical(spec)


Augment = Callable[[torch.Tensor], torch.Tensor]


class Mode:
    """Base class. Subclasses set up parameters in __init__ and implement `local_losses`.

    Mode-owned modules go into `self.parts` (saved by `state_dict`); `self.optimizer` and
    `self.scheduler` (stepped once per epoch) are saved too. `normalization` is the data
    set's (mean, std), for modes that work on [0, 1] pixels (supcon's colour jitter).
    """

    uses_loss = False  # whether the spec takes a local loss / head suffix
    default_loss: str | None = None
    keys: tuple[str, ...] = ()  # mode-specific keys of the `training` section (defaults: the schema)

    def __init__(
        self,
        model: BlockNet,
        spec: ModeSpec,
        training: Mapping,
        augment: Augment | None = None,
        normalization: Normalization | tuple | None = None,
    ) -> None:
        self.check_training(training, len(model.blocks))
        self.model = model
        self.spec = spec
        self.training = training
        self.augment = augment or (lambda x: x)
        #: the data set's (mean, std), for modes that must undo it (e.g. colour jitter); may be None
        self.normalization = None if normalization is None else Normalization.of(normalization)
        self.device = next(model.parameters()).device
        self.parts = nn.ModuleDict()
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None

    @classmethod
    def check_spec(cls, spec: ModeSpec) -> None:
        if not cls.uses_loss and (spec.loss or spec.head):
            raise ValueError(f"mode {spec.family!r} takes no local loss or head suffix (got {spec.name!r})")

    @classmethod
    def canonical(cls, spec: ModeSpec) -> ModeSpec:
        """One name per configuration: the default loss is spelled out, the default head is not."""
        if not cls.uses_loss:
            return spec
        return ModeSpec(spec.family, spec.loss or cls.default_loss, None if spec.head == "linear" else spec.head)

    @classmethod
    def check_training(cls, training: Mapping, num_blocks: int) -> None:
        """Raise ValueError naming the `training.<key>` that does not suit this mode and a
        network of `num_blocks` blocks (the config checker calls this before any job)."""
        for key in cls.keys:
            check_option(key, training[key])

    def option(self, key: str):
        """A mode-specific training setting (the validated config holds every default)."""
        return self.training[key]

    def _optimize(self, params) -> None:
        self.optimizer = make_optimizer(list(params), self.training)
        self.scheduler = make_scheduler(self.optimizer, self.training)

    # -- training -------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Called before the batches of 1-based `epoch`."""

    def local_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every loss of one step keyed by the layer it trains (0..K-1 blocks, K classifier)."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update on a batch; returns the detached summed loss (no host sync)."""
        total = torch.stack([loss.float() for loss in self.local_losses(x, y).values()]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return total.detach()

    def end_epoch(self, epoch: int) -> None:
        """Called after the batches of `epoch` (learning-rate schedules step here)."""
        if self.scheduler is not None:
            self.scheduler.step()

    # -- evaluation -----------------------------------------------------------------
    def eval_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the network is fed at evaluation and snapshot time (e.g. a neutral label for ff)."""
        return x

    def head_logits(self, outputs: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        """Per-layer auxiliary predictions from `model.layer_outputs(x)`; {} if the mode has none."""
        return {}

    @property
    def readout(self) -> str:
        """Name of how `predict` turns the network into a prediction (a metrics-table value)."""
        return "classifier"

    def predict(self, x: torch.Tensor, outputs: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, str]:
        """The whole network's class scores (B, C) for inputs `x` and the read-out's name.

        Default: the final classifier's logits on `eval_input(x)`, read-out "classifier";
        pass `outputs = model.layer_outputs(eval_input(x))` when already computed to reuse
        its logits. Call in eval mode (and under no_grad at evaluation).
        """
        logits = outputs[-1] if outputs is not None else self.model(self.eval_input(x))
        return logits, "classifier"

    # -- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "parts": self.parts.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
        }

    def load_state_dict(self, state: dict) -> None:
        self.parts.load_state_dict(state["parts"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


@MODES.register("e2e")
class EndToEnd(Mode):
    """Cross-entropy on the final classifier; gradients flow through every block."""

    def __init__(self, model, spec, training, augment=None, normalization=None):
        super().__init__(model, spec, training, augment, normalization)
        self._optimize(model.parameters())

    def local_losses(self, x, y):
        return {len(self.model.blocks): F.cross_entropy(self.model(self.augment(x)), y)}


class PredSimHead(nn.Module):
    """The two local read-outs of one block under `predsim` (Nøkland & Eidnes 2019).

    `forward(z)`: class logits of the block's auxiliary classifier (average-pool to <= 2048
    features, then linear or MLP; the prediction term and the per-layer head accuracy).
    `project(z)`: the learned projection whose similarity matrix is matched to the labels'
    (a 3×3 convolution keeping the channel count, stride 1, padding 1, no bias, for a conv
    map; a bias-free linear map of the flattened output to the same width otherwise).
    """

    def __init__(self, classifier: nn.Module, block_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.classifier = classifier
        if len(block_shape) == 3:
            channels = block_shape[0]
            self.projection: nn.Module = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        else:
            width = math.prod(block_shape)
            self.projection = nn.Sequential(nn.Flatten(), nn.Linear(width, width, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(z)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return self.projection(z)


@MODES.register("layerwise")
class LayerWise(Mode):
    """Simultaneous layer-wise training: every block learns from its own local loss.

    Each block's input is detached, so no gradient crosses a block boundary; the final
    classifier learns by cross-entropy from the detached output of the last block. All
    losses are summed and stepped with one optimizer, which equals separate per-block
    updates because the detached graph leaves each parameter with exactly one loss.

    Local losses (the spec's `loss`):
    - `ce`: cross-entropy through an auxiliary head (`BlockNet.make_head`: average-pool to
      ≤ 2048 features, then linear, or with `-mlp` one hidden layer of 512 ReLU units).
      Its logits are the layer's head prediction (`head_logits`).
    - `supcon`: supervised contrastive loss (Khosla et al. 2020) on two views of the batch,
      both through the block as one batch of 2B. With `training.supcon_views: authors`
      (default) each view comes from `TwoViewAugmenter` (flip, resized crop of 20-100% of
      the area, colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale with p 0.2; colour
      steps skipped for 1-channel images), which replaces the configured augmentation; its
      generator is reseeded at every `start_epoch` from torch's global generator (which the
      trainer seeds per epoch), so a resumed run replays the views. With `flip`, the views
      are the configured augmentation applied twice (hflip on CIFAR: identical half the
      time; none on digits). Features are the head's projection of the pooled block output
      to `training.proj_dim` (128) dimensions, L2-normalized; temperature
      `training.supcon_temperature` (0.1), base temperature `supcon_base_temperature` (0.07).
      The final classifier trains on the first view, as in the authors' code. The head is a
      projection, not a classifier, so this loss reports no per-layer head accuracy.
    - `sim`: similarity matching as in the paper's authors' code (their `similarity` loss
      on the block output itself, i.e. their `head_type: identity`): the adjusted cosine
      similarity matrix of the block output, a conv map reduced to its per-channel spatial
      std when it has more than 3 channels and height > 1 (`losses.similarity_features`),
      against onehot·onehotᵀ, mean squared error. No head parameters, no head suffix, no
      per-layer head accuracy.
    - `predsim`: Nøkland & Eidnes (2019): (1 - β)·CE through an auxiliary head (as `ce`)
      + β·MSE between the similarity matrix of a learned projection of the block output
      (`PredSimHead`) and the centred-label target (1 within a class, -1/(C-1) between),
      β = `training.predsim_beta` (0.99); the conv-map reduction before the similarity is
      `training.predsim_conv_features` (`std`, as their code; `flatten`; `pool`). The head's
      logits are the layer's head prediction.
    """

    uses_loss = True
    default_loss = "ce"
    keys = (
        "supcon_temperature",
        "supcon_base_temperature",
        "proj_dim",
        "supcon_views",
        "predsim_beta",
        "predsim_conv_features",
    )

    @classmethod
    def check_spec(cls, spec):
        if spec.loss is not None and spec.loss not in LOCAL_LOSSES:
            raise ValueError(
                f"mode {spec.name!r}: unknown local loss {spec.loss!r}; allowed: {', '.join(LOCAL_LOSSES)}"
            )
        if spec.head is not None and spec.head not in HEADS:
            raise ValueError(f"mode {spec.name!r}: unknown head {spec.head!r}; allowed: {', '.join(HEADS)}")
        if spec.head is not None and spec.loss in HEADLESS_LOSSES:
            raise ValueError(
                f"mode {spec.name!r}: local loss {spec.loss!r} works on the block output itself and takes no head; "
                f"use {spec.family}-{spec.loss}"
            )

    def __init__(self, model, spec, training, augment=None, normalization=None):
        super().__init__(model, spec, training, augment, normalization)
        spec = self.canonical(spec)
        self.loss = spec.loss
        kind = spec.head or "linear"
        shapes = model.layer_shapes()
        if self.loss == "ce":
            heads = [model.make_head(k, kind) for k in range(len(model.blocks))]
        elif self.loss == "supcon":
            dim = int(self.option("proj_dim"))
            heads = [AuxHead(shapes[k], dim, kind=kind) for k in range(len(model.blocks))]
        elif self.loss == "predsim":
            heads = [PredSimHead(model.make_head(k, kind), shapes[k]) for k in range(len(model.blocks))]
        else:
            heads = []
        self.heads = nn.ModuleList(heads).to(self.device)
        self.parts["heads"] = self.heads
        #: the authors' two-view pipeline (supcon with supcon_views: authors), else None
        self.view_maker: TwoViewAugmenter | None = None
        if self.loss == "supcon" and self.option("supcon_views") == "authors":
            self.view_maker = TwoViewAugmenter(model.in_shape, self.normalization)
        self.setup_optimizer()

    def setup_optimizer(self) -> None:
        self._optimize([*self.model.parameters(), *self.heads.parameters()])

    def start_epoch(self, epoch):
        if self.view_maker is not None:  # from torch's global generator, which the trainer seeds per epoch
            self.view_maker.reseed(int(torch.randint(0, 2**62, (1,)).item()))

    def train_heads(self) -> None:
        """Heads back in training mode after an evaluation (`head_logits` sets eval); a flag
        check per step instead of a walk over every head module (≈0.3 ms for ResNet18's)."""
        if not self.heads.training:
            self.heads.train()

    def views(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented training batch: two views stacked for `supcon` (2B rows), one otherwise."""
        if self.loss == "supcon":
            make = self.view_maker if self.view_maker is not None else self.augment
            return torch.cat([make(x), make(x)]), torch.cat([y, y])
        return self.augment(x), y

    def block_loss(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The local loss of block k given its output z."""
        num_classes = self.model.num_classes
        if self.loss == "ce":
            return F.cross_entropy(self.heads[k](z), y)
        if self.loss == "supcon":
            return losses.supcon_loss(
                self.heads[k](z), y, self.option("supcon_temperature"), self.option("supcon_base_temperature")
            )
        if self.loss == "predsim":
            head = self.heads[k]
            return losses.predsim_loss(
                head(z),
                head.project(z),
                y,
                num_classes,
                beta=float(self.option("predsim_beta")),
                conv=self.option("predsim_conv_features"),
            )
        return losses.similarity_matching_loss(z, y, num_classes)

    def classifier_loss(self, h: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
        """Cross-entropy of the final classifier on the detached last block output of the first
        `batch` rows (the first view under `supcon`, as the authors' code)."""
        return F.cross_entropy(self.model.classifier(h[:batch].detach()), y[:batch])

    def local_losses(self, x, y):
        batch = x.shape[0]
        h, y = self.views(x, y)
        self.train_heads()
        out = {}
        for k, block in enumerate(self.model.blocks):
            h = block(h.detach())
            out[k] = self.block_loss(k, h, y)
        out[len(self.model.blocks)] = self.classifier_loss(h, y, batch)
        return out

    def head_logits(self, outputs):
        if self.loss not in ("ce", "predsim"):
            return {}
        self.heads.eval()
        return {k: head(outputs[k]) for k, head in enumerate(self.heads)}


@MODES.register("layerwise_seq")
class LayerWiseSequential(LayerWise):
    """Sequential layer-wise training: block k is trained, then frozen before block k+1.

    Stage k (k = 0..K-1) spans global epochs k·E+1 .. (k+1)·E, with
    E = `training.epochs_per_block` (null: training.epochs // K). In stage k only block k
    and its head learn, from the same local losses as `layerwise` (`ce`, `predsim`, `sim`,
    `supcon`), on the output of the frozen blocks 0..k-1. The final classifier learns
    together with the last block (stage K-1, from its detached output); any epochs after
    K·E form a last stage in which every block is frozen and only the classifier learns.
    So the final classifier's accuracy stays at chance until stage K-1 (that is what the
    whole network predicts); per-layer head accuracy shows the progress before.

    Frozen means: `requires_grad` False, eval mode (batch-norm statistics fixed, running
    under `torch.no_grad`). The trainer calls `model.train()` every epoch, so the frozen
    blocks are put back in eval mode at every step, before any forward pass.

    Each stage gets a fresh optimizer over its own parameters and a fresh learning-rate
    schedule over the stage's epochs (multistep milestones count from the stage start;
    the authors' default is a constant rate). Snapshot epochs are global epochs. The frozen
    prefix's outputs are not cached: the trainer re-augments every epoch, and the prefix
    runs without autograd, so caching would save one forward pass at the cost of holding
    the data set's activations.
    """

    keys = (*LayerWise.keys, "epochs_per_block")

    @classmethod
    def epochs_per_block(cls, training: Mapping, num_blocks: int) -> int:
        value = training["epochs_per_block"]
        return training["epochs"] // num_blocks if value is None else int(value)

    @classmethod
    def check_training(cls, training, num_blocks):
        super().check_training(training, num_blocks)
        epochs, value = training["epochs"], training["epochs_per_block"]
        most = epochs // num_blocks
        if value is None:
            if most < 1:
                raise ValueError(
                    f"training.epochs_per_block: null means training.epochs // {num_blocks} blocks, which is 0 "
                    f"for training.epochs = {epochs}; set training.epochs >= {num_blocks} or give epochs_per_block "
                    f"with epochs_per_block * {num_blocks} <= training.epochs"
                )
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"training.epochs_per_block: must be a positive integer or null, got {value!r}")
        if value * num_blocks > epochs:
            allowed = f"allowed: 1..{most}" if most >= 1 else f"raise training.epochs to at least {num_blocks}"
            raise ValueError(
                f"training.epochs_per_block = {value}: {num_blocks} blocks need {value * num_blocks} epochs "
                f"but training.epochs = {epochs}; {allowed}"
            )

    def __init__(self, model, spec, training, augment=None, normalization=None):
        self.stage = 0
        super().__init__(model, spec, training, augment, normalization)

    # -- stages ---------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(self.model.blocks)

    def stage_of(self, epoch: int) -> int:
        """The stage trained in global `epoch`: block index, or K (classifier only)."""
        per_block = self.epochs_per_block(self.training, self.num_blocks)
        return min((epoch - 1) // per_block, self.num_blocks)

    def stage_epochs(self, stage: int) -> int:
        per_block = self.epochs_per_block(self.training, self.num_blocks)
        return per_block if stage < self.num_blocks else self.training["epochs"] - per_block * self.num_blocks

    def setup_optimizer(self) -> None:
        self.enter_stage(self.stage)

    def enter_stage(self, stage: int) -> None:
        """Freeze everything before `stage`; new optimizer and schedule for what it trains."""
        self.stage = stage
        for k, block in enumerate(self.model.blocks):
            block.requires_grad_(k >= stage)
        for k, head in enumerate(self.heads):
            head.requires_grad_(k >= stage)
        self.freeze_prefix()
        params: list[nn.Parameter] = []
        if stage < self.num_blocks:
            params += self.model.blocks[stage].parameters()
            if len(self.heads):
                params += self.heads[stage].parameters()
        if stage >= self.num_blocks - 1:
            params += self.model.classifier.parameters()
        self.optimizer = make_optimizer(params, self.training)
        self.scheduler = make_scheduler(self.optimizer, self.training, epochs=max(self.stage_epochs(stage), 1))

    def frozen_blocks(self) -> list[nn.Module]:
        return list(self.model.blocks[: self.stage])

    def freeze_prefix(self) -> None:
        """Frozen blocks in eval mode; the walk over their modules only where a block's flag says
        something (e.g. the trainer's `model.train()`) turned it back on."""
        for block in self.frozen_blocks():
            if block.training:
                block.eval()

    def start_epoch(self, epoch):
        super().start_epoch(epoch)
        stage = self.stage_of(epoch)
        if stage != self.stage:
            self.enter_stage(stage)
        self.freeze_prefix()

    def local_losses(self, x, y):
        batch = x.shape[0]
        h, y = self.views(x, y)
        self.freeze_prefix()
        self.train_heads()
        with torch.no_grad():
            for block in self.frozen_blocks():
                h = block(h)
        out = {}
        if self.stage < self.num_blocks:
            h = self.model.blocks[self.stage](h)
            out[self.stage] = self.block_loss(self.stage, h, y)
        if self.stage >= self.num_blocks - 1:
            out[self.num_blocks] = self.classifier_loss(h, y, batch)
        return out

    def end_epoch(self, epoch):
        super().end_epoch(epoch)
        self.freeze_prefix()

    def state_dict(self):
        return {**super().state_dict(), "stage": self.stage}

    def load_state_dict(self, state):
        self.enter_stage(int(state["stage"]))
        super().load_state_dict(state)


def check_training(name: str, training: Mapping, num_blocks: int) -> None:
    """Validate `training` for mode spec `name` on a network of `num_blocks` blocks."""
    MODES.get(ModeSpec.parse(name).family).check_training(training, num_blocks)


def make_mode(
    name: str,
    model: BlockNet,
    training: Mapping,
    augment: Augment | None = None,
    normalization: Normalization | tuple | None = None,
) -> Mode:
    """Instantiate the mode named by spec string `name` for `model`.

    `augment` is the configured batch augmentation; `normalization` the data set's
    (mean, std), needed by `supcon` with the authors' views on RGB images (colour jitter
    works on [0, 1] pixels); pass `(dataset.mean, dataset.std)`.
    """
    spec = ModeSpec.parse(name)
    return MODES.get(spec.family)(model, spec, training, augment, normalization)
