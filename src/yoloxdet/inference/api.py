"""The Python inference API: :class:`Detector` turns images into
:class:`~yoloxdet.inference.results.Detections`.

Pipeline (official, reference §6.3 and §7.2): read as BGR uint8 -> letterbox top-left to the model's input
size with pad 114 -> float 0-255 CHW -> backend -> decoded ``[B, A, 5 + C]`` -> score filter
``obj * cls >= conf`` and NMS -> boxes divided by the letterbox ratio. Boxes are clipped to the image for
display, but not for evaluation (``clip=False``), as the official evaluator.

A *backend* is anything callable ``images [B, 3, H, W] float32 -> decoded [B, A, 5 + C]``;
:class:`TorchBackend` wraps a PyTorch YOLOX, and exported ONNX files have their own
(``yoloxdet.inference.backends.OnnxBackend``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..config import PredictConfig
from ..data.transforms import letterbox, to_chw_float
from ..io import ImageSource, read_image
from ..models.fuse import optimize_for_inference
from ..ops.decode import decode
from ..ops.nms import RawDetections, postprocess
from ..weights import CheckpointInfo, load_model
from .backends import load_exported
from .results import Detections
from .tiling import TileSpec, predict_tiled
from .tta import FlipTTABackend

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectOptions:
    """Per-image options of :meth:`Detector.predict_batch`; ``None`` keeps the detector's own setting."""

    conf: float | None = None  # score threshold obj * cls
    iou: float | None = None  # NMS IoU threshold
    classes: frozenset[int] | None = None  # keep only these class ids
    max_det: int | None = None  # keep at most this many boxes, highest scores first


class Backend(Protocol):
    """Runs the network: ``images [B, 3, H, W]`` float32 BGR 0-255 -> decoded ``[B, A, 5 + C]``."""

    def __call__(self, images: Tensor) -> Tensor: ...


class TorchBackend:
    """A PyTorch YOLOX in eval mode, run under ``torch.inference_mode`` on the device of its parameters.

    ``dtype`` (CUDA: ``torch.float16``/``torch.bfloat16``) runs the network under autocast in that precision;
    decoding and NMS stay float32. ``pad_batch`` pads smaller batches to that size (the padding's outputs are
    dropped), so a compiled model, specialised to one batch size, never recompiles for a short last batch."""

    def __init__(
        self, model: nn.Module, *, dtype: torch.dtype | None = None, pad_batch: int | None = None
    ) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.dtype = dtype
        self.pad_batch = pad_batch

    def __call__(self, images: Tensor) -> Tensor:
        count = len(images)
        images = images.to(self.device)
        if self.pad_batch and count < self.pad_batch:
            images = torch.cat([images, images.new_zeros(self.pad_batch - count, *images.shape[1:])])
        autocast = torch.autocast(self.device.type, self.dtype) if self.dtype else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            outputs = self.model(images)
        return decode(
            outputs._replace(
                box_raw=outputs.box_raw.float(),
                obj_logits=outputs.obj_logits.float(),
                cls_logits=outputs.cls_logits.float(),
            )
        )[:count]


