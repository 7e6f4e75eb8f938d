"""infoplane.packing: GPU detection, per-job GPU memory estimates, the local profile's cap, SLURM groups."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
import yte

from infoplane import data, models, packing

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SMI = ["0, 143771", "1, 81559", "2, 24576"]


def test_detect_gpus_reads_nvidia_smi_and_honours_cuda_visible_devices():
    assert packing.detect_gpus({}, lambda: SMI) == [143771, 81559, 24576]
    assert packing.detect_gpus({"CUDA_VISIBLE_DEVICES": "2,0"}, lambda: SMI) == [24576, 143771]
    assert packing.detect_gpus({"CUDA_VISIBLE_DEVICES": ""}, lambda: SMI) == []
    assert packing.detect_gpus({}, lambda: []) == []  # no nvidia-smi: no GPU
    assert packing.detect_gpus({}, lambda: ["No devices were found"]) == []


def test_detect_gpus_environment_overrides():
    assert packing.detect_gpus({"INFOPLANE_GPUS": "2", "INFOPLANE_GPU_MEM_MB": "8192"}, lambda: SMI) == [8192, 8192]
    assert packing.detect_gpus({"INFOPLANE_GPUS": "0"}, lambda: SMI) == []
    assert packing.detect_gpus({"INFOPLANE_GPU_MEM_MB": "1000"}, lambda: SMI[:2]) == [1000, 1000]
    with pytest.raises(ValueError, match="INFOPLANE_GPU_MEM_MB"):
        packing.detect_gpus({"INFOPLANE_GPUS": "1"}, lambda: SMI)
    with pytest.raises(ValueError, match="not a whole number"):
        packing.detect_gpus({"INFOPLANE_GPUS": "one"}, lambda: SMI)


def test_machine_cap_is_the_usable_memory_of_the_first_gpu():
    assert packing.machine_gpu_mem_mb([]) == 0
    assert packing.machine_gpu_mem_mb([24576, 143771]) == int(24576 * packing.USABLE_FRACTION)


def test_network_profile_counts_what_the_model_has():
    """Parameters and layer sizes against the model itself; activations against a hand count for LeNet5."""
    for dataset, arch in [("mnist5k", "lenet5"), ("cifar10", "resnet18"), ("mnist", "mlp")]:
        meta = data.DATASETS.meta(dataset)
        net = models.build(arch, meta["in_shape"], meta["num_classes"])
        prof = packing.network_profile(dataset, arch)
        assert prof["params"] == sum(p.numel() for p in net.parameters())
        layers = [math.prod(s) for s in net.layer_shapes()]
        assert prof["largest_layer"] == max(layers) and prof["layer_values"] == sum(layers)
        assert prof["image_values"] == math.prod(meta["in_shape"])
        # every leaf output is kept once at least: no fewer values than the layer outputs
        assert prof["activations"] >= sum(layers)
    # a training forward pass keeps at least these values per image for backward
    lenet = packing.network_profile("mnist5k", "lenet5")
    assert packing.network_profile("cifar10", "resnet18")["activations"] > 50 * lenet["activations"]


def test_train_estimate_bounds_what_a_cpu_training_step_allocates():
    """The estimate less the CUDA context covers the bytes of weights, grads, Adam moments and the
    tensors autograd saves for one step (counted with saved-tensor hooks, float32 on the CPU)."""
    for dataset, arch in [("mnist5k", "lenet5"), ("cifar10", "vgg11")]:
        meta = data.DATASETS.meta(dataset)
        net = models.build(arch, meta["in_shape"], meta["num_classes"])
        batch = 16
        config = {**CONFIG, "training": {**CONFIG["training"], "batch_size": batch}}
        saved = []

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = net(torch.randn(batch, *meta["in_shape"])).logsumexp(1).mean()
        loss.backward()
        params = sum(p.numel() for p in net.parameters()) * 4
        needed = sum(saved) + params * 4  # weights, grads, two moments
        estimate = packing.job_gpu_mem_mb("train", config, dataset, arch) - packing.CONTEXT_MB
        assert needed / 2**20 < estimate


def test_estimates_grow_with_batch_network_and_eval_size():
    small = packing.job_gpu_mem_mb("train", CONFIG, "mnist5k", "lenet5")
    big_batch = {**CONFIG, "training": {**CONFIG["training"], "batch_size": 1024}}
    assert packing.job_gpu_mem_mb("train", big_batch, "mnist5k", "lenet5") > small
    assert packing.job_gpu_mem_mb("train", CONFIG, "cifar10", "resnet18") > 3 * small
    assert packing.job_gpu_mem_mb("train", CONFIG, "mnist5k", "lenet5", "layerwise-ce") >= small
    more_eval = {**CONFIG, "snapshots": {**CONFIG["snapshots"], "eval_size": 10000}}
    for stage in ("dependence", "probe"):
        assert packing.job_gpu_mem_mb(stage, more_eval, "mnist5k", "lenet5") > packing.job_gpu_mem_mb(
            stage, CONFIG, "mnist5k", "lenet5"
        )
    with pytest.raises(ValueError, match="unknown stage"):
        packing.job_gpu_mem_mb("tables", CONFIG, "mnist5k", "lenet5")


def test_packing_on_an_h200_and_on_a_small_gpu():
    """What the profile's cap allows: the default sweep's jobs fit 16 at once on an H200 (the cores
    are the limit), while on a 6 GiB GPU two ResNet18 trains never run together."""
    h200 = packing.machine_gpu_mem_mb([143771])
    per_job = [packing.job_gpu_mem_mb(s, CONFIG, "mnist5k", "lenet5") for s in ("train", "dependence", "probe")]
    assert 16 * max(per_job) <= h200
    small = packing.machine_gpu_mem_mb([6144])
    paper = yaml.safe_load((REPO / "experiments/resnet18_cifar10.yaml").read_text())
    cifar = {**CONFIG, "training": {**CONFIG["training"], "batch_size": paper["training"]["batch_size"]},
             "snapshots": {**CONFIG["snapshots"], "eval_size": paper["snapshots"]["eval_size"]}}
    resnet = packing.job_gpu_mem_mb("train", cifar, "cifar10", "resnet18")
    assert resnet <= small < 2 * resnet


def test_gpu_mem_resource_is_zero_off_cuda():
    wc = SimpleNamespace(dataset="mnist5k", arch="lenet5", mode="e2e", seed="0")
    assert packing.gpu_mem_mb("train", CONFIG, 0)(wc) == 0
    assert packing.gpu_mem_mb("train", CONFIG, 1)(wc) == packing.job_gpu_mem_mb("train", CONFIG, "mnist5k", "lenet5")


def test_slurm_groups_pack_small_runs_whole_and_keep_large_trains_alone():
    def group(stage, arch, dataset="mnist5k"):
        return packing.slurm_group(stage)(SimpleNamespace(dataset=dataset, arch=arch, mode="e2e", seed="0"))

    for arch in ("lenet5", "mlp", "mlp6"):
        assert {group(s, arch) for s in ("train", "dependence", "probe")} == {packing.SMALL_RUNS_GROUP}
    for arch in ("resnet18", "vgg11"):
        assert group("train", arch, "cifar10") is None
        assert group("dependence", arch, "cifar10") == group("probe", arch, "cifar10") == packing.MEASURE_GROUP


def _profile(environ: dict, monkeypatch) -> dict:
    for name in ("INFOPLANE_GPUS", "INFOPLANE_GPU_MEM_MB", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    text = (REPO / "workflow/profiles/default/config.yaml").read_text()
    return yte.process_yaml(text, require_use_yte=True)


def test_local_profile_caps_gpu_memory_only_where_there_is_a_gpu(monkeypatch):
    profile = _profile({"INFOPLANE_GPUS": "1", "INFOPLANE_GPU_MEM_MB": "143771"}, monkeypatch)
    assert profile["resources"] == {"gpu_mem_mb": int(143771 * packing.USABLE_FRACTION)}
    assert "resources" not in _profile({"INFOPLANE_GPUS": "0"}, monkeypatch)
