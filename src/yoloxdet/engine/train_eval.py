"""Validation during training: COCO box AP of the EMA model on the val split, sharded across processes.

Each process reads and predicts every ``world_size``-th validation batch; the COCO results are gathered,
rank 0 runs COCOeval and broadcasts the metrics, so every process takes the same best-checkpoint and
early-stopping decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from yoloxdet.config import EvalConfig
from yoloxdet.data.datasets import DetectionDataset
from yoloxdet.data.loader import build_val_loader
from yoloxdet.engine import distributed as dist_utils
from yoloxdet.engine.evaluator import category_ids, evaluate_coco, to_coco_results
from yoloxdet.ops.decode import decode
from yoloxdet.ops.nms import postprocess


@torch.no_grad()
def predict_val_results(
    model: nn.Module,
    dataset: DetectionDataset,
    *,
    input_size: tuple[int, int],
    config: EvalConfig,
    workers: int | None = 0,
    rank: int = 0,
    world_size: int = 1,
) -> list[dict[str, Any]]:
    """COCO result dicts (original pixels, not clipped) for this process's share of ``dataset``."""
    device = next(model.parameters()).device
    cat_ids = category_ids(dataset.to_coco())
    results: list[dict[str, Any]] = []
    batches = build_val_loader(
        dataset,
        batch_size=config.batch,
        input_size=input_size,
        workers=workers,
        rank=rank,
        world_size=world_size,
    )
    for images, metas in batches:
        decoded = decode(model(images.to(device)))
        kept = postprocess(
            decoded.float(), config.conf_threshold, config.nms_iou_threshold, config.class_agnostic
        )
        for det, meta in zip(kept, metas):
            results.extend(
                to_coco_results(
                    meta["image_id"],
                    det.boxes_xyxy.cpu().numpy() / meta["ratio"],
                    det.scores.cpu().numpy(),
                    det.class_ids.cpu().numpy(),
                    cat_ids,
                )
            )
    return results


def coco_evaluate_fn(
    dataset: DetectionDataset, *, input_size: tuple[int, int], config: EvalConfig, workers: int | None = 0
) -> Callable[[nn.Module], dict[str, float]]:
    """The trainer's ``evaluate`` hook: ``eval_model -> {"AP", "AP50", "AP75"}`` over the whole val split."""
    gt = dataset.to_coco()

    def evaluate(model: nn.Module) -> dict[str, float]:
        info = dist_utils.current()
        mine = predict_val_results(
            model,
            dataset,
            input_size=input_size,
            config=config,
            workers=workers,
            rank=info.rank,
            world_size=info.world_size,
        )
        results = dist_utils.gather_lists(mine)
        metrics = None
        if info.is_main:
            coco = evaluate_coco(gt, results)
            metrics = {"AP": coco.ap, "AP50": coco.ap50, "AP75": coco.ap75}
        return dist_utils.broadcast_object(metrics)

    return evaluate
