"""OTA: label assignment as entropic optimal transport (Ge et al., CVPR 2021), adapted to YOLOX heads.

Reference §9.1. Every real GT is a supplier of ``k_g`` positive labels, one background supplier holds the rest
(``A - Σ k``), and every anchor point demands exactly one label. The plan minimising ``Σ cost·π`` with an
entropy term is found by Sinkhorn–Knopp in the log domain, and each anchor goes to the supplier that sends it
the most after every supplier's row is rescaled by its maximum (the official OTA post-processing).

Choices for YOLOX's heads (the official OTA code is FCOS with focal loss):

- **Classification cost**: the SimOTA form, BCE of ``sqrt(sigmoid(cls) * sigmoid(obj))`` against the one-hot
  class, summed over classes, logs clamped at -100 as ``F.binary_cross_entropy``. YOLOX trains the joint
  obj·cls score, so the cost ranks predictions by what the loss actually optimises, and OTA vs SimOTA then
  differ only in the matching. The background cost is the same BCE against all-zero targets.
- **IoU weight**: ``iou_weight = 3.0`` as SimOTA (OTA's FCOS config uses 1.5); the regression cost is
  ``-log(IoU + 1e-8)``.
- **Candidates**: anchor centre (``(cell + 0.5) * stride``) strictly inside the GT box AND within
  ``center_radius = 2.5`` strides of its centre; elsewhere the cost gets ``+1e6``. OTA clips the centre square
  to the box, which is the same AND; OTA's 0.01-pixel in-box margin is 0 here, as YOLOX's in-box test.
- **Dynamic k**: ``clamp(int(Σ top-q IoU over candidates), 1)`` with ``q = 20``.
- **Sinkhorn**: ``eps = 0.1``, 50 iterations. Padded GT rows have zero supply, i.e. ``log`` supply ``-inf``;
  their scaling stays ``-inf`` and never turns into NaN because rows are scaled separately from columns.

A GT's positives are not exactly ``k``: after the rescaling it keeps every anchor where it sends nearly as
much as to its best one, so near-tied candidates (typical at initialisation, where costs barely differ) all
become positives. This is the official OTA post-processing, kept as is.

All tensors are batched over padded ``[B, G(+1), A]``; there is no per-image loop and no host synchronisation.
The time goes into ``2 · iterations`` log-sum-exp passes over all ``A`` anchors. Solving only over candidate
columns would be several times faster on CPU, but it reaches the same plan only at convergence (the
background's iterates differ), so the 50-iteration result would change; it is not done.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops.boxes import pairwise_iou_cxcywh
from ..ops.decode import decode_boxes
from ..structures import Assignment, HeadOutputs, Targets
from .simota import BCE_LOG_CLAMP, IOU_COST_EPS, SimOTAVariant, class_cost, geometric_prior

_OTA_REGION = 2.5  # OTA's centre radius in strides; candidates are in-box AND in-centre, as the 2021 SimOTA


def background_cost(outputs: HeadOutputs) -> Tensor:
    """[B, A] OTA's background cost in SimOTA's form: ``Σ_c BCE(sqrt(σ(cls)·σ(obj)), 0)``, float32."""
    prob = (outputs.cls_logits.float().sigmoid() * outputs.obj_logits.float().sigmoid()[..., None]).sqrt()
    return torch.log1p(-prob).clamp_(min=-BCE_LOG_CLAMP).neg_().sum(dim=-1)  # as class_cost's BCE(p, 0) terms


def dynamic_k(ious: Tensor, mask: Tensor, top_q: int) -> Tensor:
    """[B, G] positives per GT: ``clamp(int(Σ top-q IoU), 1)`` (``int`` truncates); 0 for padded GTs."""
    q = min(top_q, ious.shape[-1])
    k = ious.topk(q, dim=-1).values.sum(dim=-1).long().clamp(min=1)
    return torch.where(mask, k, torch.zeros_like(k))


def _logsumexp_of_sum(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """``torch.logsumexp(a + b, dim)`` with terms more than 80 below the maximum floored at ``e^-80``.

    The error is at most ``n·e^-80 ≈ n·2e-35`` relative. It matters for speed: the 1e6 penalty makes most
    terms underflow, and CPU ``exp`` is ~10x slower on underflowing arguments. One temporary, updated in
    place: the Sinkhorn loop is memory-bound.
    """
    x = a + b
    peak = x.amax(dim=dim, keepdim=True)
    peak = torch.where(peak.isfinite(), peak, 0.0)  # all -inf (a zero-supply row) stays -inf below
    return x.sub_(peak).clamp_(min=-80.0).exp_().sum(dim=dim).log_() + peak.squeeze(dim)


def sinkhorn_log(cost: Tensor, supply: Tensor, demand: Tensor, eps: float, iterations: int) -> Tensor:
    """Log of the entropic transport plan ``π = diag(u) exp(-C/eps) diag(v)``, log-domain Sinkhorn–Knopp.

    Equivalent to OTA's potential updates (``u = eps·log a``, the old ``u`` cancels). Column scalings are
    updated first, then rows, so the returned plan meets the supplies exactly and the demands up to
    convergence.

    Args:
        cost: [B, S, A] suppliers x demanders.
        supply: [B, S] >= 0; zero rows get no mass (log -inf, never NaN).
        demand: [B, A] > 0.
    Returns:
        [B, S, A] log π (``-inf`` on zero-supply rows).
    """
    log_kernel = -cost / eps
    log_supply = supply.log()
    log_demand = demand.log()
    log_u = torch.where(supply > 0, 0.0, float("-inf"))
    for _ in range(iterations):
        log_v = log_demand - _logsumexp_of_sum(log_kernel, log_u[..., None], dim=1)
        log_u = log_supply - _logsumexp_of_sum(log_kernel, log_v[:, None, :], dim=2)
    return log_kernel + log_u[..., None] + log_v[:, None, :]


@torch.no_grad()
def ota_assign(
    outputs: HeadOutputs,
    targets: Targets,
    *,
    iou_weight: float = 3.0,
    center_radius: float = _OTA_REGION,
    top_q: int = 20,
    eps: float = 0.1,
    iterations: int = 50,
    penalty: float = 1e6,
) -> Assignment:
    """Assign anchors by optimal transport (module docstring). ``Assignment.cost`` holds, for each positive,
    its foreground cost (cls + iou_weight·(-log IoU) + penalty when outside the candidate region); 0 on
    background."""
    if targets.boxes_cxcywh.shape[1] == 0:
        return Assignment.background(*outputs.obj_logits.shape, outputs.obj_logits.device)
    # Costs are float32 by explicit casts; autocast is off so nothing in the Sinkhorn is silently downcast.
    with torch.autocast(outputs.obj_logits.device.type, enabled=False):
        fg_cost, background, ious, candidate = ota_costs(
            outputs, targets, iou_weight=iou_weight, center_radius=center_radius, penalty=penalty
        )
        k = dynamic_k(ious * candidate, targets.mask, top_q)
        # More positives than anchors cannot be met; the background then supplies nothing (never seen in
        # practice).
        bg_supply = (background.shape[1] - k.sum(dim=1)).clamp(min=0)
        supply = torch.cat([k, bg_supply[:, None]], dim=1).float()
        cost = torch.cat([fg_cost, background[:, None, :]], dim=1)  # [B, G + 1, A], background last
        log_plan = sinkhorn_log(cost, supply, torch.ones_like(background), eps, iterations)
        return _match(log_plan, supply, fg_cost, ious)


def ota_costs(
    outputs: HeadOutputs, targets: Targets, *, iou_weight: float, center_radius: float, penalty: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Foreground cost [B, G, A] (0 on padded GTs), background cost [B, A], IoU [B, G, A] and the candidate
    region [B, G, A] (in box and within ``center_radius`` strides of the centre), all float32 / bool."""
    gt_boxes = targets.boxes_cxcywh.float()
    mask = targets.mask[..., None]
    region = SimOTAVariant(center_radius=center_radius, use_in_box=True, penalty=penalty)
    _, candidate = geometric_prior(gt_boxes, targets.mask, outputs, region)  # False on padded GTs
    ious = pairwise_iou_cxcywh(gt_boxes, decode_boxes(outputs._replace(box_raw=outputs.box_raw.float())))
    ious = torch.where(mask, ious, 0.0)  # padded boxes may give 0/0
    fg_cost = class_cost(outputs.cls_logits, outputs.obj_logits, targets.labels)
    fg_cost = fg_cost + iou_weight * -torch.log(ious + IOU_COST_EPS) + penalty * (~candidate)
    return torch.where(mask, fg_cost, 0.0), background_cost(outputs), ious, candidate


def _match(log_plan: Tensor, supply: Tensor, fg_cost: Tensor, ious: Tensor) -> Assignment:
    """OTA post-processing: rescale each supplier's row so its best anchor receives 1, then argmax per
    anchor."""
    num_gt = fg_cost.shape[1]
    log_plan = log_plan - log_plan.amax(dim=2, keepdim=True)
    log_plan = torch.where(supply[..., None] > 0, log_plan, float("-inf"))  # zero-supply rows: -inf - -inf
    supplier = log_plan.argmax(dim=1)  # [B, A]; ties go to the GT (rows before the background)
    fg_mask = supplier < num_gt
    gt_index = supplier.clamp(max=num_gt - 1)[:, None, :]
    return Assignment(
        fg_mask=fg_mask,
        matched_gt=torch.where(fg_mask, supplier, -1),
        matched_iou=torch.where(fg_mask, ious.gather(1, gt_index)[:, 0], 0.0),
        cost=torch.where(fg_mask, fg_cost.gather(1, gt_index)[:, 0], 0.0),
    )
