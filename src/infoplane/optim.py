"""Optimizer and learning-rate schedule from the config's `training` section."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "multistep", "cosine")


def make_optimizer(params: Iterable[torch.nn.Parameter], training: Mapping) -> torch.optim.Optimizer:
    name, lr, wd = training["optimizer"], training["lr"], training.get("weight_decay", 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=training.get("momentum", 0.9))
    raise ValueError(f"training.optimizer: unknown {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def make_scheduler(optimizer: torch.optim.Optimizer, training: Mapping, epochs: int | None = None):
    """Per-epoch schedule (stepped once per epoch); None for a constant learning rate."""
    schedule = training.get("schedule") or {"name": "none"}
    name = schedule.get("name", "none")
    if name == "none":
        return None
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(schedule.get("milestones", [])), gamma=schedule.get("gamma", 0.2)
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs or training["epochs"])
    raise ValueError(f"training.schedule.name: unknown {name!r}; allowed: {', '.join(SCHEDULES)}")
