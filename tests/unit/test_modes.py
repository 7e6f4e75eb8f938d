"""Training modes: every registered architecture × every mode family, on tiny CPU batches."""

from __future__ import annotations

import functools
import io
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from infoplane import config, losses
from infoplane.models import ARCHS, AuxHead, BlockNet, build
from infoplane.modes import HEADS, LOCAL_LOSSES, MODES, Mode, ModeSpec, check_training, make_mode

NUM_CLASSES = 4
BATCH = 8
TRAINING = {**config.defaults("training"), "epochs": 20, "batch_size": BATCH}

MODE_NAMES = [
    "e2e",
    "layerwise-ce",
    "layerwise-ce-mlp",
    "layerwise-supcon",
    "layerwise-supcon-mlp",
    "layerwise-sim",
    "layerwise-predsim",
    "layerwise-predsim-mlp",
    "layerwise_seq-ce",
    "layerwise_seq-supcon",
    "layerwise_seq-sim",
    "layerwise_seq-predsim",
    "sigprop",
    "ff",
]
LAYERWISE_NAMES = [name for name in MODE_NAMES if name != "e2e"]
WITH_HEADS = {
    "layerwise-ce",
    "layerwise-ce-mlp",
    "layerwise_seq-ce",
    "layerwise-predsim",
    "layerwise-predsim-mlp",
    "layerwise_seq-predsim",
    "sigprop",
}

#: A small conv net with batch norm in every block, so that BN behaviour is tested even
#: when no registered architecture has batch norm.
BN_NET = "bn-test-net"
ARCH_CASES = [*ARCHS.names(), BN_NET]


