"""Optimizers and learning-rate schedules, by the names the config's `training` section uses.

Register another with `@OPTIMIZERS.register("name")` on `(params, training) -> Optimizer`
or `@SCHEDULES.register("name")` on `(optimizer, training, epochs) -> scheduler | None`;
the config check accepts every registered name. Settings come from the validated config
(defaults live in the JSON schema).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from .registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("schedule")


def fused(params: list[torch.nn.Parameter], training: Mapping) -> dict:
    """`{"fused": True}` where training.fused_optimizer asks and every parameter is on CUDA: the
    whole update is one kernel launch instead of several per parameter tensor. CPU keeps
    PyTorch's reference implementation, so CPU numbers stay what they were."""
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    return {"fused": True} if training["fused_optimizer"] and on_cuda else {}


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.Adam(params, lr=training["lr"], weight_decay=training["weight_decay"], **fused(params, training))


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.AdamW(
        params, lr=training["lr"], weight_decay=training["weight_decay"], **fused(params, training)
    )


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    params = list(params)
    return torch.optim.SGD(
        params, lr=training["lr"], weight_decay=training["weight_decay"], momentum=training["momentum"],
        **fused(params, training),
    )


@SCHEDULES.register("none")
def constant(optimizer: torch.optim.Optimizer, training: Mapping, epochs: int):
    return None


@SCHEDULES.register("multistep")
def multistep(optimizer: torch.optim.Optimizer, training: Mapping, epochs: int):
    schedule = training["schedule"]
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(schedule["milestones"]), gamma=schedule["gamma"]
    )


@SCHEDULES.register("cosine")
def cosine(optimizer: torch.optim.Optimizer, training: Mapping, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def make_optimizer(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(training["optimizer"])(params, training)


def make_scheduler(optimizer: torch.optim.Optimizer, training: Mapping, epochs: int | None = None):
    """Per-epoch schedule (stepped once per epoch) over `epochs` (default: training.epochs);
    None for a constant learning rate."""
    return SCHEDULES.get(training["schedule"]["name"])(optimizer, training, epochs or training["epochs"])
