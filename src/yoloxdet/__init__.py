"""yoloxdet: YOLOX, faithful to the paper and the official weights.

The public names are imported on first use (PEP 562 ``__getattr__``), so ``yoloxdet --help`` and argument
errors do not pay for importing torch (about 5x faster, measured in docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import load_config
    from .inference import Detections, Detector, TileSpec
    from .models.zoo import create_model, list_models
    from .structures import HeadOutputs

__all__ = ["Detections", "Detector", "HeadOutputs", "TileSpec", "create_model", "list_models", "load_config"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'yoloxdet' has no attribute '{name}'")
    from .config import load_config
    from .inference import Detections, Detector, TileSpec
    from .models.zoo import create_model, list_models
    from .structures import HeadOutputs

    public = {
        "Detections": Detections,
        "Detector": Detector,
        "HeadOutputs": HeadOutputs,
        "TileSpec": TileSpec,
        "create_model": create_model,
        "list_models": list_models,
        "load_config": load_config,
    }
    globals().update(public)  # later lookups skip this function
    return public[name]
