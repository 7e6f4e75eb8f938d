"""Forward-forward's label embedding on conv nets (`infoplane.alternatives`).

Under the `pixels` embedding a conv block sees the label only at the few output positions whose
receptive field covers the top-left corner, so its goodness (a mean over every position) hardly
depends on the label and ff stayed at chance on LeNet5. These tests fail on that embedding.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from infoplane import config
from infoplane.alternatives import ForwardForward, label_waves
from infoplane.models import BlockNet, build
from infoplane.modes import make_mode

TRAINING = {**config.defaults("training"), "epochs": 4, "batch_size": 32}


def _ff(model: BlockNet, **training) -> ForwardForward:
    return make_mode("ff", model, {**TRAINING, **training})


def test_auto_embedding_is_waves_for_a_conv_first_block_and_pixels_otherwise():
    assert _ff(build("lenet5", (1, 28, 28), 10)).embedding == "waves"
    assert _ff(build("mlp", (1, 28, 28), 10)).embedding == "pixels"
    assert _ff(build("lenet5", (1, 28, 28), 10), ff_label_embedding="pixels").embedding == "pixels"
    assert _ff(build("mlp", (1, 28, 28), 10), ff_label_embedding="waves").embedding == "waves"


def test_label_waves_known_values():
    waves = label_waves(4, 9, 11, wavelength=7.0)
    assert waves.shape == (4, 9, 11)
    i = torch.arange(9, dtype=torch.float64).view(-1, 1).expand(9, 11)
    j = torch.arange(11, dtype=torch.float64).view(1, -1).expand(9, 11)
    assert torch.allclose(waves[0], torch.cos(2 * math.pi * i / 7).float(), atol=1e-6)  # θ = 0: rows
    assert torch.allclose(waves[2], torch.cos(2 * math.pi * j / 7).float(), atol=1e-6)  # θ = π/2: columns
    assert waves.abs().max() <= 1.0


def test_waves_embedding_adds_the_code_weighted_waves_to_every_channel():
    model = build("lenet5", (3, 32, 32), 5)
    mode = _ff(model, ff_label_value=2.0)
    x = torch.randn(4, 3, 32, 32)
    code = F.one_hot(torch.tensor([0, 3, 4, 1]), 5).float()
    waves = label_waves(5, 32, 32)
    expected = x + 2.0 * waves[[0, 3, 4, 1]].unsqueeze(1)
    assert torch.allclose(mode.embed(x, code), expected, atol=1e-6)
    neutral = mode.eval_input(x)
    assert torch.allclose(neutral, x + 2.0 * waves.mean(0), atol=1e-6)


@pytest.mark.parametrize(("embedding", "reached"), [("waves", True), ("pixels", False)])
def test_the_label_reaches_every_position_of_the_first_conv_only_under_waves(embedding, reached):
    """The first conv's output for two labels of the same image: where do they differ? Under
    `pixels` only where the 5×5 kernel (padding 2) overlaps the two differing label pixels
    (row 0, columns 2 and 7): rows 0–2 × columns 0–9, 30 of 784 positions."""
    torch.manual_seed(0)
    model = build("lenet5", (1, 28, 28), 10)
    mode = _ff(model, ff_label_embedding=embedding, ff_label_value=1.0)
    conv = model.blocks[0][0]
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        a = conv(mode.embed(x, F.one_hot(torch.tensor([2]), 10).float()))
        b = conv(mode.embed(x, F.one_hot(torch.tensor([7]), 10).float()))
    differs = (a - b).abs().amax(dim=1) > 1e-6  # any channel, per position
    if reached:
        assert differs.float().mean() > 0.9
    else:
        assert int(differs.sum()) == 30 and bool(differs[0, :3, :10].all())


def _quadrant_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """1×12×12 images of 4 classes: a bright 4×4 square in the class's quadrant, on noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = 0.3 * torch.randn(n, 1, 12, 12, generator=g)
    for k, (r, c) in enumerate([(1, 1), (1, 7), (7, 1), (7, 7)]):
        x[y == k, :, r : r + 4, c : c + 4] += 2.0
    return x, y


def _tiny_conv_net() -> BlockNet:
    blocks = [
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
    ]
    return BlockNet(blocks, nn.Sequential(nn.Flatten(), nn.Linear(8 * 3 * 3, 4)), ["c1", "c2"], (1, 12, 12), 4)


def test_ff_learns_an_easy_task_on_a_conv_net():
    """All blocks convolutional, so the label can reach the goodness only through a conv: with
    the default embedding, positives gain goodness over negatives within a few steps and the
    goodness read-out classifies held-out images far above chance (0.25; with 200 images a
    chance score above 0.5 is 8 standard deviations away)."""
    torch.manual_seed(0)
    model = _tiny_conv_net()
    mode = _ff(model, lr=3e-3)
    assert mode.embedding == "waves"
    x, y = _quadrant_task(512, seed=1)
    x_test, y_test = _quadrant_task(200, seed=2)

    @torch.no_grad()
    def margin() -> float:
        model.eval()
        scores, _ = mode.predict(x_test)
        model.train()
        positive = scores[torch.arange(len(y_test)), y_test]
        return float((positive - (scores.sum(1) - positive) / 3).mean())

    before = margin()
    for epoch in range(6):
        torch.manual_seed(10 + epoch)
        for idx in torch.randperm(len(y)).split(32):
            mode.train_step(x[idx], y[idx])
        if epoch == 0:
            assert margin() > max(before, 0.0)
    model.eval()
    with torch.no_grad():
        accuracy = float((mode.predict(x_test)[0].argmax(1) == y_test).float().mean())
    assert accuracy > 0.5, accuracy