def _bn_net(in_shape, num_classes) -> BlockNet:
    c, h, w = in_shape
    blocks = [
        nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(6 * (h // 2) * (w // 2), 16), nn.BatchNorm1d(16), nn.ReLU()),
    ]
    return BlockNet(blocks, nn.Linear(16, num_classes), ["conv1", "conv2", "fc"], in_shape, num_classes)


@functools.lru_cache(maxsize=None)
def input_shape(arch: str) -> tuple[int, int, int]:
    """The smallest of a few image shapes that the architecture accepts."""
    for shape in ((1, 12, 12), (3, 16, 16), (1, 28, 28), (3, 32, 32)):
        try:
            net = _build(arch, shape)
            net.layer_shapes()
            with torch.no_grad():
                net.eval()(torch.zeros(2, *shape))
            return shape
        except (RuntimeError, ValueError):
            continue
    raise AssertionError(f"arch {arch!r} accepts none of the test input shapes")


def _build(arch: str, shape) -> BlockNet:
    return _bn_net(shape, NUM_CLASSES) if arch == BN_NET else build(arch, shape, NUM_CLASSES)


def setup(arch: str, mode_name: str, seed: int = 0, **training):
    shape = input_shape(arch)
    torch.manual_seed(seed)
    model = _build(arch, shape)
    mode = make_mode(mode_name, model, {**TRAINING, **training})
    return model, mode


def batch(arch: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(BATCH, *input_shape(arch), generator=g)
    return x, torch.arange(BATCH) % NUM_CLASSES


def grad_norm(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_every_registered_family_is_tested():
    assert {ModeSpec.parse(name).family for name in MODE_NAMES} == set(MODES.names())
    assert {ModeSpec.parse(name).loss for name in MODE_NAMES if name.startswith("layerwise-")} == set(LOCAL_LOSSES)


# -- every architecture × every mode ------------------------------------------------------
@pytest.mark.parametrize("mode_name", MODE_NAMES)
@pytest.mark.parametrize("arch", ARCH_CASES)
def test_steps_reduce_loss_report_heads_and_resume_identically(arch, mode_name):
    """A few steps on a fixed batch (same data, same random views and negatives) reduce the
    loss; the trainer's evaluation calls work; a state_dict round trip (through weights_only
    loading) continues bit-identically."""
    extra = {"epochs_per_block": 1} if mode_name.startswith("layerwise_seq") else {}
    model, mode = setup(arch, mode_name, seed=0, **extra)
    x, y = batch(arch)

    model.train()
    history = []
    for _ in range(3):  # the same random draws every step (views, negatives): a fixed batch
        torch.manual_seed(1)
        mode.start_epoch(1)
        history.append(float(mode.train_step(x, y)))
    mode.end_epoch(1)
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < history[0], history

    model.eval()  # what the trainer does after an epoch
    with torch.no_grad():
        outputs = model.layer_outputs(mode.eval_input(x))
        heads = mode.head_logits(outputs)
    assert len(outputs) == len(model.layer_names)
    assert outputs[-1].shape == (BATCH, NUM_CLASSES)
    assert set(heads) == (set(range(len(model.blocks))) if mode_name in WITH_HEADS else set())
    for logits in heads.values():
        assert logits.shape == (BATCH, NUM_CLASSES) and torch.isfinite(logits).all()

    torch.manual_seed(2)
    model.train()
    mode.start_epoch(2)
    mode.train_step(x, y)
    mode.end_epoch(2)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "mode": mode.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed_model, resumed = setup(arch, mode_name, seed=1, **extra)
    resumed_model.load_state_dict(state["model"])
    resumed.load_state_dict(state["mode"])

    results = []
    for net, md in ((model, mode), (resumed_model, resumed)):
        torch.manual_seed(3)
        net.train()
        md.start_epoch(3)  # a new stage for layerwise_seq
        loss = md.train_step(x, y)
        md.end_epoch(3)
        net.eval()
        with torch.no_grad():
            outputs = net.layer_outputs(md.eval_input(x))
            heads = md.head_logits(outputs)
        results.append((loss, net.state_dict(), outputs, heads))
    (loss_a, sd_a, out_a, heads_a), (loss_b, sd_b, out_b, heads_b) = results
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(sd_a[key], sd_b[key]) for key in sd_a)
    assert all(torch.equal(a, b) for a, b in zip(out_a, out_b))
    assert heads_a.keys() == heads_b.keys() and all(torch.equal(heads_a[k], heads_b[k]) for k in heads_a)


# -- gradient isolation -----------------------------------------------------------------------
def _check_isolation(model: BlockNet, mode: Mode, x, y, expected_keys=None):
    losses_by_layer = mode.local_losses(x, y)
    if expected_keys is not None:
        assert set(losses_by_layer) == expected_keys
    num_blocks = len(model.blocks)
    heads = getattr(mode, "heads", None) or []
    embedder = getattr(mode, "embedder", None)
    for layer, loss in losses_by_layer.items():
        model.zero_grad(set_to_none=True)
        mode.parts.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for j, block in enumerate(model.blocks):
            assert (grad_norm(block) > 0) == (j == layer), f"loss of layer {layer}: block {j}"
        assert (grad_norm(model.classifier) > 0) == (layer == num_blocks), f"loss of layer {layer}: classifier"
        for j, head in enumerate(heads):
            assert (grad_norm(head) > 0) == (j == layer), f"loss of layer {layer}: head {j}"
            for part in ("classifier", "projection"):  # predsim: both read-outs learn from their own block's loss
                if hasattr(head, "projection"):
                    assert (grad_norm(getattr(head, part)) > 0) == (
                        j == layer
                    ), f"loss of layer {layer}: head {j} {part}"
        if embedder is not None:  # sigprop's signal embedder belongs to block 0
            assert (grad_norm(embedder) > 0) == (layer == 0)


@pytest.mark.parametrize("mode_name", [n for n in LAYERWISE_NAMES if not n.startswith("layerwise_seq")])
@pytest.mark.parametrize("arch", ARCH_CASES)
def test_local_loss_reaches_only_its_own_block(arch, mode_name):
    model, mode = setup(arch, mode_name)
    model.train()
    x, y = batch(arch)
    _check_isolation(model, mode, x, y, expected_keys=set(range(len(model.blocks) + 1)))


@pytest.mark.parametrize("loss", LOCAL_LOSSES)
@pytest.mark.parametrize("arch", ARCH_CASES)
def test_sequential_stage_loss_reaches_only_the_active_block(arch, loss):
    model, mode = setup(arch, f"layerwise_seq-{loss}", epochs_per_block=1)
    num_blocks = len(model.blocks)
    mode.training = {**mode.training, "epochs": num_blocks + 1}
    x, y = batch(arch)
    for epoch in range(1, num_blocks + 2):
        model.train()
        mode.start_epoch(epoch)
        stage = epoch - 1
        expected = ({stage} if stage < num_blocks else set()) | ({num_blocks} if stage >= num_blocks - 1 else set())
        _check_isolation(model, mode, x, y, expected_keys=expected)


@pytest.mark.parametrize("arch", ARCH_CASES)
def test_e2e_loss_reaches_every_block(arch):
    model, mode = setup(arch, "e2e")
    model.train()
    x, y = batch(arch)
    (loss,) = mode.local_losses(x, y).values()
    loss.backward()
    assert all(grad_norm(block) > 0 for block in model.blocks)
    assert grad_norm(model.classifier) > 0


# -- sequential layer-wise --------------------------------------------------------------------
def _block_entries(model: BlockNet, prefix: str, state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("arch", ARCH_CASES)
def test_sequential_frozen_blocks_do_not_change(arch):
    """Weights and BN buffers of frozen blocks stay fixed while later blocks train, even
    though the trainer calls model.train() every epoch."""
    model, mode = setup(arch, "layerwise_seq-ce", epochs_per_block=1)
    num_blocks = len(model.blocks)
    mode.training = {**mode.training, "epochs": num_blocks + 1}
    x, y = batch(arch)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    for epoch in range(1, num_blocks + 2):
        mode.start_epoch(epoch)
        model.train()  # after start_epoch: the harder order for the mode
        stage = epoch - 1
        assert mode.stage == stage
        before = {k: v.clone() for k, v in model.state_dict().items()}
        mode.train_step(x, y)
        after = model.state_dict()
        for j in range(num_blocks):
            old = _block_entries(model, f"blocks.{j}.", before)
            changed = any(not torch.equal(old[k], after[k]) for k in old)
            assert changed == (j == stage), f"epoch {epoch}: block {j} changed={changed}"
            if j < stage:
                block = model.blocks[j]
                assert not any(m.training for m in block.modules())
                assert not any(p.requires_grad for p in block.parameters())
        old = _block_entries(model, "classifier.", before)
        assert any(not torch.equal(old[k], after[k]) for k in old) == (stage >= num_blocks - 1)
        mode.end_epoch(epoch)
    if has_bn:  # BN buffers were part of the comparison above
        assert any("running_mean" in k for k in before)


@pytest.mark.parametrize(
    ("epochs", "per_block", "expected"),
    [
        (14, 3, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4]),
        (9, None, [0, 0, 1, 1, 2, 2, 3, 3, 4]),  # null: 9 // 4 = 2 per block, then the classifier alone
        (4, None, [0, 1, 2, 3]),
    ],
)
def test_sequential_stage_switches_at_global_epochs(epochs, per_block, expected):
    model, mode = setup("mlp", "layerwise_seq-ce", epochs=epochs, epochs_per_block=per_block)
    assert len(model.blocks) == 4
    x, y = batch("mlp")
    seen = []
    for epoch in range(1, epochs + 1):
        model.train()
        mode.start_epoch(epoch)
        seen.append(mode.stage)
        mode.train_step(x, y)
        mode.end_epoch(epoch)
    assert seen == expected


def test_sequential_schedule_restarts_per_stage():
    schedule = {"name": "multistep", "milestones": [1], "gamma": 0.5}
    model, mode = setup("mlp", "layerwise_seq-ce", epochs=8, epochs_per_block=2, schedule=schedule)
    lrs = []
    x, y = batch("mlp")
    for epoch in range(1, 9):
        mode.start_epoch(epoch)
        lrs.append(mode.optimizer.param_groups[0]["lr"])
        mode.train_step(x, y)
        mode.end_epoch(epoch)
    assert lrs == [1e-3, 5e-4] * 4


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"epochs": 10, "epochs_per_block": 3}, "allowed: 1..2"),
        ({"epochs": 3, "epochs_per_block": None}, "training.epochs = 3"),
        ({"epochs": 3, "epochs_per_block": 1}, "raise training.epochs to at least 4"),
        ({"epochs": 10, "epochs_per_block": 0}, "positive integer or null"),
        ({"epochs": 10, "epochs_per_block": 1.5}, "positive integer or null"),
    ],
)
def test_sequential_checks_epochs_per_block(training, message):
    with pytest.raises(ValueError, match="training.epochs_per_block") as err:
        check_training("layerwise_seq", {**TRAINING, **training}, num_blocks=4)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="training.epochs_per_block"):
        setup("mlp", "layerwise_seq-ce", **training)


