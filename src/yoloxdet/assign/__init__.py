"""Label assigners by name, all with one signature (pure, batched, no gradient).

``assign(name, outputs, targets, **options) -> Assignment``. Registered here:

* ``"simota"``: the current official SimOTA (centre radius 1.5, centre-only candidates, 1e6 penalty; reference
  §3.2).
* ``"simota-2021"``: the assigner the released weights were trained with and the paper describes (in-box ∪
  centre radius 2.5 candidates, 1e5 penalty outside box ∧ centre; reference §3.3).
* ``"ota"``: optimal transport by log-domain Sinkhorn with a background supplier (reference §9.1; ota.py).
* ``"single"`` / ``"center3x3"``: fixed positives, the GT's centre cell or its 3×3 region on one FPN level
  chosen by size (the paper's roadmap; fixed.py).

Other assigners register with :func:`register` under the same signature.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from ..structures import Assignment, HeadOutputs, Targets
from .fixed import center3x3_assign, single_assign
from .ota import ota_assign
from .simota import CURRENT, PAPER_2021, simota_assign

Assigner = Callable[..., Assignment]  # (outputs, targets, **options) -> Assignment

_ASSIGNERS: dict[str, Assigner] = {}


def register(name: str, assigner: Assigner) -> None:
    """Make ``assigner(outputs, targets, **options)`` available as ``assign(name, ...)``."""
    if name in _ASSIGNERS:
        raise ValueError(f"assigner {name!r} is already registered")
    _ASSIGNERS[name] = assigner


def available() -> list[str]:
    """Registered assigner names, sorted."""
    return sorted(_ASSIGNERS)


def assign(name: str, outputs: HeadOutputs, targets: Targets, **options: object) -> Assignment:
    """Assign ground truths to anchor points with the assigner ``name`` (no gradient flows through it)."""
    try:
        assigner = _ASSIGNERS[name]
    except KeyError:
        raise ValueError(f"unknown assigner {name!r}; available: {', '.join(available())}") from None
    with torch.no_grad():
        return assigner(outputs, targets, **options)


register("simota", partial(simota_assign, variant=CURRENT))
register("simota-2021", partial(simota_assign, variant=PAPER_2021))
register("ota", ota_assign)
register("single", single_assign)
register("center3x3", center3x3_assign)

__all__ = ["Assigner", "assign", "available", "register"]
