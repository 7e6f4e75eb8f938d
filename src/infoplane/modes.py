"""Training modes: how the blocks of a `BlockNet` learn.

A mode owns what it adds to the network (auxiliary heads, optimizers, schedules) and
exposes one training step per minibatch. The trainer (`infoplane.train`) is the same for
every mode: it feeds batches, evaluates `model` through its final classifier, asks the
mode for per-layer head predictions, saves snapshots and checkpoints.

Mode names in configs and output paths are spec strings `family[-loss[-head]]`, e.g.
`e2e`, `layerwise-ce`, `layerwise-ce-mlp`. Register a family with
`@MODES.register("family")` on a `Mode` subclass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .models import BlockNet
from .optim import make_optimizer, make_scheduler
from .registry import Registry

MODES: Registry = Registry("mode")
LOCAL_LOSSES = ("ce",)
HEADS = ("linear", "mlp")

_SPEC = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)(?:-(?P<loss>[a-z][a-z0-9_]*))?(?:-(?P<head>[a-z][a-z0-9_]*))?$")


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
            raise ValueError(f"mode {text!r} is not of the form family[-loss[-head]], e.g. 'layerwise-ce'")
        spec = cls(**match.groupdict())
        mode = MODES.get(spec.family)
        mode.check_spec(spec)
        return mode.canonical(spec)


Augment = Callable[[torch.Tensor], torch.Tensor]


class Mode:
    """Base class. Subclasses set up parameters in __init__ and implement `train_step`."""

    uses_loss = False  # whether the spec takes a local loss / head suffix
    default_loss: str | None = None

    def __init__(self, model: BlockNet, spec: ModeSpec, training: Mapping, augment: Augment | None = None) -> None:
        self.model = model
        self.spec = spec
        self.training = training
        self.augment = augment or (lambda x: x)

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

    # -- training -------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Called before the batches of 1-based `epoch`."""

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update on a batch; returns the detached loss (no host sync)."""
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        """Called after the batches of `epoch` (learning-rate schedules step here)."""

    # -- evaluation -----------------------------------------------------------------
    def eval_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the network is fed at evaluation and snapshot time (e.g. a neutral label for ff)."""
        return x

    def head_logits(self, outputs: list[torch.Tensor]) -> dict[int, torch.Tensor]:
        """Per-layer auxiliary predictions from `model.layer_outputs(x)`; {} if the mode has none."""
        return {}

    # -- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _scheduler_state(scheduler) -> dict:
    return scheduler.state_dict() if scheduler is not None else {}


@MODES.register("e2e")
class EndToEnd(Mode):
    """Cross-entropy on the final classifier; gradients flow through every block."""

    def __init__(self, model, spec, training, augment=None):
        super().__init__(model, spec, training, augment)
        self.optimizer = make_optimizer(model.parameters(), training)
        self.scheduler = make_scheduler(self.optimizer, training)

    def train_step(self, x, y):
        loss = F.cross_entropy(self.model(self.augment(x)), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def end_epoch(self, epoch):
        if self.scheduler is not None:
            self.scheduler.step()

    def state_dict(self):
        return {"optimizer": self.optimizer.state_dict(), "scheduler": _scheduler_state(self.scheduler)}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


@MODES.register("layerwise")
class LayerWise(Mode):
    """Simultaneous layer-wise training: every block learns from its own local loss.

    Each block's input is detached, so no gradient crosses a block boundary; the final
    classifier learns from the detached output of the last block. All losses are summed
    and stepped with one optimizer, which equals separate per-block updates because the
    detached graph leaves each parameter with exactly one loss.
    """

    uses_loss = True
    default_loss = "ce"

    @classmethod
    def check_spec(cls, spec):
        if spec.loss is not None and spec.loss not in LOCAL_LOSSES:
            raise ValueError(f"mode {spec.name!r}: unknown local loss {spec.loss!r}; allowed: {', '.join(LOCAL_LOSSES)}")
        if spec.head is not None and spec.head not in HEADS:
            raise ValueError(f"mode {spec.name!r}: unknown head {spec.head!r}; allowed: {', '.join(HEADS)}")

    def __init__(self, model, spec, training, augment=None):
        super().__init__(model, spec, training, augment)
        device = next(model.parameters()).device
        kind = spec.head or "linear"
        self.heads = nn.ModuleList(model.make_head(k, kind) for k in range(len(model.blocks))).to(device)
        self.optimizer = make_optimizer([*model.parameters(), *self.heads.parameters()], training)
        self.scheduler = make_scheduler(self.optimizer, training)

    def train_step(self, x, y):
        h = self.augment(x)
        total = 0.0
        for block, head in zip(self.model.blocks, self.heads):
            h = block(h.detach())
            total = total + F.cross_entropy(head(h), y)
        total = total + F.cross_entropy(self.model.classifier(h.detach()), y)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return total.detach()

    def end_epoch(self, epoch):
        if self.scheduler is not None:
            self.scheduler.step()

    def head_logits(self, outputs):
        self.heads.eval()
        return {k: head(outputs[k]) for k, head in enumerate(self.heads)}

    def state_dict(self):
        return {
            "heads": self.heads.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": _scheduler_state(self.scheduler),
        }

    def load_state_dict(self, state):
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def make_mode(name: str, model: BlockNet, training: Mapping, augment: Augment | None = None) -> Mode:
    """Instantiate the mode named by spec string `name` for `model`."""
    spec = ModeSpec.parse(name)
    return MODES.get(spec.family)(model, spec, training, augment)
