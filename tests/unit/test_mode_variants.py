"""Modes as their authors run them: supcon's two-view pipeline inside the mode, predsim's
centred target and projections, forward-forward's prediction by goodness, `Mode.predict`,
and the new training options."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from infoplane import config, losses
from infoplane.augment import TwoViewAugmenter
from infoplane.models import BlockNet, build
from infoplane.alternatives import ForwardForward
from infoplane.modes import check_training, make_mode

NUM_CLASSES = 4
BATCH = 8
TRAINING = {**config.defaults("training"), "epochs": 4, "batch_size": BATCH}
RGB = (3, 16, 16)
RGB_NORMALIZATION = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def _batch(shape, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized-looking images (unit pixels through the CIFAR normalization for RGB)."""
    g = torch.Generator().manual_seed(seed)
    unit = torch.rand(BATCH, *shape, generator=g)
    if shape[0] == 3:
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in RGB_NORMALIZATION)
        x = (unit - mean) / std
    else:
        x = (unit - 0.1307) / 0.3081
    return x, torch.arange(BATCH) % NUM_CLASSES


def _block_inputs(module: nn.Module) -> tuple[list[torch.Tensor], object]:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen, handle


# -- supcon: the authors' views inside the mode ------------------------------------------------------
def test_supcon_uses_the_authors_views_by_default_and_flip_on_request():
    torch.manual_seed(0)
    model = build("mlp", RGB, NUM_CLASSES)
    mode = make_mode("layerwise-supcon", model, TRAINING, normalization=RGB_NORMALIZATION)
    assert isinstance(mode.view_maker, TwoViewAugmenter)
    x, y = _batch(RGB)
    seen, handle = _block_inputs(model.blocks[0])
    classifier_seen, classifier_handle = _block_inputs(model.classifier)
    torch.manual_seed(1)
    mode.start_epoch(1)
    mode.local_losses(x, y)
    handle.remove()
    classifier_handle.remove()
    first, second = seen[0].split(BATCH)
    assert ((first - second).flatten(1).abs().amax(1) > 1e-3).all()  # two different views of every image
    assert ((first - x).flatten(1).abs().amax(1) > 1e-3).all()
    assert classifier_seen[0].shape[0] == BATCH  # the final classifier learns from the first view

    flip = make_mode("layerwise-supcon", model, {**TRAINING, "supcon_views": "flip"})  # no augment: identity
    assert flip.view_maker is None
    seen, handle = _block_inputs(model.blocks[0])
    flip.local_losses(x, y)
    handle.remove()
    assert torch.equal(seen[0], torch.cat([x, x]))


def test_supcon_rgb_without_normalization_names_the_fix():
    model = build("mlp", RGB, NUM_CLASSES)
    with pytest.raises(ValueError, match="normalization=\\(dataset.mean, dataset.std\\)"):
        make_mode("layerwise-supcon", model, TRAINING)
    make_mode("layerwise-supcon", model, {**TRAINING, "supcon_views": "flip"})  # needs none
    make_mode("layerwise-supcon", build("mlp", (1, 12, 12), NUM_CLASSES), TRAINING)  # 1 channel: none either


@pytest.mark.parametrize("mode_name", ["layerwise-supcon", "layerwise_seq-supcon"])
def test_supcon_rgb_loss_falls_and_a_resumed_run_replays_the_views(mode_name):
    """Fixed batch and fixed draws: the loss falls; after a state-dict round trip, epoch 2
    sees the same views and ends with the same weights as the uninterrupted run."""
    extra = {"epochs_per_block": 1} if "seq" in mode_name else {}

    def fresh(seed):
        torch.manual_seed(seed)
        model = build("mlp", RGB, NUM_CLASSES)
        return model, make_mode(mode_name, model, {**TRAINING, **extra}, normalization=RGB_NORMALIZATION)

    model, mode = fresh(0)
    x, y = _batch(RGB)
    model.train()
    history = []
    for _ in range(4):
        torch.manual_seed(1)
        mode.start_epoch(1)
        history.append(float(mode.train_step(x, y)))
    assert history[-1] < history[0], history
    mode.end_epoch(1)

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "mode": mode.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed_model, resumed = fresh(5)
    resumed_model.load_state_dict(state["model"])
    resumed.load_state_dict(state["mode"])

    results = []
    for net, md in ((model, mode), (resumed_model, resumed)):
        seen, handle = _block_inputs(net.blocks[0])
        torch.manual_seed(2)  # what the trainer does before epoch 2
        net.train()
        md.start_epoch(2)
        md.train_step(x, y)
        md.train_step(x, y)
        handle.remove()
        results.append((seen, net.state_dict()))
    (seen_a, sd_a), (seen_b, sd_b) = results
    assert all(torch.equal(a, b) for a, b in zip(seen_a, seen_b))
    assert not torch.equal(seen_a[0], seen_a[1])  # views change from step to step
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


