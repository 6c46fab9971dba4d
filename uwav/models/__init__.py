"""Neural network modules: the pseudo-label generator and the HAN inference model."""

from uwav.models.generator import Generator, GeneratorConfig, TemporalStream, padding_attention_mask
from uwav.models.han import HAN, HANConfig, HANLayer, HANOutput

__all__ = [
    "HAN",
    "Generator",
    "GeneratorConfig",
    "HANConfig",
    "HANLayer",
    "HANOutput",
    "TemporalStream",
    "padding_attention_mask",
]
