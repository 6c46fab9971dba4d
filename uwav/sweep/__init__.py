"""Sweeps: a sweep file (spec.py), the Tune trainable around `fit` (trainable.py), and the Tuner with
resume, best-config extraction and the multi-seed finish (run.py). MLflow lives in uwav/tracking.py."""

from uwav.sweep.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "load_sweep"]
