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

from infoplane import config, losses
from infoplane.alternatives import WAVE_AMPLITUDE, ForwardForward, label_waves
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


def test_auto_goodness_pools_conv_maps_only_when_the_first_block_convolves():
    assert _ff(build("lenet5", (1, 28, 28), 10)).goodness_conv == "channel_max"
    assert _ff(build("mlp", (1, 28, 28), 10)).goodness_conv == "mean_square"
    assert _ff(build("lenet5", (1, 28, 28), 10), ff_goodness="mean_square").goodness_conv == "mean_square"


def test_goodness_known_values_against_a_float64_reference():
    """z[b, c, i, j] with distinct values: every reduction by hand, in float64."""
    z = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).view(2, 3, 4, 5).sub(50.0).div(7.0)
    flat = z.flatten(2)
    expected = {
        "mean_square": (flat**2).mean(dim=(1, 2)),
        "channel_mean": (flat.sum(2) / 20) ** 2,
        "channel_max": flat.max(2).values ** 2,
    }
    expected = {k: v.mean(1) if v.dim() == 2 else v for k, v in expected.items()}
    for kind, reference in expected.items():
        got = losses.goodness(z.float(), kind)
        assert got.dtype == torch.float32 and got.shape == (2,)
        assert torch.allclose(got.double(), reference, rtol=1e-6), kind
    # the pooled forms differ from the mean of local squares on the same map
    assert not torch.allclose(expected["channel_max"], expected["mean_square"])
    assert not torch.allclose(expected["channel_mean"], expected["mean_square"])
    # sample 0 by hand: channel maxima are z[0, c, 3, 4] = (20c + 19 - 50)/7
    by_hand = sum(((20 * c + 19 - 50) / 7) ** 2 for c in range(3)) / 3
    assert losses.goodness(z.float(), "channel_max")[0].item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("kind", ["channel_mean", "channel_max"])
def test_pooled_goodness_ignores_where_a_channel_fires(kind):
    """Shifting the map (circularly) or permuting its positions leaves a pooled goodness unchanged,
    and a feature moved from one corner to the other keeps it; the mean of local squares would
    too, but a pooled goodness also changes when the SAME energy is spread over more positions."""
    torch.manual_seed(0)
    z = torch.randn(4, 6, 7, 7).relu()
    g = losses.goodness(z, kind)
    assert torch.allclose(losses.goodness(torch.roll(z, shifts=(2, -3), dims=(2, 3)), kind), g, rtol=1e-6)
    perm = torch.randperm(49)
    assert torch.allclose(losses.goodness(z.flatten(2)[:, :, perm].view_as(z), kind), g, rtol=1e-6)
    spot = torch.zeros(1, 1, 4, 4)
    spot[0, 0, 0, 0] = 2.0
    moved = torch.zeros(1, 1, 4, 4)
    moved[0, 0, 3, 3] = 2.0
    spread = torch.full((1, 1, 4, 4), 0.5)  # the same sum of squares (4.0) over all 16 positions
    assert losses.goodness(spot, kind).item() == losses.goodness(moved, kind).item()
    assert losses.goodness(spot, "mean_square").item() == pytest.approx(losses.goodness(spread, "mean_square").item())
    assert losses.goodness(spot, kind).item() != pytest.approx(losses.goodness(spread, kind).item())


def test_vector_goodness_is_the_mean_square_whatever_the_setting():
    """A fully connected block's output has no positions: every setting gives the same numbers, so
    the MLP's ff is the same bit for bit."""
    z = torch.randn(5, 17)
    reference = losses.goodness(z)
    for kind in losses.FF_GOODNESS:
        assert torch.equal(losses.goodness(z, kind), reference)
    with pytest.raises(ValueError, match="unknown ff goodness 'sum'"):
        losses.goodness(torch.randn(2, 3, 4, 4), "sum")


def test_waves_default_amplitude_is_one_whatever_the_image():
    """Under `waves` the label's amplitude is WAVE_AMPLITUDE (1, the data's unit std), not the
    image's maximum (the `pixels` default): two images with different maxima get the same wave."""
    mode = _ff(build("lenet5", (1, 28, 28), 10))
    assert mode.embedding == "waves" and WAVE_AMPLITUDE == 1.0
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 5, 5], x[1, 0, 9, 9] = 1.0, 8.0
    code = F.one_hot(torch.tensor([3, 3]), 10).float()
    added = mode.embed(x, code) - x
    assert torch.allclose(added, label_waves(10, 28, 28)[3].expand(2, 1, 28, 28), atol=1e-6)
    assert _ff(build("mlp", (1, 28, 28), 10)).embedding == "pixels"  # keeps the image maximum


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
