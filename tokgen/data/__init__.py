"""Datasets: synthetic captioned Shapes, video folders, image folders (and their LightningDataModule).

The datamodule (``tokgen.data.datamodule``) is not imported here: it pulls in Lightning, and
``tokgen.metrics`` reads the Shapes caption grammar from this package without it.
"""

from tokgen.data.image_folder import ImageFolderDataset
from tokgen.data.moving_fashion_mnist import MovingFashionMNIST
from tokgen.data.shapes import (
    COLORS,
    MOTIONS,
    SHAPES,
    ObjectSpec,
    Scene,
    ShapesConfig,
    ShapesDataset,
    caption,
    continue_scene,
    parse_caption,
    render,
    sample_scene,
)
from tokgen.data.video_folder import VideoFolderDataset

__all__ = [
    "COLORS",
    "MOTIONS",
    "SHAPES",
    "ImageFolderDataset",
    "MovingFashionMNIST",
    "ObjectSpec",
    "Scene",
    "ShapesConfig",
    "ShapesDataset",
    "VideoFolderDataset",
    "caption",
    "continue_scene",
    "parse_caption",
    "render",
    "sample_scene",
]
