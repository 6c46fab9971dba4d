"""Neural network modules: the pseudo-label generator and the HAN inference model."""

from uwav.models.generator import Generator, TemporalStream, padding_attention_mask
from uwav.models.han import HAN, HANLayer, HANOutput
from uwav.models.han_fast import FastHANLayer

__all__ = ["HAN", "FastHANLayer", "Generator", "HANLayer", "HANOutput", "TemporalStream", "padding_attention_mask"]
