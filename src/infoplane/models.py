"""Architectures as an ordered list of blocks plus a final classifier.

Every training mode shares this one definition: `e2e` backpropagates through all blocks,
layer-wise modes detach between them and train each block through an auxiliary head made
by `BlockNet.make_head`. The representation of layer k is the output of block k; the last
"layer" is the classifier's output (the logits). Register a new architecture with
`@ARCHS.register("name")` on a function `(in_shape, num_classes) -> BlockNet`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .registry import Registry

ARCHS: Registry = Registry("arch")

MAX_HEAD_FEATURES = 2048


class BlockNet(nn.Module):
    """blocks[0] ... blocks[K-1] then classifier; `layer_names` has K + 1 entries."""

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        classifier: nn.Module,
        block_names: Sequence[str],
        in_shape: Sequence[int],
        num_classes: int,
    ) -> None:
        super().__init__()
        if len(blocks) != len(block_names):
            raise ValueError("one name per block is required")
        self.blocks = nn.ModuleList(blocks)
        self.classifier = classifier
        self.layer_names = [*block_names, "classifier"]
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.classifier(x)

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every block, then the logits (one entry per `layer_names`)."""
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        outputs.append(self.classifier(x))
        return outputs

    @torch.no_grad()
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of every layer's output (a forward pass on the meta device)."""
        was_training = self.training
        meta = _on_meta(self).eval()
        shapes = [tuple(o.shape[1:]) for o in meta.layer_outputs(torch.zeros((2, *self.in_shape), device="meta"))]
        self.train(was_training)
        return shapes

    def make_head(self, index: int, kind: str = "linear", hidden: int = 512) -> nn.Module:
        """Auxiliary classifier for block `index` (see `AuxHead`)."""
        return AuxHead(self.layer_shapes()[index], self.num_classes, kind=kind, hidden=hidden)


def _on_meta(model: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(model)
    return clone.to_empty(device="meta")


class AuxHead(nn.Module):
    """Average-pool a block output until C·H·W ≤ 2048, flatten, then linear (or a 1-hidden-layer MLP).

    Spatial maps are halved (ceil) until small enough, so the head sees all positions.
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int, kind: str = "linear", hidden: int = 512):
        super().__init__()
        in_shape = tuple(in_shape)
        if len(in_shape) == 3:
            c, h, w = in_shape
            while c * h * w > MAX_HEAD_FEATURES and (h > 1 or w > 1):
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            self.pool: nn.Module = nn.AdaptiveAvgPool2d((h, w))
            features = c * h * w
        else:
            self.pool = nn.Identity()
            features = math.prod(in_shape)
        if kind == "linear":
            self.fc: nn.Module = nn.Linear(features, num_classes)
        elif kind == "mlp":
            self.fc = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
        else:
            raise ValueError(f"unknown head kind {kind!r}; allowed: linear, mlp")
        self.in_features = features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(z), 1))


def _conv_out(size: int, kernel: int, pad: int = 0, stride: int = 1) -> int:
    return (size + 2 * pad - kernel) // stride + 1


@ARCHS.register("mlp")
def mlp(in_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (512, 256, 128, 64)) -> BlockNet:
    """Fully connected ReLU network; each Linear+ReLU is a block (the first flattens)."""
    blocks, names, width_in = [], [], math.prod(in_shape)
    for i, width in enumerate(widths):
        layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        layers += [nn.Linear(width_in, width), nn.ReLU(inplace=True)]
        blocks.append(nn.Sequential(*layers))
        names.append(f"fc{i + 1}")
        width_in = width
    return BlockNet(blocks, nn.Linear(width_in, num_classes), names, in_shape, num_classes)


@ARCHS.register("lenet5")
def lenet5(in_shape: Sequence[int], num_classes: int) -> BlockNet:
    """Classic LeNet-5 with ReLU: conv6-pool, conv16-pool, fc120, fc84, classifier.

    28-pixel inputs are zero-padded by 2 in the first conv, so 28 and 32 pixels both
    reach the 16×5×5 map of the original design.
    """
    channels, height, width = in_shape
    pad = 2 if min(height, width) < 32 else 0
    h, w = (_conv_out(s, 5, pad) // 2 for s in (height, width))
    h, w = _conv_out(h, 5) // 2, _conv_out(w, 5) // 2
    blocks = [
        nn.Sequential(nn.Conv2d(channels, 6, 5, padding=pad), nn.ReLU(inplace=True), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Linear(120, 84), nn.ReLU(inplace=True)),
    ]
    return BlockNet(blocks, nn.Linear(84, num_classes), ["conv1", "conv2", "fc1", "fc2"], in_shape, num_classes)


def build(arch: str, in_shape: Sequence[int], num_classes: int) -> BlockNet:
    """Build a registered architecture by name."""
    return ARCHS.get(arch)(tuple(in_shape), num_classes)