def test_sequential_accepts_fitting_epochs_per_block():
    check_training("layerwise_seq-sim", {**TRAINING, "epochs": 8, "epochs_per_block": 2}, num_blocks=4)
    check_training("layerwise_seq", {**TRAINING, "epochs": 9, "epochs_per_block": None}, num_blocks=4)
    check_training("e2e", {**TRAINING, "epochs": 1, "epochs_per_block": 50}, num_blocks=4)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("layerwise-supcon", "supcon_temperature"),
        ("layerwise_seq-supcon", "supcon_base_temperature"),
        ("layerwise-supcon", "proj_dim"),
        ("ff", "ff_label_value"),
        ("ff", "ff_threshold"),
    ],
)
def test_mode_specific_keys_must_be_positive(name, key):
    """The schema owns the numeric ranges: a bad value stops the config before any job."""
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match=key):
        config.load(overrides={"modes": [name], "training": {key: -1.0}})


# -- spec parsing ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("e2e", "e2e"),
        ("layerwise", "layerwise-ce"),
        ("layerwise-ce-linear", "layerwise-ce"),
        ("layerwise-ce-mlp", "layerwise-ce-mlp"),
        ("layerwise-supcon-linear", "layerwise-supcon"),
        ("layerwise-supcon-mlp", "layerwise-supcon-mlp"),
        ("layerwise-sim", "layerwise-sim"),
        ("layerwise_seq", "layerwise_seq-ce"),
        ("layerwise_seq-sim", "layerwise_seq-sim"),
        ("sigprop", "sigprop"),
        ("ff", "ff"),
    ],
)
def test_spec_canonical_names(text, canonical):
    assert ModeSpec.parse(text).name == canonical


