"""Environment defaults applied before heavy libraries are imported.

MLflow and Ray phone home by default and laion_clap/transformers reach for the HuggingFace hub at
import time (retrying for minutes when offline). The defaults are defined once, here, never over a value
the user has chosen, and applied at the entry points only: the CLI (uwav.cli.main), a sweep's Ray
start-up (uwav.sweep.tuner) and the extractors' imports (uwav.extract.compat). `import uwav` changes
nothing in the environment.
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
