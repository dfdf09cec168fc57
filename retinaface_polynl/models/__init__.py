"""Model parts: backbones, attention blocks, FPN + SSH neck, heads, the assembled RetinaFace."""
from .attention import ATTENTION_BLOCKS, build_attention
from .retinaface import RetinaFace

__all__ = ["ATTENTION_BLOCKS", "RetinaFace", "build_attention"]