@pytest.mark.parametrize(
    ("text", "error", "allowed"),
    [
        ("nope", KeyError, MODES.names()),
        ("Layerwise CE", ValueError, MODES.names()),
        ("layerwise-mse", ValueError, LOCAL_LOSSES),
        ("layerwise_seq-ce-conv", ValueError, HEADS),
        ("layerwise-sim-mlp", ValueError, ["layerwise-sim"]),
        ("layerwise_seq-sim-linear", ValueError, ["layerwise_seq-sim"]),
        ("e2e-ce", ValueError, ["no local loss"]),
        ("sigprop-ce", ValueError, ["no local loss"]),
        ("ff-mlp", ValueError, ["no local loss"]),
    ],
)
def test_spec_errors_name_allowed_values(text, error, allowed):
    with pytest.raises(error) as err:
        ModeSpec.parse(text)
    assert all(word in str(err.value) for word in allowed), str(err.value)


# -- loss functions against independent references ---------------------------------------------
def _supcon_reference(features, labels, temperature, base_temperature):
    z = F.normalize(features.double(), dim=1)
    n, total = len(labels), 0.0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in others)
        log_probs = [float(z[i] @ z[p]) / temperature - math.log(denominator) for p in positives]
        total += -(temperature / base_temperature) * sum(log_probs) / len(positives)
    return total / n


def test_supcon_loss_matches_reference():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(12, 5, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2] * 2)  # two views of 6 samples
    value = losses.supcon_loss(features, labels, 0.1, 0.07)
    assert value.item() == pytest.approx(_supcon_reference(features, labels, 0.1, 0.07), rel=1e-5)
    # invariant to the length of each feature vector (features are L2-normalized)
    scaled = features * torch.rand(12, 1, generator=g).add(0.5)
    assert losses.supcon_loss(scaled, labels).item() == pytest.approx(value.item(), rel=1e-5)


