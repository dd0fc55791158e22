"""Metrics: PSNR/SSIM (``image``), codebook usage (``codebook``), Shapes prompt adherence (``adherence``)."""

from tokgen.metrics.adherence import AdherenceScore, ObjectTrack, describe_clip, score_clip, score_clips

__all__ = ["AdherenceScore", "ObjectTrack", "describe_clip", "score_clip", "score_clips"]
