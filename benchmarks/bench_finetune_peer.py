"""Fine-tune the peer (pixeltable-yolox 0.4.3, official YOLOX numerics) on the demo's tree-crown tiles, in a
plain CPU loop, and evaluate it with our code: the peer half of ``bench_demo_paired.py``.

What is the same as ``python -m yoloxdet.demo --cpu-minutes M --seed S`` (ours):
- the data: the same training tiles (our dataset written as COCO JSON for the peer's ``CocoDataset``);
- the start: the same imported COCO YOLOX-Nano with the same BN calibration (our ``import-weights
  --calibrate``, same images, same seed), loaded into the peer's model with the class predictors
  re-initialised by the same code as ours (the peer's state-dict keys are the official ones, as ours);
- the budget: CPU seconds of the training process tree (our ``engine/budget_clock.py``), same seed;
- the evaluation: the peer's final EMA weights are copied into our model (same architecture, same keys) and
  measured by ``yoloxdet val`` on the same held-out sets. Copying the weights rather than running the peer's
  own inference through our evaluator is what makes the comparison exact: pre-processing, decoding and NMS
  are then the same code for both, and only training differs. The script checks that the peer's and our
  model give the same outputs with these weights before it evaluates.

What is the peer's: its model, loss (SimOTA, official), dataset, ``MosaicDetection`` and ``TrainTransform``,
SGD parameter groups, ``yoloxwarmcos`` schedule, EMA and multiscale sizes, all with the official YOLOX-Nano
recipe (``YoloxNano``: 416 input, mosaic 0.5, no MixUp, mosaic scale 0.5-1.5, sizes 320-640, 5 warm-up
epochs, 300 epochs; lr 0.01/64 per image) at our batch size. Its trainer needs CUDA, so the loop below
follows ``yolox.core.Trainer.train_one_iter`` on the CPU; the budget ends it.

    python benchmarks/bench_finetune_peer.py --seed 0 --cpu-minutes 10 --out demo_peer_s0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from yoloxdet.data.datasets import build_dataset
from yoloxdet.data.spec import load_dataset_spec
from yoloxdet.demo import treecrowns
from yoloxdet.demo.pipeline import (
    DemoPaths,
    evaluate_sets,
    resolve_initial_weights,
    run_command,
    write_results,
)
from yoloxdet.engine.budget_clock import budget_clock
from yoloxdet.io import write_json_atomic
from yoloxdet.weights import load_model, save_checkpoint

BATCH = 8  # the demo recipe's batch (recipe.yaml)
CALIBRATION_IMAGES = 64  # the demo's default --calibration-images
PEER_WORKERS = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-minutes", type=float, required=True, help="training budget in CPU minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (same layout as the demo's)")
    parser.add_argument("--weights", default=None, help="initial weights; default as the demo")
    return parser.parse_args(argv)


def peer_config(coco_json: Path, data_dir: Path, seed: int):
    """The peer's official YOLOX-Nano recipe, one class, our training tiles."""
    from yolox.config import YoloxConfig

    cfg = YoloxConfig.get_named_config("yolox_nano")
    cfg.num_classes = 1
    cfg.data_dir, cfg.train_ann, cfg.train_img_dir = str(data_dir), str(coco_json), "JPEGImages"
    cfg.seed, cfg.data_num_workers = seed, PEER_WORKERS
    return cfg


def start_weights(init: Path, seed: int) -> tuple[torch.nn.Module, object]:
    """Our model from the calibrated import, class predictors re-initialised for one class (as our train)."""
    torch.manual_seed(seed)
    return load_model(init, model_name="yolox-nano", num_classes=1, class_names=["Tree"])


