"""uwav: UWAV weakly-supervised audio-visual video parsing as a sweep-driven research tool."""

__version__ = "0.1.0"
