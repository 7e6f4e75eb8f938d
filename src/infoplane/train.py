"""Train one run (dataset, arch, mode, seed); save per-epoch metrics and activation snapshots.

Resumable: after every epoch the whole training state goes atomically to the run's
checkpoint (`contracts.PATHS["checkpoint"]`), and snapshots are staged beside it. A killed
job restarted with the same settings continues from the last finished epoch and ends with
the same numbers as an uninterrupted run, because every random draw of epoch e (shuffling,
augmentation, a mode's own sampling) comes from generators seeded by (seed, e). The
declared outputs (snapshot files, metrics table) are written only when the run is done.
An unreadable checkpoint (a damaged disk, a file from another version) is not used: the
log says so and the run starts from scratch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F
from tqdm import tqdm

from . import config as config_mod
from . import contracts, data, io, models, runtime
from .contracts import Run
from .errors import CorruptFileError, DivergedError, MismatchedInputsError
from .modes import make_mode

log = logging.getLogger("infoplane")

# Purposes for derived seeds (never reuse one for two kinds of draws).
_SHUFFLE, _AUGMENT, _MODE_RNG, _TRAIN_EVAL = 1, 2, 3, 4


def settings_signature(run: Run, settings: Mapping, device: torch.device) -> str:
    """Hash of everything that determines the run's numbers; a checkpoint resumes only if equal."""
    blob = json.dumps({"run": run.columns(), "settings": settings, "device": device.type}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _batches(n: int, batch_size: int, generator: torch.Generator | None, device: torch.device | None = None):
    """Index batches of one pass: the order is drawn on the CPU (the same on every device) and
    sent to `device` once per pass, so no batch waits for a host-to-device copy."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if device is not None:
        order = runtime.to_device(order, device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


class Trainer:
    """Holds the data, model and mode of one run and walks its epochs."""

    def __init__(self, run: Run, settings: Mapping, eval_sets: contracts.EvalSet | Mapping[str, contracts.EvalSet],
                 device: torch.device, dataset: data.Dataset | None = None) -> None:
        """`eval_sets`: the eval set of every split to snapshot (by split; one EvalSet: its split only).
        `dataset`: the loaded data of `run.dataset` (default: load it; benchmarks pass synthetic data)."""
        self.run, self.settings, self.device = run, settings, device
        self.training = dict(settings["training"])
        #: resolved training.deterministic / training.precision for this device (logged, in the bench's table)
        self.deterministic = runtime.resolve_deterministic(self.training["deterministic"], device)
        self.precision = runtime.resolve_precision(self.training["precision"], device)
        runtime.make_deterministic(device, self.deterministic)
        log.info("training on %s: precision %s, deterministic %s, compile %s", device.type, self.precision,
                 self.deterministic, self.training["compile"])  # fmt: skip
        runtime.seed_everything(run.seed)

        # the data stage downloaded it if allowed: no two training jobs download at once
        dataset = dataset or data.load(run.dataset, settings["data"]["root"], download=False)
        self.dataset = dataset
        keep = data.subset_indices(len(dataset.train_y), settings["data"]["train_limit"])
        self.train_x = dataset.train_x[keep].to(device)
        self.train_y = dataset.train_y[keep].to(device)
        self.test_x = dataset.test_x.to(device)
        self.test_y = dataset.test_y.to(device)
        eval_n = min(self.training["train_eval_size"], len(self.train_y))
        gen = torch.Generator().manual_seed(runtime.derived_seed(run.seed, 0, _TRAIN_EVAL))
        self.train_eval_idx = torch.randperm(len(self.train_y), generator=gen)[:eval_n].sort().values.to(device)
        if isinstance(eval_sets, contracts.EvalSet):
            eval_sets = {eval_sets.split: eval_sets}
        self.eval_sets = {split: (e.x.to(device), e.indices) for split, e in eval_sets.items()}

        torch.manual_seed(run.seed)
        self.model = models.build(run.arch, dataset.in_shape, dataset.num_classes).to(device)
        self.memory_format = torch.preserve_format
        if device.type == "cuda" and self.training["channels_last"] and len(dataset.in_shape) == 3:
            self.memory_format = torch.channels_last
            self.model = self.model.to(memory_format=torch.channels_last)
        names = config_mod.augmentations(settings["data"], dataset.augment)
        self.augmenter = data.Augmenter(names)
        self.mode = make_mode(
            run.mode, self.model, self.training, augment=self.augmenter, normalization=(dataset.mean, dataset.std)
        )
        self.compile_mode = self.training["compile"]
        if self.compile_mode != "none":
            compile_modules(self.model, self.mode, self.compile_mode)

    # -- data -------------------------------------------------------------------------
    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.dataset.normalize(images).contiguous(memory_format=self.memory_format)

    def _autocast(self):
        return runtime.autocast(self.precision, self.device)

    # -- one epoch ----------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        seed = self.run.seed
        torch.manual_seed(runtime.derived_seed(seed, epoch, _MODE_RNG))
        self.augmenter.reseed(runtime.derived_seed(seed, epoch, _AUGMENT))
        shuffle = torch.Generator().manual_seed(runtime.derived_seed(seed, epoch, _SHUFFLE))
        self.model.train()
        self.mode.start_epoch(epoch)
        n, batch_size = len(self.train_y), self.training["batch_size"]
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        steps = 0
        bar = tqdm(
            _batches(n, batch_size, shuffle, self.device),
            total=math.ceil(n / batch_size),
            desc=f"epoch {epoch}/{self.training['epochs']}",
            leave=True,
            mininterval=2.0,
            disable=False,
        )
        graphs = self.compile_mode == "reduce-overhead"
        for idx in bar:
            if graphs:  # a new step: CUDA-graph outputs of the last one may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            with self._autocast():
                loss = self.mode.train_step(self._inputs(self.train_x[idx]), self.train_y[idx])
            total += loss.double()
            steps += 1
        self.mode.end_epoch(epoch)
        mean_loss = float(total / max(steps, 1))
        if not math.isfinite(mean_loss):
            raise DivergedError(
                f"run {self.run} diverged at epoch {epoch}: training loss is {mean_loss}. "
                "Lower training.lr or change the optimizer; the rest of the sweep is unaffected."
            )
        return mean_loss

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, epoch: int) -> list[dict]:
        """Loss and accuracy of the final classifier (and of each head) on train and test."""
        self.model.eval()
        rows = []
        splits = {
            "train": (self.train_x[self.train_eval_idx], self.train_y[self.train_eval_idx]),
            "test": (self.test_x, self.test_y),
        }
        last = len(self.model.layer_names) - 1
        readout = self.mode.readout
        for split, (images, labels) in splits.items():
            sums: dict[int, torch.Tensor] = {}  # (loss sum, correct) per layer, on the device: one sync per split
            for idx in _batches(len(labels), self.training["eval_batch_size"], None, self.device):
                x = self._inputs(images[idx])
                outputs = self.model.layer_outputs(self.mode.eval_input(x))
                y = labels[idx]
                scores, _ = self.mode.predict(x, outputs)
                logits = {**self.mode.head_logits(outputs), last: scores}
                for layer, z in logits.items():
                    z = z.float()
                    step = torch.stack([F.cross_entropy(z, y, reduction="sum"), (z.argmax(1) == y).sum()])
                    sums[layer] = sums[layer] + step.double() if layer in sums else step.double()
            totals = {layer: total.tolist() for layer, total in sums.items()}
            for layer in sorted(totals):
                loss_sum, correct = totals[layer]
                whole = layer == last
                rows.append(
                    {
                        **self.run.columns(),
                        "epoch": epoch,
                        "split": split,
                        "layer": layer,
                        "layer_name": self.model.layer_names[layer],
                        "readout": readout if whole else "head",
                        # goodness sums are no log-probabilities: no cross-entropy for them
                        "loss": loss_sum / len(labels) if not whole or readout == "classifier" else math.nan,
                        "accuracy": correct / len(labels),
                    }
                )
        return rows

    @torch.no_grad()
    def snapshot(self, epoch: int, split: str = contracts.DECLARED_SPLIT) -> contracts.Snapshot:
        """Activations of every layer on the eval set of `split`, stored in the configured dtype."""
        self.model.eval()
        dtype = getattr(torch, self.settings["snapshots"]["dtype"])
        eval_x, eval_indices = self.eval_sets[split]
        chunks: list[list[torch.Tensor]] = []
        for idx in _batches(len(eval_x), self.training["eval_batch_size"], None, self.device):
            x = eval_x[idx].contiguous(memory_format=self.memory_format)
            chunks.append([o.float().cpu() for o in self.model.layer_outputs(self.mode.eval_input(x))])
        layers = []
        for name, parts in zip(self.model.layer_names, zip(*chunks)):
            full = torch.cat(parts).contiguous()
            stored = full.to(dtype)
            if not torch.isfinite(stored).all():
                if torch.isfinite(full).all():
                    log.warning("layer %s overflows %s at epoch %d; stored as float32", name, dtype, epoch)
                    stored = full
                else:
                    raise DivergedError(f"run {self.run}: layer {name} has non-finite activations at epoch {epoch}")
            layers.append(stored)
        return contracts.Snapshot(self.run, epoch, list(self.model.layer_names), layers, eval_indices, split)

    # -- checkpoint ---------------------------------------------------------------------
    def state(self, epoch: int, history: list[dict], signature: str) -> dict:
        return {
            "signature": signature,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "mode": self.mode.state_dict(),
            "history": history,
        }

    def restore(self, state: Mapping) -> None:
        self.model.load_state_dict(state["model"])
        self.mode.load_state_dict(state["mode"])


def compile_modules(model: torch.nn.Module, mode, compile_mode: str) -> None:
    """`torch.compile` every block, the classifier and the mode's heads in place (`Module.compile`
    keeps parameter names, so checkpoints do not change): each mode calls blocks one by one, so
    compiling the whole model would help `e2e` only. `reduce-overhead` adds CUDA graphs."""
    parts = [*model.blocks, model.classifier]
    for part in mode.parts.values():
        parts.extend(part if isinstance(part, torch.nn.ModuleList) else [part])
    for module in parts:
        module.compile(mode=compile_mode)


def train_run(
    run: Run,
    settings: Mapping,
    eval_set_paths: Path | Sequence[Path],
    run_dir: Path,
    device: torch.device,
    stop_after: int | None = None,
) -> pd.DataFrame | None:
    """Train (or resume) one run; `stop_after` ends early after that epoch (tests of resume).

    Writes the run's files (`contracts.RUN_FILES`) into its folder `run_dir`
    (results/train/<run>/ in the workflow)."""
    paths = [eval_set_paths] if isinstance(eval_set_paths, (str, os.PathLike)) else list(eval_set_paths)
    eval_sets = contracts.read_eval_sets(paths)
    splits = list(settings["snapshots"].get("splits", [contracts.DECLARED_SPLIT]))
    absent = [s for s in splits if s not in eval_sets]
    if absent:
        raise MismatchedInputsError(f"snapshots.splits asks for {absent}, but no eval set of that split was given "
                                    f"(given: {sorted(eval_sets)}); pass its eval set (infoplane data --split)")
    eval_sets = {s: eval_sets[s] for s in splits}
    epochs = settings["training"]["epochs"]
    snap_epochs = set(settings["snapshots"]["epochs"])
    signature = settings_signature(run, settings, device)
    state_path = contracts.run_file(run_dir, "checkpoint")
    staged = contracts.run_file(run_dir, "staged_snapshots")

    trainer = Trainer(run, settings, eval_sets, device)
    start, history = 0, []
    if state_path.exists():
        try:
            state = contracts.read_checkpoint(state_path, map_location=device)
        except CorruptFileError as err:
            log.warning("%s", err)
            state = {}
        if state.get("signature") == signature:
            trainer.restore(state)
            start, history = state["epoch"], list(state["history"])
            log.info("resuming %s from its checkpoint at epoch %d", run, start)
        elif state:
            log.warning("checkpoint %s was made with other settings; starting afresh", state_path)
    if start == 0 and not history:
        shutil.rmtree(staged, ignore_errors=True)
        history = trainer.evaluate(0)
        if 0 in snap_epochs:
            _stage(trainer, 0, staged)
        contracts.write_checkpoint(state_path, trainer.state(0, history, signature))

    for epoch in range(start + 1, epochs + 1):
        train_loss = trainer.train_epoch(epoch)
        rows = trainer.evaluate(epoch)
        history.extend(rows)
        test_acc = next(r["accuracy"] for r in rows if r["split"] == "test" and r["layer_name"] == "classifier")
        log.info("%s epoch %d/%d: train loss %.4f, test accuracy %.4f", run, epoch, epochs, train_loss, test_acc)
        if epoch in snap_epochs:
            _stage(trainer, epoch, staged)
        contracts.write_checkpoint(state_path, trainer.state(epoch, history, signature))
        if stop_after is not None and epoch >= stop_after and epoch < epochs:
            log.info("stopping after epoch %d as asked", epoch)
            return None

    for split in eval_sets:
        for epoch in sorted(snap_epochs):
            name = Path(split) / contracts.SNAPSHOT_NAME.format(epoch=epoch)
            _publish(staged / name, contracts.run_file(run_dir, "snapshot", split=split, epoch=epoch))
    return contracts.METRICS.write(pd.DataFrame(history), contracts.run_file(run_dir, "metrics"))


def _stage(trainer: Trainer, epoch: int, staged: Path) -> None:
    """Snapshot every split's eval set at `epoch` into the staging folder (staged/<split>/epoch<e>.pt)."""
    for split in trainer.eval_sets:
        file = staged / split / contracts.SNAPSHOT_NAME.format(epoch=epoch)
        contracts.write_snapshot(file, trainer.snapshot(epoch, split))


def _publish(src: Path, dst: Path) -> None:
    """Hard-link (or copy) a staged snapshot onto its declared output path, atomically."""
    with io.atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
