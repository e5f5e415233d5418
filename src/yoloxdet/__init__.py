"""yoloxdet: YOLOX, faithful to the paper and the official weights."""

from .config import load_config
from .inference import Detections, Detector
from .models.zoo import create_model, list_models
from .structures import HeadOutputs

__all__ = ["Detections", "Detector", "HeadOutputs", "create_model", "list_models", "load_config"]
__version__ = "0.1.0"