# -- predsim and sim --------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [2, 4, 10])
def test_centred_label_target_is_one_within_and_minus_one_over_c_minus_one_between(num_classes):
    labels = torch.arange(3 * num_classes) % num_classes
    target = losses.label_similarity(labels, num_classes, centered=True)
    same = labels.view(-1, 1) == labels.view(1, -1)
    assert torch.allclose(target[same], torch.ones(()), atol=1e-6)
    assert torch.allclose(target[~same], torch.full((), -1.0 / (num_classes - 1)), atol=1e-6)
    assert torch.equal(losses.label_similarity(labels, num_classes, centered=False), same.float())


def _similarity_features_reference(z: np.ndarray, conv: str) -> np.ndarray:
    if z.ndim != 4:
        return z.reshape(len(z), -1)
    b, c, h, w = z.shape
    if conv == "std":
        if c > 3 and h > 1:
            return z.reshape(b, c, -1).std(axis=2, ddof=1)
        return z.reshape(b, -1)
    if conv == "flatten":
        return z.reshape(b, -1)
    while c * h * w > 2048 and (h > 1 or w > 1):  # pooled_features: halve (ceil) until <= 2048
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    assert z.shape[2] % h == 0 and z.shape[3] % w == 0, "reference only for evenly divisible maps"
    kh, kw = z.shape[2] // h, z.shape[3] // w
    return z.reshape(b, c, h, kh, w, kw).mean(axis=(3, 5)).reshape(b, -1)


def _sim_reference(f: np.ndarray, labels: np.ndarray, num_classes: int, centred: bool) -> float:
    """Naive float64: adjusted cosine similarities of features and of the (centred) one-hot labels."""

    def adjusted_cosine(a):
        a = a - a.mean(axis=1, keepdims=True)
        n = len(a)
        return np.array(
            [[a[i] @ a[j] / (np.linalg.norm(a[i]) * np.linalg.norm(a[j])) for j in range(n)] for i in range(n)]
        )

    onehot = np.eye(num_classes)[labels]
    target = adjusted_cosine(onehot) if centred else onehot @ onehot.T
    return float(((adjusted_cosine(f) - target) ** 2).mean())


@pytest.mark.parametrize(
    ("shape", "conv"),
    [
        ((6, 5, 4), "std"),
        ((3, 5, 4), "std"),
        ((6, 1, 4), "std"),
        ((6, 5, 4), "flatten"),
        ((64, 8, 8), "pool"),
        ((7,), "std"),
    ],
)
def test_predsim_loss_matches_reference(shape, conv):
    g = torch.Generator().manual_seed(4)
    projection = torch.randn(BATCH, *shape, generator=g)
    logits = torch.randn(BATCH, NUM_CLASSES, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 0])
    beta = 0.9
    p = projection.double().numpy()
    features = _similarity_features_reference(p, conv)
    lg = logits.double().numpy()
    ce = float(np.mean(np.log(np.exp(lg).sum(1)) - lg[np.arange(BATCH), labels.numpy()]))
    expected = (1 - beta) * ce + beta * _sim_reference(features, labels.numpy(), NUM_CLASSES, centred=True)
    value = losses.predsim_loss(logits, projection, labels, NUM_CLASSES, beta=beta, conv=conv)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_sim_mode_reduces_conv_maps_by_channel_std_against_the_onehot_target():
    """`sim` is the authors' similarity loss on the block output: per-channel std of a conv map."""
    torch.manual_seed(0)
    model = build("lenet5", (1, 28, 28), NUM_CLASSES)
    mode = make_mode("layerwise-sim", model, TRAINING)
    x, y = _batch((1, 28, 28))
    z = model.blocks[0](x)  # 6 channels × 14 × 14: std applies
    features = _similarity_features_reference(z.detach().double().numpy(), "std")
    expected = _sim_reference(features, y.numpy(), NUM_CLASSES, centred=False)
    assert mode.block_loss(0, z, y).item() == pytest.approx(expected, rel=1e-5)


def test_predsim_heads_project_conv_maps_by_3x3_conv_and_vectors_linearly():
    model = build("lenet5", (1, 28, 28), NUM_CLASSES)
    mode = make_mode("layerwise-predsim-mlp", model, TRAINING)
    conv, fc = mode.heads[0].projection, mode.heads[2].projection
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    assert conv.in_channels == conv.out_channels == 6 and conv.bias is None
    linear = fc[-1]
    assert isinstance(linear, nn.Linear) and linear.in_features == linear.out_features == 120 and linear.bias is None
    assert isinstance(mode.heads[0].classifier.fc, nn.Sequential)  # the -mlp suffix applies to the CE head
    x, _ = _batch((1, 28, 28))
    z = model.blocks[0](x)
    assert mode.heads[0].project(z).shape == z.shape


