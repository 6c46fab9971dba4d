"""Stage 2 end to end: generator logits -> θ fitted on val -> hard and soft pseudo labels -> quality.

  generate.py    run the generator once, write the logits cache
  thresholds.py  θ fitting (method.md §4), offsets, the −∞ replacement
  targets.py     hard / soft targets and the per-run class weights (§5-§6), used by training and sweeps
  quality.py     pseudo-label quality and the zero-shot baseline (§10)
  run.py         `uwav pseudo`: the stage, writing <out>/pseudo/
The artefacts are read back by uwav.data.logits.
"""

from uwav.pseudo.quality import (
    CLAP_ZERO_SHOT_SCALE,
    CLIP_ZERO_SHOT_SCALE,
    pseudo_quality,
    run_pseudo_quality,
    zero_shot_scores,
)
from uwav.pseudo.targets import PseudoTargets, batch_targets, hard_labels, prepare_targets
from uwav.pseudo.thresholds import (
    THRESHOLD_CUTS,
    THRESHOLD_MODES,
    VALOR_THRESHOLDS_CLAP,
    VALOR_THRESHOLDS_CLIP,
    fill_infinite_thresholds,
    fit_all_thresholds,
    fit_thresholds,
    shift_thresholds,
)

__all__ = [
    "CLAP_ZERO_SHOT_SCALE", "CLIP_ZERO_SHOT_SCALE", "THRESHOLD_CUTS", "THRESHOLD_MODES", "VALOR_THRESHOLDS_CLAP",
    "VALOR_THRESHOLDS_CLIP", "PseudoTargets", "batch_targets", "fill_infinite_thresholds", "fit_all_thresholds",
    "fit_thresholds", "hard_labels", "prepare_targets", "pseudo_quality", "run_pseudo_quality", "shift_thresholds",
    "zero_shot_scores",
]
