"""Video in and out (PyAV), the uint8 <-> tensor conversions, contact sheets and checkpoints."""

from tokgen.io.convert import frames_to_tensor, tensor_to_frames

__all__ = ["frames_to_tensor", "tensor_to_frames"]