@pytest.mark.parametrize(
    ("beta", "learns"), [(0.0, {"classifier"}), (1.0, {"projection"}), (0.99, {"classifier", "projection"})]
)
def test_predsim_beta_weighs_prediction_against_similarity(beta, learns):
    torch.manual_seed(0)
    model = build("mlp", (1, 12, 12), NUM_CLASSES)
    mode = make_mode("layerwise-predsim", model, {**TRAINING, "predsim_beta": beta})
    x, y = _batch((1, 12, 12))
    loss = mode.local_losses(x, y)[1]
    loss.backward()
    head = mode.heads[1]
    for part in ("classifier", "projection"):
        grads = [p.grad for p in getattr(head, part).parameters()]
        got = any(g is not None and float(g.abs().sum()) > 0 for g in grads)
        assert got == (part in learns), (beta, part)


def test_predsim_projection_is_saved_and_restored():
    torch.manual_seed(0)
    model = build("lenet5", (1, 28, 28), NUM_CLASSES)
    mode = make_mode("layerwise_seq-predsim", model, {**TRAINING, "epochs_per_block": 1})
    state = mode.state_dict()
    keys = [k for k in state["parts"] if ".projection." in k]
    assert len(keys) == len(model.blocks)
    torch.manual_seed(9)
    other = make_mode(
        "layerwise_seq-predsim", build("lenet5", (1, 28, 28), NUM_CLASSES), {**TRAINING, "epochs_per_block": 1}
    )
    assert not all(torch.equal(other.state_dict()["parts"][k], state["parts"][k]) for k in keys)
    other.load_state_dict(state)
    assert all(torch.equal(other.state_dict()["parts"][k], state["parts"][k]) for k in keys)


# -- forward-forward: prediction by goodness ----------------------------------------------------------
def _ff(arch: str, shape, **training) -> tuple[BlockNet, ForwardForward]:
    torch.manual_seed(0)
    model = build(arch, shape, NUM_CLASSES)
    return model, make_mode("ff", model, {**TRAINING, **training})


@pytest.mark.parametrize("blocks", ["all", "all_but_first"])
@pytest.mark.parametrize(("arch", "shape"), [("mlp", (1, 12, 12)), ("lenet5", (1, 28, 28))])
def test_ff_batched_goodness_equals_a_loop_over_the_labels(arch, shape, blocks):
    model, mode = _ff(arch, shape, ff_goodness_blocks=blocks)
    x, y = _batch(shape)
    model.train()
    torch.manual_seed(1)
    mode.train_step(x, y)  # not at initialization: some structure in the goodness
    model.eval()
    first = 0 if blocks == "all" else 1
    with torch.no_grad():
        scores, readout = mode.predict(x)
        looped = torch.zeros(BATCH, NUM_CLASSES)
        for c in range(NUM_CLASSES):
            h = mode.embed(x, F.one_hot(torch.full((BATCH,), c), NUM_CLASSES))
            for k, block in enumerate(model.blocks):
                h = block(h)
                if k >= first:  # a conv map's goodness: each channel's max over positions, squared
                    pooled = h.amax(dim=(2, 3)) if h.dim() == 4 else h
                    looped[:, c] += pooled.pow(2).flatten(1).mean(1)
        mode.predict_max_samples = 3 * NUM_CLASSES  # chunks of 3 images
        chunked, _ = mode.predict(x)
    assert readout == "goodness" and mode.readout == "goodness"
    assert scores.shape == (BATCH, NUM_CLASSES)
    assert torch.allclose(scores, looped, rtol=1e-5, atol=1e-7)
    assert torch.allclose(chunked, scores, rtol=1e-5, atol=1e-7)


