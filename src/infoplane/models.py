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
        self._layer_shapes: list[tuple[int, ...]] | None = None

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
        """Per-sample shape of every layer's output.

        Found once per model (the block structure is fixed at construction) by an eval-mode,
        no-grad forward pass of a zero batch on the model's device; every submodule's
        train/eval flag is restored afterwards (frozen blocks stay frozen). A real pass of
        two samples costs less than the meta device, whose first use takes seconds.
        """
        if self._layer_shapes is None:
            flags = [(module, module.training) for module in self.modules()]
            reference = next(self.parameters(), None)
            device = reference.device if reference is not None else torch.device("cpu")
            dtype = reference.dtype if reference is not None else torch.float32
            try:
                outputs = self.eval().layer_outputs(torch.zeros((2, *self.in_shape), device=device, dtype=dtype))
            finally:
                for module, training in flags:
                    module.training = training
            self._layer_shapes = [tuple(o.shape[1:]) for o in outputs]
        return list(self._layer_shapes)

    def make_head(self, index: int, kind: str = "linear", hidden: int = 512) -> nn.Module:
        """Auxiliary classifier for block `index` (see `AuxHead`)."""
        return AuxHead(self.layer_shapes()[index], self.num_classes, kind=kind, hidden=hidden)


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


@ARCHS.register("mlp6")
def mlp6(in_shape: Sequence[int], num_classes: int) -> BlockNet:
    """A deeper fully connected ReLU network: six Linear+ReLU blocks (256, 256, 128, 128, 64, 64),
    so that layer differentiation can be studied over more than four blocks on a CPU."""
    return mlp(in_shape, num_classes, widths=(256, 256, 128, 128, 64, 64))


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


#: VGG11 ("configuration A" of Simonyan & Zisserman 2015): conv widths, "M" = 2×2 max-pool.
VGG11_CONVS: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@ARCHS.register("vgg11")
def vgg11(in_shape: Sequence[int], num_classes: int, fc_width: int = 512) -> BlockNet:
    """VGG11 with BatchNorm: 8 conv blocks (conv3×3+BN+ReLU), 2 FC blocks (Linear+BN+ReLU), classifier.

    A max-pool *starts* the block after it (it is parameter-free), so a conv layer's
    representation is its own ReLU output, as in the authors' code where pools sit
    between trainable blocks; the last pool starts `fc1` with the flatten. Pools use
    `ceil_mode`, so 28-px maps go 28→14→7→4→2→1 and 32-px maps 32→16→8→4→2→1; a pool
    on a 1-px map is skipped (tiny inputs). FC width 512 as in CIFAR VGGs (the authors'
    code), not the 4096 of ImageNet VGG; no dropout.
    """
    channels, height, width = in_shape
    blocks: list[nn.Module] = []
    names: list[str] = []
    pending: list[nn.Module] = []  # pools waiting to start the next block
    for spec in VGG11_CONVS:
        if spec == "M":
            if height > 1 or width > 1:
                pending.append(nn.MaxPool2d(2, ceil_mode=True))
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            continue
        conv = nn.Conv2d(channels, int(spec), 3, padding=1, bias=False)
        blocks.append(nn.Sequential(*pending, conv, nn.BatchNorm2d(int(spec)), nn.ReLU(inplace=True)))
        names.append(f"conv{len(blocks)}")
        pending, channels = [], int(spec)
    flat = channels * height * width
    blocks.append(nn.Sequential(*pending, nn.Flatten(), *_fc_bn_relu(flat, fc_width)))
    blocks.append(nn.Sequential(*_fc_bn_relu(fc_width, fc_width)))
    names += ["fc1", "fc2"]
    return BlockNet(blocks, nn.Linear(fc_width, num_classes), names, in_shape, num_classes)


def _fc_bn_relu(width_in: int, width_out: int) -> list[nn.Module]:
    return [nn.Linear(width_in, width_out, bias=False), nn.BatchNorm1d(width_out), nn.ReLU(inplace=True)]


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)).

    The shortcut is the identity, or a strided 1×1 conv + BN when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


@ARCHS.register("resnet18")
def resnet18(in_shape: Sequence[int], num_classes: int) -> BlockNet:
    """CIFAR-style ResNet18: 9 blocks = `stem` (3×3 conv+BN+ReLU, stride 1, no max-pool) and
    the 8 basic blocks `layer1.0` ... `layer4.1` (64, 128, 256, 512 channels; the first
    block of layers 2-4 has stride 2), then global average pool + linear classifier.

    Maps on 32 px: 64×32×32 (stem, layer1) → 128×16×16 → 256×8×8 → 512×4×4; on 28 px
    28 → 14 → 7 → 4. 11,173,962 parameters for 3×32×32 inputs and 10 classes.
    """
    channels = in_shape[0]
    blocks: list[nn.Module] = [
        nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    ]
    names = ["stem"]
    width = 64
    for stage, out in enumerate((64, 128, 256, 512), start=1):
        for i in range(2):
            stride = 2 if stage > 1 and i == 0 else 1
            blocks.append(BasicBlock(width, out, stride))
            names.append(f"layer{stage}.{i}")
            width = out
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
    return BlockNet(blocks, classifier, names, in_shape, num_classes)


def build(arch: str, in_shape: Sequence[int], num_classes: int) -> BlockNet:
    """Build a registered architecture by name."""
    return ARCHS.get(arch)(tuple(in_shape), num_classes)
