"""Every registered architecture on every supported input shape, plus known values of the
two deep networks (ResNet18 shapes and parameter count, VGG11 block split)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from infoplane import models
from infoplane.models import ARCHS, MAX_HEAD_FEATURES

IN_SHAPES = [(1, 28, 28), (1, 32, 32), (3, 28, 28), (3, 32, 32)]
NUM_CLASSES = 7  # not 10, so that a hard-coded class count shows up
#: number of blocks (layers before the classifier) of each architecture
BLOCKS = {"mlp": 4, "mlp6": 6, "lenet5": 4, "vgg11": 10, "resnet18": 9}


def test_every_arch_has_a_known_block_count():
    assert set(ARCHS.names()) == set(BLOCKS)


@functools.lru_cache(maxsize=None)
def _model(arch: str, shape: tuple[int, int, int], num_classes: int = NUM_CLASSES) -> models.BlockNet:
    """Each network built once per test session (initializing ResNet18's 11 M weights is slow);
    tests that change a model work on a copy."""
    torch.manual_seed(0)
    return models.build(arch, shape, num_classes).eval()


@pytest.fixture(scope="module", params=[(a, s) for a in ARCHS.names() for s in IN_SHAPES], ids=str)
def built(request):
    """(model in eval mode, input batch, layer outputs) for one arch and input shape."""
    arch, shape = request.param
    model = _model(arch, shape)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        outputs = model.layer_outputs(x)
    return arch, model, x, outputs


def test_blocks_names_and_shapes(built):
    arch, model, x, outputs = built
    assert len(model.blocks) == BLOCKS[arch]
    assert len(model.layer_names) == len(outputs) == BLOCKS[arch] + 1
    assert model.layer_names[-1] == "classifier" and len(set(model.layer_names)) == len(model.layer_names)
    assert model.layer_shapes() == [tuple(o.shape[1:]) for o in outputs]
    assert outputs[-1].shape == (len(x), NUM_CLASSES)
    with torch.no_grad():
        assert torch.equal(model(x), outputs[-1])
    assert all(torch.isfinite(o).all() for o in outputs)


def test_heads_fit_every_block(built):
    _, model, x, outputs = built
    for k in range(len(model.blocks)):
        for kind in ("linear", "mlp"):
            head = model.make_head(k, kind)
            assert head.in_features <= MAX_HEAD_FEATURES
            assert head(outputs[k]).shape == (len(x), NUM_CLASSES)


def test_e2e_gradient_reaches_every_parameter():
    """One backward pass from the logits gives a non-zero gradient to every weight."""
    for arch in ARCHS.names():
        model = copy.deepcopy(_model(arch, (1, 28, 28))).train()
        loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 1]))
        loss.backward()
        dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not dead, f"{arch}: no gradient for {dead}"


def test_resnet18_blocks_and_shapes():
    model = _model("resnet18", (3, 32, 32), 10)
    assert model.layer_names == ["stem", *[f"layer{s}.{i}" for s in range(1, 5) for i in range(2)], "classifier"]
    assert model.layer_shapes() == [
        (64, 32, 32),
        (64, 32, 32),
        (64, 32, 32),
        (128, 16, 16),
        (128, 16, 16),
        (256, 8, 8),
        (256, 8, 8),
        (512, 4, 4),
        (512, 4, 4),
        (10,),
    ]
    assert [tuple(s[1:]) for s in _model("resnet18", (1, 28, 28)).layer_shapes()[:-1:2]] == [
        (28, 28),
        (28, 28),
        (14, 14),
        (7, 7),
        (4, 4),
    ]
    # CIFAR style: no max-pool anywhere, the stem is one 3×3 stride-1 conv
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    stem_conv = model.blocks[0][0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)


def test_resnet18_parameter_count():
    # the CIFAR ResNet18 of the literature (e.g. kuangliu/pytorch-cifar): 11,173,962 parameters
    count = sum(p.numel() for p in _model("resnet18", (3, 32, 32), 10).parameters())
    assert count == 11_173_962
    # one input channel: the stem conv loses 2·9·64 weights
    assert sum(p.numel() for p in _model("resnet18", (1, 28, 28), 10).parameters()) == count - 2 * 9 * 64


def test_basic_block_is_identity_plus_residual():
    """With the residual branch's last BN zeroed, an identity-shortcut block computes relu(x)."""
    block = models.BasicBlock(8, 8).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), torch.relu(x))
    assert isinstance(models.BasicBlock(8, 16, stride=2).shortcut, nn.Sequential)


@pytest.mark.parametrize("size", [28, 32])
def test_vgg11_split(size):
    model = _model("vgg11", (3, size, size), 10)
    assert model.layer_names == [*[f"conv{i}" for i in range(1, 9)], "fc1", "fc2", "classifier"]
    for block in model.blocks[:8]:  # each conv block: one conv3×3 + BN + ReLU, maybe a leading pool
        kinds = [type(m) for m in block if not isinstance(m, nn.MaxPool2d)]
        assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        assert block[-3].kernel_size == (3, 3)
    for block in model.blocks[8:]:
        assert sum(isinstance(m, nn.Linear) for m in block) == 1
    # the five pools of VGG11 are parameter-free and start the blocks conv2, conv3, conv5, conv7, fc1
    starts = [name for name, block in zip(model.layer_names, model.blocks) if isinstance(block[0], nn.MaxPool2d)]
    assert starts == ["conv2", "conv3", "conv5", "conv7", "fc1"]
    spatial = [s[1] for s in model.layer_shapes()[:8]]
    assert spatial == ([32, 16, 8, 8, 4, 4, 2, 2] if size == 32 else [28, 14, 7, 7, 4, 4, 2, 2])
    assert model.layer_shapes()[8:] == [(512,), (512,), (10,)]


def test_vgg11_parameter_count():
    """Independent count: conv weights (no bias, BN follows), BN affine pairs, FC 512-512, classifier."""
    widths = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(9 * cin * cout + 2 * cout for cin, cout in zip(widths, widths[1:]))
    fcs = 2 * (512 * 512 + 2 * 512)
    expected = convs + fcs + 512 * 10 + 10
    assert sum(p.numel() for p in _model("vgg11", (3, 32, 32), 10).parameters()) == expected == 9_754_698


def test_vgg11_skips_pools_on_one_pixel_maps():
    model = models.build("vgg11", (1, 8, 8), 10)  # 8→4→2→1: the last two pools would do nothing
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert model.layer_shapes()[7] == (512, 1, 1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_layer_shapes_do_not_touch_the_model():
    """Shapes come from an eval-mode pass: BN statistics unchanged, each module's mode restored."""
    model = models.build("vgg11", (1, 8, 8), 10).train()
    model.blocks[0].eval()  # a frozen block (sequential layer-wise) must stay frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert model.layer_shapes()[0] == (64, 8, 8)
    assert model.training and not model.blocks[0].training and not model.blocks[0][1].training
    assert all(m.training for m in model.blocks[1].modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
