"""Environment defaults applied before heavy libraries are imported.

MLflow and Ray phone home by default and laion_clap/transformers reach for the HuggingFace hub at
import time (retrying for minutes when offline). The project sets the quiet defaults once, here,
unless the user has already chosen a value.
"""

import os

_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def quiet_library_defaults() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
