"""uwav: UWAV weakly-supervised audio-visual video parsing as a sweep-driven research tool."""

from uwav._env import quiet_library_defaults

quiet_library_defaults()

__version__ = "0.1.0"
