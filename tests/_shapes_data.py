"""The generated shapes dataset, now a library module (:mod:`yoloxdet.data.synthetic`); kept for test
imports."""

from yoloxdet.data.synthetic import CLASSES, write_shapes_dataset

__all__ = ["CLASSES", "write_shapes_dataset"]
