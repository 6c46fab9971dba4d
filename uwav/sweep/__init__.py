"""Sweeps: the sweep file (spec.py), the Tune trainable around `fit` (trainable.py), Ray start-up and the
Tuner (tuner.py), the MLflow callback (tracker.py), results and the leaderboard (results.py), resume
repair (repair.py) and `uwav train --best` (finish.py). MLflow calls live in uwav/tracking.py."""