def _goodness_puzzle(decoy: float) -> BlockNet:
    """A 2-block net on 1×4×4 images of class y (pixel C + y lit) whose goodness is built by hand.

    Block 0 units: m_c = relu(label_c + pixel_{C+c} - 1.5) (fires iff label c is the class)
    and d_c = decoy·relu(label_c + pixel_{C+(c-1) mod C} - 1.5) (fires for label y + 1).
    Block 1 (after ff's unit-mean-square input normalization) keeps only the m units. So
    block 1 prefers the true label; block 0 prefers y + 1 when the decoy is large.
    """
    c = NUM_CLASSES
    first = nn.Linear(16, 2 * c)
    with torch.no_grad():
        first.weight.zero_()
        first.bias.fill_(-1.5)
        for k in range(c):
            first.weight[k, k] = first.weight[k, c + k] = 1.0
            first.weight[c + k, k] = first.weight[c + k, c + (k - 1) % c] = 1.0
    scale = torch.cat([torch.ones(c), torch.full((c,), decoy)])
    block0 = nn.Sequential(nn.Flatten(), first, nn.ReLU(), _Scale(scale))
    second = nn.Linear(2 * c, c, bias=False)
    with torch.no_grad():
        second.weight.copy_(torch.cat([torch.eye(c), torch.zeros(c, c)], dim=1))
    return BlockNet([block0, nn.Sequential(second, nn.ReLU())], nn.Linear(c, c), ["b0", "b1"], (1, 4, 4), c)


class _Scale(nn.Module):
    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, z):
        return z * self.scale


def test_ff_predicts_the_label_its_goodness_prefers():
    labels = torch.tensor([0, 1, 2, 3, 2, 1])
    x = torch.zeros(len(labels), 1, 4, 4)
    x.view(len(labels), -1)[torch.arange(len(labels)), NUM_CLASSES + labels] = 1.0
    for blocks, expected in (("all_but_first", labels), ("all", (labels + 1) % NUM_CLASSES)):
        model = _goodness_puzzle(decoy=10.0).eval()
        mode = make_mode("ff", model, {**TRAINING, "ff_goodness_blocks": blocks, "ff_label_value": 1.0})
        scores, _ = mode.predict(x)
        assert torch.equal(scores.argmax(1), expected), (blocks, scores)
    model = _goodness_puzzle(decoy=1.0).eval()  # without the decoy both rules find the class
    mode = make_mode("ff", model, {**TRAINING, "ff_label_value": 1.0})
    assert torch.equal(mode.predict(x)[0].argmax(1), labels)


def test_ff_softmax_readout_and_default_predict_are_the_final_classifier():
    model, mode = _ff("mlp", (1, 12, 12), ff_readout="softmax")
    x, _ = _batch((1, 12, 12))
    model.eval()
    with torch.no_grad():
        scores, readout = mode.predict(x)
        outputs = model.layer_outputs(mode.eval_input(x))
        reused, _ = mode.predict(x, outputs)
    assert readout == "classifier" == mode.readout
    assert torch.equal(scores, model(mode.eval_input(x))) and reused is outputs[-1]
    for name in ("e2e", "layerwise-ce", "layerwise-predsim", "sigprop"):
        torch.manual_seed(0)
        net = build("mlp", (1, 12, 12), NUM_CLASSES).eval()
        md = make_mode(name, net, TRAINING)
        with torch.no_grad():
            logits, readout = md.predict(x)
            assert readout == "classifier" == md.readout and torch.equal(logits, net(x)), name


# -- options -------------------------------------------------------------------------------------------
def test_new_options_have_their_defaults():
    training = config.defaults("training")
    assert training["supcon_views"] == "authors"
    assert training["predsim_beta"] == 0.99
    assert training["predsim_conv_features"] == "std"
    assert training["ff_readout"] == "goodness"
    assert training["ff_goodness_blocks"] == "all"
    assert training["ff_goodness"] == "auto"


@pytest.mark.parametrize("value", [1.5, -0.1, True])
def test_predsim_beta_outside_the_unit_interval_is_refused_by_the_schema(value):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="predsim_beta"):
        config.load(overrides={"training": {"predsim_beta": value}})


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("layerwise-supcon", "supcon_views", "khosla", "allowed: authors, flip"),
        ("layerwise_seq-predsim", "predsim_conv_features", "max", "allowed: std, flatten, pool"),
        ("ff", "ff_readout", "argmax", "allowed: goodness, softmax"),
        ("ff", "ff_goodness_blocks", "last", "allowed: all, all_but_first"),
        ("ff", "ff_goodness", "sum", "allowed: auto, mean_square, channel_mean, channel_max"),
    ],
)
def test_bad_option_values_name_the_key_and_the_allowed_values(name, key, value, message):
    with pytest.raises(ValueError, match=f"training.{key}: .*{message}"):
        check_training(name, {**TRAINING, key: value}, num_blocks=4)


def test_ff_all_but_first_needs_two_blocks():
    with pytest.raises(ValueError, match="training.ff_goodness_blocks = 'all_but_first' needs at least 2 blocks"):
        check_training("ff", {**TRAINING, "ff_goodness_blocks": "all_but_first"}, num_blocks=1)
    check_training("ff", {**TRAINING, "ff_goodness_blocks": "all_but_first"}, num_blocks=2)
