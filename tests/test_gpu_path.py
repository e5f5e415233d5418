"""The GPU path, checked on the CPU wherever the logic allows (issue 19); GPU-only checks are in
``benchmarks/gpu_check.py``.

AMP mode validation, the RNG-state layout of checkpoints, SyncBatchNorm conversion before freezing,
device-agnostic TorchScript exports, foreach EMA against the plain formula, and (with a real two-process
gloo group) EMA BN statistics averaged across ranks, per-rank RNG states restored on resume, and a stop
requested on one rank.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _synthetic_train import StopAfter, SyntheticLoader, make_trainer
from torch import nn

from yoloxdet.config import CHOICES, ConfigError, TrainConfig, load_config
from yoloxdet.engine import checkpoint as ckpt
from yoloxdet.engine.ema import ModelEMA, ema_decay
from yoloxdet.engine.session import sync_bn_then_freeze
from yoloxdet.engine.trainer import amp_dtype
from yoloxdet.export import ExportMetadata, export_torchscript
from yoloxdet.inference.api import Detector, TorchBackend
from yoloxdet.inference.backends import TorchScriptBackend
from yoloxdet.models.zoo import create_model
from yoloxdet.weights import CheckpointInfo

WORLD = 2


# ---------------------------------------------------------------- bug 1: AMP modes
AMP_MODES = CHOICES["train.amp"]


def test_unknown_amp_mode_is_rejected_when_the_config_is_built() -> None:
    for bad in ("none", "on", "fp8"):
        with pytest.raises(ConfigError, match=r"train\.amp: .* is not one of auto, fp16, bf16, off, fp32"):
            load_config(None, [f"train.amp={bad}"])
    assert {load_config(None, [f"train.amp={m}"]).train.amp for m in AMP_MODES} == set(AMP_MODES)
    assert load_config(None, ["amp=off"]).train.amp == "off"  # YAML alone would read a bare `off` as false


def test_amp_dtype_per_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [amp_dtype(m, cpu) for m in AMP_MODES] == [None] * len(AMP_MODES)  # no autocast on the CPU
    assert amp_dtype("off", cuda) is None and amp_dtype("fp32", cuda) is None
    assert amp_dtype("fp16", cuda) == torch.float16 and amp_dtype("bf16", cuda) == torch.bfloat16
    asked = []

    def native_bf16(including_emulation: bool = True) -> bool:  # the GPU's answer, which a CPU machine lacks
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", native_bf16)
    native = False  # a pre-sm80 card: emulated bf16 would be slow, so auto takes fp16
    assert amp_dtype("auto", cuda) == torch.float16
    native = True
    assert amp_dtype("auto", cuda) == torch.bfloat16
    assert asked == [False, False]  # emulation never counts
    with pytest.raises(ConfigError, match=r"train\.amp"):
        amp_dtype("none", cuda)


# ---------------------------------------------------------------- bug 2: RNG state layout
def test_rng_state_restores_from_older_and_per_rank_layouts() -> None:
    state = ckpt.rng_state()
    assert set(state) == {"torch"}  # no CUDA in use: nothing else to save
    expected = torch.rand(3)
    ckpt.restore_rng_state(state)
    assert torch.equal(torch.rand(3), expected)
    # a checkpoint from a machine with two GPUs (older layout: one state per GPU) restores without CUDA
    ckpt.restore_rng_state({**state, "cuda": [torch.zeros(16, dtype=torch.uint8)] * 2})
    assert torch.equal(torch.rand(3), expected)
    other = torch.Generator().manual_seed(5).get_state()
    layout = {"torch": other, "ranks": [{"torch": other}, {"torch": state["torch"]}]}
    ckpt.restore_rng_state(layout, rank=1)  # each rank its own entry
    assert torch.equal(torch.rand(3), expected)
    ckpt.restore_rng_state(layout, rank=5)  # more ranks than saved: the top-level (rank 0) state
    assert torch.equal(torch.get_rng_state(), other)


# ---------------------------------------------------------------- bug 3: SyncBN then freeze
def _bn_stats(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {
        name: buf.clone()
        for name, buf in model.named_buffers()
        if name.startswith(prefix) and "running" in name
    }


def test_frozen_bn_stays_frozen_after_sync_bn_conversion() -> None:
    torch.manual_seed(0)
    config = TrainConfig(sync_bn=True, freeze=("backbone.backbone",))
    model = sync_bn_then_freeze(create_model("yolox-nano", num_classes=2), config, distributed=True).train()
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    frozen, free = _bn_stats(model, "backbone.backbone"), _bn_stats(model, "head")
    model(torch.rand(2, 3, 64, 64) * 255)  # no process group: SyncBatchNorm normalises like BatchNorm
    for name, before in frozen.items():
        assert torch.equal(before, dict(model.named_buffers())[name]), name
    assert any(not torch.equal(v, dict(model.named_buffers())[k]) for k, v in free.items())
    # the order matters: converting after freezing drops the hooks (the bug this guards against)
    late = create_model("yolox-nano", num_classes=2)
    sync_bn_then_freeze(late, TrainConfig(freeze=("backbone.backbone",)), distributed=False)
    late = nn.SyncBatchNorm.convert_sync_batchnorm(late).train()
    before = _bn_stats(late, "backbone.backbone")
    late(torch.rand(2, 3, 64, 64) * 255)
    assert any(not torch.equal(v, dict(late.named_buffers())[k]) for k, v in before.items())


# ---------------------------------------------------------------- bug 4: device-agnostic TorchScript
@pytest.mark.parametrize("layout", ["decoded", "nms"])
def test_torchscript_graph_has_no_device_constants(tmp_path: Path, layout: str) -> None:
    model = create_model("yolox-nano", num_classes=2).eval()
    meta = ExportMetadata(
        "yolox-nano", ("a", "b"), (64, 64), output_layout=layout, conf_threshold=0.01, nms_iou_threshold=0.5
    )
    path = export_torchscript(model, tmp_path / "m.torchscript", meta)
    graph = str(torch.jit.load(str(path)).inlined_graph)
    constants = [line.strip() for line in graph.splitlines() if ": Device = prim::Constant" in line]
    assert constants == []
    backend = TorchScriptBackend(path, device="cpu")
    assert next(backend.module.parameters()).device == torch.device("cpu")
    images = torch.rand(3, 3, 96, 64) * 255  # another batch and size than traced
    with torch.inference_mode():
        expected = TorchBackend(model)(images) if layout == "decoded" else None
    out = backend(images)
    if expected is not None:
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- EMA with foreach
def test_foreach_ema_matches_the_plain_formula() -> None:
    torch.manual_seed(0)
    model = create_model("yolox-nano", num_classes=2)
    ema = ModelEMA(model, ramp=5.0)
    reference = {k: v.clone() for k, v in ema.module.state_dict().items()}
    for update in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            for buf in model.buffers():
                if buf.dtype.is_floating_point:
                    buf.add_(torch.rand_like(buf))
        ema.update(model)
        d = ema_decay(update, ema.decay, 5.0)
        current = model.state_dict()
        for key, value in reference.items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_((1.0 - d) * current[key])
    for key, value in ema.module.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=1e-6, atol=1e-7, msg=key)
    assert not torch.equal(
        ema.module.state_dict()["head.stems.0.bn.running_mean"],
        create_model("yolox-nano", num_classes=2).state_dict()["head.stems.0.bn.running_mean"],
    )


# ---------------------------------------------------------------- bug 6: deterministic
def test_deterministic_option_switches_algorithms() -> None:
    previous = torch.are_deterministic_algorithms_enabled()
    try:
        make_trainer(SyntheticLoader(), epochs=1, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.deterministic = False


# ---------------------------------------------------------------- inference options
def test_detector_pads_short_batches_and_rejects_cpu_half() -> None:
    model = create_model("yolox-nano", num_classes=2).eval()
    images = torch.rand(3, 3, 64, 64) * 255
    padded = TorchBackend(model, pad_batch=5)(images)
    assert padded.shape[0] == 3
    torch.testing.assert_close(padded, TorchBackend(model)(images), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Detector.from_checkpoint("yolox-nano", device="cpu", dtype=torch.float16)
    info = CheckpointInfo("yolox-nano", 2, ("a", "b"), (64, 64))
    assert Detector(model, info).backend.device == torch.device("cpu")


# ---------------------------------------------------------------- bugs 5 and 2 with a real process group
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RecordEvalModel:
    """The trainer's evaluate hook: keeps the BN running means of the model it is handed."""

    def __init__(self) -> None:
        self.means: list[torch.Tensor] = []

    def __call__(self, model: nn.Module) -> dict[str, float]:
        self.means.append(
            torch.cat([m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
        )
        return {"AP": 0.0}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        record = _RecordEvalModel()
        run_dir = Path(out)
        trainer = make_trainer(
            SyntheticLoader(num_batches=2, rank=rank, world_size=WORLD),
            epochs=1,
            evaluate=record,
            run_dir=run_dir,
            ema_ramp=1.0,
        )
        torch.manual_seed(100 + rank)  # distinct RNG streams per rank, as dropout or sampling would leave
        trainer.fit()  # ranks see different images, so their BN statistics (and EMA copies) differ
        after_fit = torch.get_rng_state()
        torch.save({"ema_means": record.means[0], "rng": after_fit}, run_dir / f"rank{rank}.pt")
        dist.barrier()
        torch.manual_seed(999)
        resumed = make_trainer(SyntheticLoader(num_batches=2, rank=rank, world_size=WORLD), epochs=1)
        resumed.resume(ckpt.load_training_checkpoint(run_dir / "last.pt"))
        restored = torch.get_rng_state()
        # a stop requested on rank 0 alone (a signal, a callback) stops both ranks at one step, without a hang
        stopping = make_trainer(
            SyntheticLoader(num_batches=3, rank=rank, world_size=WORLD),
            epochs=2,
            callbacks=[StopAfter(1)] if rank == 0 else [],
        )
        stopping.fit()
        torch.save(
            {"restored": restored, "stopped_at": stopping.state.iteration}, run_dir / f"resumed{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ema_bn_statistics_and_rng_states_per_rank(tmp_path: Path) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    torch.testing.assert_close(ranks[0]["ema_means"], ranks[1]["ema_means"], rtol=0, atol=0)  # averaged
    saved = torch.load(tmp_path / "last.pt", weights_only=True)["rng"]
    assert len(saved["ranks"]) == WORLD
    assert not torch.equal(saved["ranks"][0]["torch"], saved["ranks"][1]["torch"])
    for r in range(WORLD):
        resumed = torch.load(tmp_path / f"resumed{r}.pt", weights_only=True)
        restored = resumed["restored"]
        assert resumed["stopped_at"] == 1
        assert torch.equal(restored, saved["ranks"][r]["torch"])
        assert torch.equal(restored, ranks[r]["rng"])  # each rank continues its own stream