def train_peer(cfg, ours: torch.nn.Module, budget_s: float, seed: int) -> tuple[torch.nn.Module, int]:
    """The official training iteration on the CPU until ``budget_s`` CPU seconds; returns the EMA model and
    the number of optimizer steps."""
    from yolox.utils import ModelEMA

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = cfg.get_model()
    model.load_state_dict(ours.state_dict())  # identical keys: the official layout
    model.train()
    optimizer = cfg.get_optimizer(BATCH)
    with contextlib.redirect_stdout(io.StringIO()):
        loader = cfg.get_data_loader(BATCH, is_distributed=False, no_aug=False)
    iters_per_epoch = len(loader)
    scheduler = cfg.get_lr_scheduler(cfg.basic_lr_per_img * BATCH, iters_per_epoch)
    ema = ModelEMA(model, 0.9998)
    input_size = cfg.input_size
    clock = budget_clock("cpu")
    start, step, batches = clock(), 0, iter(loader)
    while clock() - start < budget_s:
        inps, targets, *_ = next(batches)
        inps, targets = inps.float(), targets.float()
        targets.requires_grad = False
        inps, targets = cfg.preprocess(inps, targets, input_size)
        outputs = model(inps, targets)
        optimizer.zero_grad()
        outputs["total_loss"].backward()
        optimizer.step()
        ema.update(model)
        lr = scheduler.update_lr(step + 1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step += 1
        if step % 20 == 0:
            print(
                f"peer step {step} (epoch {step // iters_per_epoch}) loss {float(outputs['total_loss']):.3f} "
                f"lr {lr:.5f} size {input_size} cpu {clock() - start:.0f}/{budget_s:.0f} s",
                flush=True,
            )
        if step % 10 == 0:  # official: a new multiscale size every 10 iterations (random_resize)
            units = random.randint(*cfg.random_size)
            input_size = (32 * units, 32 * units)
    return ema.ema.eval(), step


def check_same_outputs(peer: torch.nn.Module, ours: torch.nn.Module) -> float:
    """Max abs difference of the decoded outputs of the peer's and our model on one random batch."""
    images = torch.rand(2, 3, 416, 416, generator=torch.Generator().manual_seed(0)) * 255
    from yoloxdet.ops.decode import decode

    with torch.no_grad():
        diff = (peer.eval()(images) - decode(ours.eval()(images))).abs().max()
    return float(diff)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = DemoPaths(Path(args.out))
    started = time.monotonic()
    wheel = treecrowns.fetch_wheel(paths.cache)
    dataset_yaml = treecrowns.prepare(wheel, paths.data)
    coco_json = paths.data.parent / "treecrowns_train_coco.json"
    write_json_atomic(coco_json, build_dataset(load_dataset_spec(dataset_yaml), "train").to_coco())

    initial = resolve_initial_weights(args.weights, paths.cache)
    if initial is None:
        raise SystemExit("bench_finetune_peer: no YOLOX-Nano weights to start from")
    run_command(
        "import weights",
        [
            *("import-weights", str(initial), "--model", "yolox-nano", "-o", str(paths.init)),
            *("--calibrate", str(paths.train_images), "--calibrate-images", str(CALIBRATION_IMAGES)),
            *("--seed", str(args.seed)),
        ],
    )
    ours, info = start_weights(paths.init, args.seed)
    cfg = peer_config(coco_json, paths.data, args.seed)
    peer_ema, steps = train_peer(cfg, ours, args.cpu_minutes * 60.0, args.seed)

    ours.load_state_dict(peer_ema.state_dict())
    diff = check_same_outputs(peer_ema, ours)
    if diff > 1e-3:
        raise SystemExit(f"bench_finetune_peer: our model with the peer's weights differs by {diff:.3g}")
    final = paths.run_dir / "peer_final.pt"
    final.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(final, ours, info, {"source": "pixeltable-yolox fine-tune", "steps": steps})
    sites = evaluate_sets(final, treecrowns.write_eval_yamls(paths.data), paths.root / "eval")
    write_results(
        paths.results,
        config="peer",
        seed=args.seed,
        steps=steps,
        budget={"minutes": args.cpu_minutes, "clock": "cpu"},
        sites=sites,
        checkpoint=final,
    )
    print(json.dumps(sites))
    print(f"peer: {steps} steps, {(time.monotonic() - started) / 60:.1f} min end to end -> {paths.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