class Detector:
    """YOLOX inference on images: paths, numpy arrays (BGR) or PIL images (RGB), one or many.

    Example:
        >>> from yoloxdet import Detector
        >>> from yoloxdet.models.zoo import create_model
        >>> from yoloxdet.weights import CheckpointInfo
        >>> import numpy as np
        >>> info = CheckpointInfo("yolox-nano", 80, tuple(f"c{i}" for i in range(80)), (416, 416))
        >>> detector = Detector(create_model("yolox-nano"), info)
        >>> [dets] = detector.predict(np.zeros((240, 320, 3), np.uint8))
        >>> dets.xyxy.shape[1], dets.orig_shape
        (4, (240, 320))

    With real weights: ``Detector.from_checkpoint("yolox_s.pth", model_name="yolox-s").predict("bus.jpg")``,
    then ``dets.save("bus_pred.jpg")`` or ``dets.to_json()``.
    """

    def __init__(
        self,
        model: nn.Module | Backend,
        info: CheckpointInfo,
        *,
        conf_threshold: float = PredictConfig.conf_threshold,
        nms_iou_threshold: float = PredictConfig.nms_iou_threshold,
        class_agnostic: bool = False,
        input_size: tuple[int, int] | None = None,
        batch_size: int = PredictConfig.batch,
        tile: TileSpec | None = None,
        tta: str = PredictConfig.tta,
    ) -> None:
        """
        Args:
            model: a YOLOX ``nn.Module`` (wrapped in :class:`TorchBackend`) or any :class:`Backend`.
            info: model name, class names and default input size.
            conf_threshold: keep boxes with ``obj * cls >= conf_threshold`` (default: ``PredictConfig``;
                evaluation uses ``EvalConfig``'s).
            nms_iou_threshold: NMS IoU (defaults as ``conf_threshold``).
            class_agnostic: one NMS over all classes instead of per class.
            input_size: (h, w) letterbox size, multiples of 32; default ``info.input_size``.
            batch_size: images per forward pass (tiles per pass when tiling).
            tile: cut every image into overlapping tiles of this spec and merge their detections, for images
                much larger than the input size (aerial, satellite, microscopy); see
                :mod:`yoloxdet.inference.tiling`.
            tta: test-time augmentation: ``"hflip"`` or ``"flips"`` also run mirrored copies of each image (or
                tile) and join their boxes before NMS (:mod:`yoloxdet.inference.tta`); ``"none"``: one pass.
        """
        backend = TorchBackend(model) if isinstance(model, nn.Module) else model
        self.backend: Backend = FlipTTABackend(backend, tta) if tta != "none" else backend
        self.tta = tta
        self.info = info
        self.conf_threshold = conf_threshold
        self.nms_iou_threshold = nms_iou_threshold
        self.class_agnostic = class_agnostic
        self.input_size = tuple(input_size or info.input_size)
        if any(s % 32 for s in self.input_size):
            raise ValueError(f"input size {self.input_size} must be multiples of 32")
        self.batch_size = batch_size
        self.tile = tile

    @classmethod
    def from_checkpoint(
        cls,
        source: str | Path,
        *,
        model_name: str | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        fast: bool = True,
        compile: bool = False,
        dtype: torch.dtype | None = None,
        busy_wait: bool = True,
        **kwargs,
    ) -> Detector:
        """Load our ``.pt``, an official ``.pth``/``.onnx`` (give ``model_name``) or a zoo name.

        A PyTorch model is prepared by :func:`~yoloxdet.models.fuse.optimize_for_inference`: with ``fast``
        (the default) BatchNorm is folded into the convs and weights are channels_last (outputs equal the
        unfused model's within float rounding); ``compile`` adds ``torch.compile`` (the first batch of each
        shape compiles; smaller batches are padded to ``batch_size``: a short last batch does not recompile).
        Both are ignored for exported ``.onnx``/``.torchscript`` files. ``device="auto"``: CUDA when present,
        else the CPU.
        ``dtype`` (``torch.float16``/``torch.bfloat16``, CUDA only) runs the network in that precision.
        ``busy_wait=False`` makes an ONNX file's runtime threads sleep instead of spin between operators
        (:class:`~yoloxdet.inference.backends.OnnxBackend`; for servers, whose cores other threads need).
        ``kwargs`` go to :class:`Detector` (thresholds, input size, batch size).
        """
        device = resolve_device(device or "cpu")
        if dtype is not None and device.type != "cuda":
            raise ValueError(f"dtype {dtype} needs a CUDA device (got {device}); the CPU runs float32")
        exported = _exported_backend(source, device, busy_wait)
        if exported is not None:
            backend, info = exported
            return cls(backend, info, **kwargs)
        model, info = load_model(
            source, model_name=model_name, num_classes=num_classes, class_names=class_names
        )
        model = model.to(device)
        if fast or compile:
            model = optimize_for_inference(model, fuse=fast, channels_last=fast, compile=compile)
        pad_batch = kwargs.get("batch_size", PredictConfig.batch) if compile else None
        return cls(TorchBackend(model, dtype=dtype, pad_batch=pad_batch), info, **kwargs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.info.class_names)

    def predict(
        self, images: ImageSource | Sequence[ImageSource], *, clip: bool = True, keep_images: bool = False
    ) -> list[Detections]:
        """Detect objects in one image or a sequence of images; returns one :class:`Detections` per image.

        Args:
            images: path, BGR numpy array, PIL image, or a list/tuple of them.
            clip: clip boxes to the image (set False for COCO evaluation, as official).
            keep_images: store the decoded original in ``Detections.image`` (for drawing without re-reading).
        Raises:
            yoloxdet.io.ImageReadError: an input is not a readable image (its name is in the message).
        """
        if isinstance(images, str | Path | np.ndarray) or not isinstance(images, Sequence):
            images = [images]
        results: list[Detections] = []
        for start in range(0, len(images), self._images_per_call):
            chunk = images[start : start + self._images_per_call]
            arrays = [read_image(source) for source in chunk]
            paths = [Path(s) if isinstance(s, str | Path) else None for s in chunk]
            results.extend(self.predict_arrays(arrays, paths, clip=clip, keep_images=keep_images))
        return results

    @property
    def _images_per_call(self) -> int:
        """Whole images decoded and held at once: one when tiling (a large image's tiles fill the batches)."""
        return 1 if self.tile is not None else self.batch_size

    def predict_arrays(
        self,
        images_bgr: Sequence[np.ndarray],
        image_paths: Sequence[Path | None] | None = None,
        *,
        frame_indices: Sequence[int | None] | None = None,
        clip: bool = True,
        keep_images: bool = False,
    ) -> list[Detections]:
        """Detections of already-decoded ``[H, W, 3]`` uint8 BGR images: one forward pass over them as given,
        or each image tiled when the detector has a :class:`~yoloxdet.inference.tiling.TileSpec`."""
        if self.tile is None:
            return self.predict_batch(
                images_bgr, image_paths, frame_indices=frame_indices, clip=clip, keep_images=keep_images
            )
        image_paths = image_paths or [None] * len(images_bgr)
        frame_indices = frame_indices or [None] * len(images_bgr)
        return [
            predict_tiled(
                self, image, self.tile, image_path=path, frame_index=frame, clip=clip, keep_image=keep_images
            )
            for image, path, frame in zip(images_bgr, image_paths, frame_indices)
        ]

    def predict_batch(
        self,
        images_bgr: Sequence[np.ndarray],
        image_paths: Sequence[Path | None] | None = None,
        *,
        frame_indices: Sequence[int | None] | None = None,
        clip: bool = True,
        keep_images: bool = False,
        options: Sequence[DetectOptions] | None = None,
    ) -> list[Detections]:
        """One forward pass over already-decoded ``[H, W, 3]`` uint8 BGR images (the batch as given, never
        tiled).

        ``options``: per-image thresholds, class filter and box cap (one per image; a server batches requests
        that each carry their own). They act after the shared forward pass, whose output does not depend on
        them.
        """
        if not images_bgr:
            return []
        canvases, ratios = zip(*(letterbox(image, self.input_size) for image in images_bgr))
        decoded = self.backend(torch.from_numpy(np.stack([to_chw_float(c) for c in canvases])))
        image_paths = image_paths or [None] * len(images_bgr)
        frame_indices = frame_indices or [None] * len(images_bgr)
        options = options or [DetectOptions()] * len(images_bgr)
        results = []
        for index, (image, ratio, path, frame) in enumerate(
            zip(images_bgr, ratios, image_paths, frame_indices)
        ):
            dets = self._select(decoded[index : index + 1], options[index])
            height, width = image.shape[:2]
            boxes = dets.boxes_xyxy.float().cpu() / ratio  # top-left padding: no offset to undo
            if clip:
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
            results.append(
                Detections(
                    xyxy=boxes.numpy(),
                    scores=dets.scores.float().cpu().numpy(),
                    class_ids=dets.class_ids.cpu().numpy().astype(np.int64),
                    names=self.names,
                    orig_shape=(height, width),
                    image_path=path,
                    frame_index=frame,
                    image=image if keep_images else None,
                )
            )
        return results

    def _select(self, decoded: Tensor, options: DetectOptions) -> RawDetections:
        """Score filter and NMS of one image's ``[1, A, 5 + C]`` output under ``options``, then its class
        filter and cap (after class-aware NMS, filtering classes equals filtering before it; NMS output is by
        score)."""
        conf = self.conf_threshold if options.conf is None else options.conf
        iou = self.nms_iou_threshold if options.iou is None else options.iou
        [dets] = postprocess(decoded, conf, iou, self.class_agnostic)
        if options.classes is not None:
            wanted = torch.isin(
                dets.class_ids, torch.tensor(sorted(options.classes), device=dets.class_ids.device)
            )
            dets = RawDetections(*(field[wanted] for field in dets))
        if options.max_det is not None:
            dets = RawDetections(*(field[: options.max_det] for field in dets))
        return dets

    def predict_stream(
        self, images: Iterable[tuple[np.ndarray, Path | None, int | None]], *, clip: bool = True
    ) -> Iterator[Detections]:
        """Batched detection over a (possibly endless) stream of ``(image_bgr, path, frame_index)``; results
        come out in input order with ``image`` kept, for writers that draw (videos, folders)."""
        pending: list[tuple[np.ndarray, Path | None, int | None]] = []
        for item in images:
            pending.append(item)
            if len(pending) == self._images_per_call:
                yield from self._run_pending(pending, clip)
                pending = []
        yield from self._run_pending(pending, clip)

    def _run_pending(
        self, pending: list[tuple[np.ndarray, Path | None, int | None]], clip: bool
    ) -> list[Detections]:
        if not pending:
            return []
        arrays, paths, frames = zip(*pending)
        return self.predict_arrays(arrays, paths, frame_indices=frames, clip=clip, keep_images=True)


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when present, else the CPU; anything else as ``torch.device``."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _exported_backend(
    source: str | Path, device: torch.device, busy_wait: bool = True
) -> tuple[Backend, CheckpointInfo] | None:
    """The runtime backend and its info for a file written by ``yoloxdet export`` (metadata inside), else
    None.

    This is where the export module plugs in (``.onnx`` with our metadata -> ``backends.OnnxBackend``).
    Official ONNX files have no metadata: they return None and ``load_model`` imports them into PyTorch.
    """
    return load_exported(source, device, busy_wait=busy_wait)