def test_losses_stay_float32_under_autocast():
    g = torch.Generator().manual_seed(2)
    features, labels = torch.randn(12, 9, generator=g), torch.tensor([0, 1, 2] * 4)
    plain = (losses.supcon_loss(features, labels), losses.similarity_matching_loss(features, labels, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = (losses.supcon_loss(features, labels), losses.similarity_matching_loss(features, labels, 3))
    assert all(torch.equal(a, b) for a, b in zip(plain, mixed))


def test_similarity_matching_loss_matches_reference():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(6, 7, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    centred = features.double() - features.double().mean(1, keepdim=True)
    expected = 0.0
    for i in range(6):
        for j in range(6):
            cos = float(centred[i] @ centred[j] / (centred[i].norm() * centred[j].norm()))
            expected += (cos - float(labels[i] == labels[j])) ** 2
    expected /= 36
    assert losses.similarity_matching_loss(features, labels, 3).item() == pytest.approx(expected, rel=1e-5)


def test_similarity_matching_is_zero_for_matching_geometry():
    # centred features that are orthogonal across classes and equal within a class
    prototypes = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert losses.similarity_matching_loss(prototypes[labels] * 3, labels, 2).item() == pytest.approx(0.0, abs=1e-7)


def test_ff_loss_and_goodness_known_values():
    assert losses.goodness(torch.full((2, 3, 4), 2.0)).tolist() == [4.0, 4.0]
    at_threshold = torch.full((5,), 2.0)
    assert losses.ff_loss(at_threshold, at_threshold, 2.0).item() == pytest.approx(math.log(2))
    assert losses.ff_loss(torch.full((5,), 50.0), torch.zeros(5), 2.0).item() < 0.1


def test_pooled_features_match_head_width():
    z = torch.randn(2, 64, 16, 16)
    assert losses.pooled_features(z).shape[1] == AuxHead((64, 16, 16), 10).in_features <= 2048
    assert torch.equal(losses.pooled_features(torch.ones(2, 3, 4, 4)), torch.ones(2, 48))


def test_embed_label_and_rms_normalize():
    x = torch.randn(3, 2, 5, 5)
    code = torch.eye(4)[[1, 3, 0]]
    out = losses.embed_label(x, code)
    flat, original = out.reshape(3, 2, -1), x.reshape(3, 2, -1)
    assert torch.equal(flat[:, :, :4], code.unsqueeze(1).expand(3, 2, 4))
    assert torch.equal(flat[:, :, 4:], original[:, :, 4:])
    normed = losses.rms_normalize(x * torch.tensor([0.1, 1.0, 30.0]).view(3, 1, 1, 1))
    assert torch.allclose(normed.pow(2).flatten(1).mean(1), torch.ones(3), rtol=1e-3)


# -- forward-forward and signal propagation specifics -----------------------------------------
def test_ff_feeds_positive_negative_and_neutral_labels():
    model, mode = setup("mlp", "ff", ff_label_value=2.0)
    x, y = batch("mlp")
    seen = []
    handle = model.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    mode.local_losses(x, y)
    handle.remove()
    slots = seen[0].reshape(3 * BATCH, x.shape[1], -1)[:, 0, :NUM_CLASSES]
    positive, negative, neutral = slots.split(BATCH)
    assert torch.equal(positive, 2.0 * F.one_hot(y, NUM_CLASSES).float())
    assert torch.equal(negative.sum(1), torch.full((BATCH,), 2.0)) and (negative.argmax(1) != y).all()
    assert torch.allclose(neutral, torch.full_like(neutral, 2.0 / NUM_CLASSES))
    assert torch.equal(mode.eval_input(x), seen[0][2 * BATCH :])


def test_ff_default_label_value_is_the_image_maximum():
    model, mode = setup("mlp", "ff")
    x, _ = batch("mlp")
    slots = mode.eval_input(x).reshape(BATCH, x.shape[1], -1)[:, :, :NUM_CLASSES]
    expected = x.flatten(1).amax(1).view(-1, 1, 1) / NUM_CLASSES
    assert torch.allclose(slots, expected.expand_as(slots))


def test_ff_normalizes_inputs_between_blocks_once():
    model, _ = setup("lenet5", "ff")
    make_mode("ff", model, TRAINING)  # a second mode on the same model adds no second hook
    assert all(len(m._forward_pre_hooks) == 1 for m in [*model.blocks[1:], model.classifier])
    assert len(model.blocks[0]._forward_pre_hooks) == 0
    model.eval()
    h = torch.relu(torch.randn(3, *model.layer_shapes()[0]))
    with torch.no_grad():
        assert torch.allclose(model.blocks[1](h), model.blocks[1](h * 10.0), atol=1e-5)
    plain = build("lenet5", input_shape("lenet5"), NUM_CLASSES).eval()
    with torch.no_grad():
        assert not torch.allclose(plain.blocks[1](h), plain.blocks[1](h * 10.0))


def test_ff_rejects_images_too_small_for_the_label():
    model = build("mlp", (1, 3, 3), 10)
    with pytest.raises(ValueError, match="first 10 pixels"):
        make_mode("ff", model, TRAINING)


def test_sigprop_head_logits_use_propagated_signals():
    model, mode = setup("lenet5", "sigprop")
    x, y = batch("lenet5")
    model.eval()
    with torch.no_grad():
        outputs = model.layer_outputs(x)
        heads = mode.head_logits(outputs)
        t = mode.signals()
        for k, block in enumerate(model.blocks):
            t = block(t)
            fx, ft = losses.pooled_features(outputs[k]), losses.pooled_features(t)
            for i in range(BATCH):
                for c in range(NUM_CLASSES):
                    expected = float(fx[i] @ ft[c]) / math.sqrt(fx.shape[1])
                    assert heads[k][i, c].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
