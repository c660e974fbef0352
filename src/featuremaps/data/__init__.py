"""Datasets: synthetic shapes (and scenes), scikit-learn digits, image folders."""

from featuremaps.data.datasets import ArrayDataset, DatasetError, load_dataset
from featuremaps.data.shapes import SHAPE_CLASSES, draw_shape, shapes_scene

__all__ = ["SHAPE_CLASSES", "ArrayDataset", "DatasetError", "draw_shape", "load_dataset", "shapes_scene"]
