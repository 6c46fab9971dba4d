"""Synthetic LLP and UnAV-100 datasets in the released on-disk layouts (data-formats.md §2-5, §7, §10).

The generator draws one world per seed:
- a latent concept vector per UnAV class (K = 64 dims); listed pairs of classes get correlated concepts
  (confusable classes); each LLP class is a perturbed copy of a related UnAV class, so the two datasets
  share one concept space and pre-training on UnAV transfers;
- fixed random projections from the latent space to every feature space (CLIP 768, CLAP 512, VGGish
  128, ResNet-152 2048, R(2+1)D 512, CLAP tokens 2 x 768);
- text embeddings: a class's latent direction, projected, plus noise, L2-normalised.
A segment's latent is the sum of the concepts active in that segment and modality (random amplitude),
plus a per-video scene vector and noise over time; each feature adds its own noise.

Two world versions (`world_version`; the file layouts are the same):
- 2 (GENERATOR_VERSION, the default): calibrated to the real LLP. Labels follow the statistics of the
  real CSVs (LLPLabelsV2, V2_LABELS); features have the mechanisms of real CLIP / CLAP features (WorldV2:
  per-segment evidence weaker than the event under a scene that dominates frames, class-dependent
  visibility and text alignment with a modality gap, a domain shift between UnAV and LLP), whose two
  strengths (V2_STRENGTH) were set so the zero-shot baseline scores what VALOR's scores on real LLP.
  `python bench/calibrate_synthetic.py` prints every target beside the world's value.
- 1: the first world (World, LLPLabels): features linear in the concepts plus noise, which a text-cosine
  threshold reads easily (zero-shot labels far better than on real data). Kept byte for byte.
Nothing in either is tuned on a method's own scores.

Everything is a pure function of the seed: the same seed gives byte-identical files, whatever subset of
layouts is written (each array has its own named random stream). The tree is built in a temporary
sibling folder and renamed into place, so a failure leaves no half dataset.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uwav.classes import LLP_CLASSES, UNAV_CLASSES
from uwav.data.unav import read_unav_json, split_labels  # one label rule, shared with the loader
from uwav.errors import UwavError
from uwav.io import write_json, write_text

GENERATOR_VERSION = 2  # the default world; WORLD_VERSIONS can all still be written
WORLD_VERSIONS = (1, 2)
# World 2: the kinds of video whose labels differ in the real data (LLPLabelsV2): one label; Speech and one
# other (the other is the event shown); two labels without Speech (often music); three or more.
LABEL_BUCKETS = ("single", "speech_pair", "pair", "more")


def label_bucket(count: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Index into LABEL_BUCKETS of videos with `count` labels, `speech` if one of them is Speech."""
    return np.where(count == 1, 0, np.where(count == 2, np.where(speech, 1, 2), 3))
LATENT = 64
SEGMENTS = 10
LAYOUTS = ("han", "valor", "uwav")
LLP_SPLITS = ("train", "val", "test")
UNAV_SUBSETS = ("train", "validation", "test")
WEAK_CSV = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}

# Videos per split: LLP train/val/test, UnAV train/validation/test.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"train": 48, "val": 16, "test": 16, "unav_train": 64, "unav_validation": 16, "unav_test": 16},
    "small": {
        "train": 400,
        "val": 100,
        "test": 100,
        "unav_train": 400,
        "unav_validation": 100,
        "unav_test": 0,
    },
    "medium": {
        "train": 1000,
        "val": 200,
        "test": 200,
        "unav_train": 1000,
        "unav_validation": 250,
        "unav_test": 0,
    },
    "llp": {
        "train": 10000,
        "val": 649,
        "test": 1200,
        "unav_train": 6489,
        "unav_validation": 2134,
        "unav_test": 0,
    },
}
# At full LLP size the HAN res152 files alone are 6.5 GB (80 x 2048 float32 per video), so only the
# UWAV layout is written unless --layouts asks for more.
DEFAULT_LAYOUTS = {"tiny": LAYOUTS, "small": LAYOUTS, "medium": LAYOUTS, "llp": ("uwav",)}

# Native UnAV feature rates (frames per second). Not 1, so adaptive pooling to 1 s is exercised both
# ways: CLIP is pooled down (L > T'), CLAP is stretched by repetition (L < T').
UNAV_RATE = {"clip": 1.25, "clap": 0.8}
MODALITY = {"clip": "visual", "clap": "audio"}

# Each LLP class shares its concept with a semantically related UnAV class.
LLP_TO_UNAV: dict[str, str] = {
    "Speech": "man speaking",
    "Car": "car passing by",
    "Cheering": "people cheering",
    "Dog": "dog barking",
    "Cat": "cat meowing",
    "Frying_(food)": "people eating",
    "Basketball_bounce": "basketball bounce",
    "Fire_alarm": "fire truck siren",
    "Chainsaw": "chainsawing trees",
    "Cello": "playing cello",
    "Banjo": "playing banjo",
    "Singing": "male singing",
    "Chicken_rooster": "bird chirping",
    "Violin_fiddle": "playing violin",
    "Vacuum_cleaner": "vacuum cleaner cleaning floors",
    "Baby_laughter": "baby laughter",
    "Accordion": "playing accordion",
    "Lawn_mower": "lawn mowing",
    "Motorcycle": "driving motorcycle",
    "Helicopter": "helicopter",
    "Acoustic_guitar": "playing acoustic guitar",
    "Telephone_bell_ringing": "telephone bell ringing",
    "Baby_cry_infant_cry": "baby crying",
    "Blender": "hair dryer drying",
    "Clapping": "people clapping",
}
# (a, b): b's concept is pulled towards a's (cosine about 0.6), in UnAV names; LLP inherits them.
CONFUSABLE: tuple[tuple[str, str], ...] = (
    ("man speaking", "woman speaking"),
    ("man speaking", "kid speaking"),
    ("man speaking", "male singing"),
    ("male singing", "female singing"),
    ("playing cello", "playing violin"),
    ("playing acoustic guitar", "playing banjo"),
    ("playing acoustic guitar", "playing ukulele"),
    ("baby crying", "baby laughter"),
    ("chainsawing trees", "lawn mowing"),
    ("car passing by", "driving motorcycle"),
    ("people cheering", "people clapping"),
    ("vacuum cleaner cleaning floors", "hair dryer drying"),
    ("dog barking", "dog howling"),
    ("playing accordion", "playing harmonica"),
    ("fire truck siren", "ambulance siren"),
    ("police car siren", "ambulance siren"),
    ("people eating", "people slurping"),
    ("helicopter", "airplane flyby"),
)

# LLP label statistics (data-formats §2.4): labels per video and train videos per class.
LABELS_PER_VIDEO = {"train": (0.40, 0.59, 0.01, 0.0), "eval": (0.33, 0.565, 0.085, 0.02)}
SPEECH_RATE = 0.5
TRAIN_CLASS_COUNTS = np.array(
    [
        4988,
        624,
        528,
        761,
        192,
        343,
        455,
        218,
        299,
        602,
        186,
        1172,
        437,
        1457,
        495,
        146,
        445,
        224,
        411,
        587,
        503,
        99,
        430,
        291,
        164,
    ],
    dtype=np.float64,
)
# Per (video, class): audio-only / visual-only probabilities; the rest is audio-visual.
AUDIO_ONLY = {"Speech": 0.45, "default": 0.2}
VISUAL_ONLY = 0.07

# World version 1's feature model (module docstring). Chosen so zero-shot scores are clearly informative yet
# far from perfect; they are not tuned towards any method.
AMPLITUDE = (0.3, 1.0)  # concept amplitude per (video, class)
SCENE = 0.8  # per-video nuisance vector norm
AR_NOISE, AR_RHO = 0.8, 0.7  # temporally smooth noise: stationary norm and lag-1 correlation
MEAN_NORM = 1.0  # dataset-wide mean direction per modality
EMBED_NOISE = 0.5  # isotropic noise norm added in the embedding space
TEXT_SHIFT, TEXT_NOISE = 0.7, 0.3  # text = perturbed concept (concept space) + noise (embedding space)

# ---- world version 2: calibrated to the real LLP ----------------------------------------------------------
# Every value below is written by `python bench/calibrate_synthetic.py --fit` (which measures the label model
# from ../shared/data/llp and searches V2_STRENGTH) and verified by its default --check mode. The targets:
# the real label statistics, the real "weak label on every segment" baseline and VALOR's zero-shot row of
# UWAV Table 3; never the generator's, the parser's or an ablation's score.
# Label model (LLPLabelsV2), measured from the real CSVs (train weak labels; val + test weak labels and
# dense GT). Lists over classes are in LLP_CLASSES order; per-bucket tables are keyed by LABEL_BUCKETS.
#   labels_per_video: P(1..5 labels), train / eval; speech_by_count: P(Speech | that many labels);
#   class_counts: videos per class in each bucket (the other classes' draw weights);
#   modality_type: per bucket and class, shares of audio-only, visual-only, no dense event (rest: AV);
#   full_clip: per bucket, modality and class, share of rows spanning the whole clip;
#   events_per_row / event_length / event_length_multi / inner_gap: the other rows' event count (1-4),
#   lengths (1-9; of lone events, of events sharing a row) and gaps between events (1-8), per modality;
#   count_tilt / length_tilt: per class, exponential tilts of those so each class's realised means are
#   its measured ones (speech in short bursts, instruments long); gap_tilt: the same for the gaps;
#   edge: P(first event starts at 0), P(last ends at 10), single-event rows (exclusive) then multi-event
#   rows (independent); visual_longer: of the AV pairs whose extents nest, the share seen longer than
#   heard; show_one: the chance a multi-label video with nothing visible gets one class shown;
#   outside_weak: per modality, events of a class not in the weak label (rate per bucket, Speech's share,
#   whole-clip share).
# Per-class shares and means are shrunk towards the all-class value by 5 pseudo-rows.
# >>> calibrated V2_LABELS
V2_LABELS: dict = {'labels_per_video': {'train': [0.4032, 0.5879, 0.0089, 0.0, 0.0],
                      'eval': [0.3332, 0.5495, 0.0941, 0.0211, 0.0022]},
 'speech_by_count': {'train': [0.0, 0.837, 0.764, 0.764, 0.764], 'eval': [0.015, 0.807, 0.741, 0.744, 0.75]},
 'class_counts': {'train': {'single': [0, 253, 215, 51, 16, 208, 132, 116, 218, 41, 17, 350, 228, 218, 388, 55, 361,
                                       130, 76, 439, 58, 36, 174, 213, 39],
                            'speech_pair': [4920, 366, 247, 668, 164, 135, 320, 102, 66, 26, 61, 497, 204, 571, 104,
                                            89, 43, 85, 312, 146, 227, 62, 251, 78, 96],
                            'pair': [0, 4, 46, 30, 6, 0, 1, 0, 11, 515, 91, 286, 3, 634, 3, 1, 35, 4, 17, 2, 205, 1,
                                     5, 0, 18],
                            'more': [68, 1, 20, 12, 6, 0, 2, 0, 4, 20, 17, 39, 2, 34, 0, 1, 6, 5, 6, 0, 13, 0, 0, 0,
                                     11]},
                  'eval': {'single': [9, 44, 14, 10, 5, 14, 7, 13, 33, 11, 2, 57, 53, 29, 58, 10, 50, 23, 21, 72, 5,
                                      6, 38, 26, 6],
                           'speech_pair': [820, 57, 21, 134, 42, 50, 40, 22, 9, 5, 9, 44, 37, 72, 32, 15, 11, 21,
                                           41, 21, 37, 13, 37, 30, 20],
                           'pair': [0, 10, 23, 10, 3, 0, 2, 0, 0, 78, 9, 73, 2, 92, 5, 0, 10, 0, 3, 4, 47, 0, 2, 0,
                                    19],
                           'more': [161, 23, 74, 15, 7, 1, 32, 1, 3, 28, 25, 91, 6, 39, 4, 7, 10, 0, 17, 6, 66, 0,
                                    0, 0, 84]}},
 'modality_type': {'single': [[0.485, 0.005, 0.001], [0.016, 0.022, 0.0], [0.357, 0.056, 0.0],
                              [0.186, 0.005, 0.001], [0.079, 0.107, 0.001], [0.147, 0.056, 0.0],
                              [0.066, 0.006, 0.001], [0.099, 0.004, 0.0], [0.021, 0.002, 0.0],
                              [0.424, 0.005, 0.001], [0.398, 0.01, 0.001], [0.287, 0.001, 0.0], [0.048, 0.036, 0.0],
                              [0.347, 0.002, 0.0], [0.044, 0.001, 0.0], [0.186, 0.005, 0.001], [0.269, 0.001, 0.0],
                              [0.064, 0.003, 0.0], [0.069, 0.041, 0.0], [0.101, 0.014, 0.0], [0.479, 0.007, 0.001],
                              [0.344, 0.007, 0.001], [0.181, 0.025, 0.023], [0.025, 0.002, 0.0],
                              [0.162, 0.007, 0.001]],
                   'speech_pair': [[0.772, 0.003, 0.012], [0.052, 0.115, 0.017], [0.471, 0.005, 0.04],
                                   [0.081, 0.094, 0.008], [0.09, 0.13, 0.022], [0.077, 0.002, 0.019],
                                   [0.139, 0.114, 0.001], [0.268, 0.005, 0.002], [0.16, 0.009, 0.004],
                                   [0.623, 0.013, 0.005], [0.302, 0.081, 0.075], [0.291, 0.003, 0.001],
                                   [0.125, 0.003, 0.001], [0.198, 0.015, 0.014], [0.114, 0.03, 0.001],
                                   [0.262, 0.006, 0.003], [0.327, 0.008, 0.003], [0.163, 0.043, 0.002],
                                   [0.114, 0.046, 0.001], [0.124, 0.005, 0.002], [0.077, 0.027, 0.001],
                                   [0.402, 0.007, 0.003], [0.172, 0.003, 0.001], [0.064, 0.032, 0.001],
                                   [0.329, 0.045, 0.002]],
                   'pair': [[0.191, 0.059, 0.003], [0.064, 0.42, 0.001], [0.498, 0.082, 0.0], [0.13, 0.22, 0.001],
                            [0.12, 0.412, 0.002], [0.191, 0.059, 0.003], [0.137, 0.042, 0.002],
                            [0.191, 0.059, 0.003], [0.191, 0.059, 0.003], [0.144, 0.016, 0.012],
                            [0.14, 0.021, 0.001], [0.281, 0.017, 0.0], [0.137, 0.185, 0.002], [0.144, 0.034, 0.0],
                            [0.096, 0.029, 0.001], [0.191, 0.059, 0.003], [0.13, 0.02, 0.001],
                            [0.191, 0.059, 0.003], [0.12, 0.162, 0.002], [0.106, 0.033, 0.001], [0.153, 0.044, 0.0],
                            [0.191, 0.059, 0.003], [0.28, 0.042, 0.002], [0.191, 0.059, 0.003],
                            [0.29, 0.012, 0.001]],
                   'more': [[0.679, 0.003, 0.055], [0.099, 0.481, 0.005], [0.592, 0.031, 0.04],
                            [0.138, 0.274, 0.007], [0.147, 0.456, 0.011], [0.294, 0.079, 0.023],
                            [0.048, 0.256, 0.058], [0.294, 0.079, 0.023], [0.346, 0.059, 0.017],
                            [0.114, 0.135, 0.004], [0.159, 0.049, 0.005], [0.341, 0.005, 0.033],
                            [0.342, 0.225, 0.012], [0.086, 0.056, 0.003], [0.418, 0.052, 0.015],
                            [0.314, 0.039, 0.011], [0.318, 0.098, 0.009], [0.353, 0.094, 0.027],
                            [0.08, 0.158, 0.006], [0.251, 0.134, 0.012], [0.039, 0.19, 0.002],
                            [0.353, 0.094, 0.027], [0.353, 0.094, 0.027], [0.353, 0.094, 0.027],
                            [0.458, 0.061, 0.024]]},
 'full_clip': {'single': {'audio': [0.392, 0.906, 0.527, 0.366, 0.61, 0.861, 0.291, 0.638, 0.75, 0.781, 0.641,
                                    0.685, 0.473, 0.75, 0.849, 0.499, 0.863, 0.732, 0.82, 0.888, 0.749, 0.499,
                                    0.378, 0.532, 0.772],
                          'visual': [0.608, 0.854, 0.759, 0.759, 0.786, 0.874, 0.322, 0.58, 0.654, 0.886, 0.772,
                                     0.597, 0.926, 0.864, 0.834, 0.528, 0.899, 0.699, 0.754, 0.812, 0.81, 0.733,
                                     0.653, 0.866, 0.786]},
               'speech_pair': {'audio': [0.136, 0.746, 0.532, 0.25, 0.033, 0.839, 0.133, 0.308, 0.379, 0.53, 0.275,
                                         0.231, 0.341, 0.417, 0.536, 0.165, 0.394, 0.412, 0.598, 0.589, 0.154,
                                         0.239, 0.388, 0.156, 0.221],
                               'visual': [0.127, 0.799, 0.596, 0.86, 0.771, 0.768, 0.12, 0.452, 0.71, 0.656, 0.813,
                                          0.242, 0.768, 0.697, 0.741, 0.408, 0.764, 0.914, 0.813, 0.678, 0.925,
                                          0.38, 0.485, 0.798, 0.313]},
               'pair': {'audio': [0.685, 0.714, 0.632, 0.452, 0.685, 0.685, 0.489, 0.685, 0.685, 0.808, 0.816,
                                  0.408, 0.571, 0.792, 0.742, 0.685, 0.762, 0.685, 0.775, 0.825, 0.828, 0.685,
                                  0.775, 0.685, 0.434],
                        'visual': [0.706, 0.769, 0.769, 0.752, 0.816, 0.706, 0.504, 0.706, 0.706, 0.81, 0.887,
                                   0.308, 0.79, 0.852, 0.653, 0.706, 0.681, 0.706, 0.566, 0.614, 0.79, 0.706, 0.755,
                                   0.706, 0.529]},
               'more': {'audio': [0.183, 0.585, 0.213, 0.119, 0.397, 0.463, 0.068, 0.463, 0.473, 0.682, 0.751,
                                  0.299, 0.42, 0.59, 0.42, 0.148, 0.627, 0.356, 0.62, 0.478, 0.686, 0.356, 0.356,
                                  0.356, 0.229],
                        'visual': [0.16, 0.42, 0.366, 0.755, 0.612, 0.556, 0.095, 0.39, 0.477, 0.688, 0.716, 0.247,
                                   0.482, 0.746, 0.477, 0.234, 0.528, 0.468, 0.47, 0.434, 0.805, 0.468, 0.468,
                                   0.468, 0.278]}},
 'events_per_row': {'audio': [0.6357, 0.2913, 0.0633, 0.0097], 'visual': [0.7108, 0.246, 0.0383, 0.0049]},
 'event_length': {'audio': [0.1544, 0.1544, 0.1241, 0.1232, 0.0844, 0.0852, 0.0945, 0.0827, 0.097],
                  'visual': [0.1096, 0.1374, 0.1374, 0.1322, 0.0835, 0.12, 0.0974, 0.1061, 0.0765]},
 'event_length_multi': {'audio': [0.3364, 0.2366, 0.1672, 0.111, 0.0648, 0.0364, 0.0304, 0.0172, 0.0],
                        'visual': [0.2992, 0.2303, 0.1654, 0.128, 0.0728, 0.0531, 0.0315, 0.0197, 0.0]},
 'count_tilt': {'audio': [0.531, 0.126, -0.127, 0.747, 1.066, -0.258, 0.265, 0.416, 0.247, 0.174, -0.999, 0.668,
                          0.943, 0.382, -1.496, 0.856, 0.252, 0.255, -1.723, -0.022, 1.209, 0.274, 1.756, -0.215,
                          -0.517],
                'visual': [-1.85, -0.333, -0.791, 0.668, -3.0, -1.511, 0.213, -1.701, 0.617, -0.584, -0.866, 0.414,
                           -3.0, -0.261, 2.479, 0.679, -0.532, 1.826, 0.743, 0.419, -3.0, -3.0, 1.018, 0.647,
                           -2.43]},
 'length_tilt': {'audio': [-0.159, 0.197, -0.068, -0.035, -0.418, -0.027, -0.259, 0.166, 0.136, 0.271, 0.043, 0.235,
                           0.032, 0.332, 0.109, -0.038, 0.201, 0.08, -0.006, 0.124, 0.318, -0.028, 0.508, 0.144,
                           -0.145],
                 'visual': [-0.294, 0.245, -0.027, 0.67, 1.401, -0.007, -0.431, 0.188, 0.21, 0.185, -0.12, 0.106,
                            0.665, -0.215, 0.278, -0.063, -0.174, 0.831, 0.259, 0.105, 0.116, 0.161, 0.437, 0.166,
                            -0.189]},
 'inner_gap': {'audio': [0.4976, 0.235, 0.1151, 0.0695, 0.0492, 0.0216, 0.0096, 0.0024],
               'visual': [0.4562, 0.2701, 0.1387, 0.0766, 0.0438, 0.0036, 0.0109, 0.0]},
 'edge': {'audio': [0.339, 0.381, 0.627, 0.655], 'visual': [0.419, 0.355, 0.679, 0.675]},
 'visual_longer': 0.629,
 'outside_weak': {'audio': {'rate': [0.0487, 0.0146, 0.0204, 0.023], 'speech': 0.373, 'full': 0.255},
                  'visual': {'rate': [0.0292, 0.0195, 0.0255, 0.0046], 'speech': 0.15, 'full': 0.4}},
 'show_one': 0.179,
 'gap_tilt': {'audio': 0.184, 'visual': -0.069}}
# <<< calibrated V2_LABELS
# Feature model, set a priori (physical reasons in WorldV2's docstring); not searched.
V2_FEATURES: dict = {
    "amplitude": (0.3, 1.0),  # loudness / size of an event, per (video, class)
    "evidence_drop": {"audio": 0.15, "visual": 0.25},  # share of an event's segments with little evidence ...
    "drop_gain": 0.2,  # ... and the evidence left in them
    "scene": {"audio": 0.8, "visual": 1.5},  # per-video background norm: a frame is mostly scene
    "noise": {"audio": 0.8, "visual": 0.8},  # per-segment noise norm ...
    "noise_rho": 0.3,  # ... with little correlation from one second to the next
    "mean_norm": 1.0,  # dataset-wide mean direction per modality (the feature cone) ...
    "domain_mean_cos": 0.5,  # ... which differs between UnAV and LLP (and AVE) by this cosine
    "concept_shift": 0.35,  # LLP / AVE concept = its UnAV partner's moved by this much (as in version 1)
    "visual_salience": {"low": 0.45, "mid": 0.7, "high": 1.0},  # see visual_salience_group
    "salience_jitter": 0.15,  # per-class factor uniform in 1 +- this
    "alignment": {"clap": (0.55, 0.85), "clip": (0.2, 0.5)},  # cos(text direction, concept), per class
    "prompt_shift": 0.3,  # LLP / AVE text direction = its UnAV partner's moved by this much
    "text_noise": 0.3,  # noise in the embedding space of a text embedding
    "text_gap": 1.0,  # norm of the direction every text embedding of a model shares (the modality gap)
    "embed_noise": 0.5,  # isotropic noise in a feature's embedding space (as in version 1)
}
# The calibration targets. Zero-shot: VALOR's CLIP/CLAP pseudo labels, UWAV Table 3 (method.md §12.3), LLP
# test, segment level. Weak label everywhere: the real test CSVs (evaluation.md §13; the script recomputes it).
V2_TARGETS: dict = {
    "zero_shot": {"seg_a": 80.5, "seg_v": 61.7, "seg_av": 55.7, "seg_type": 66.0, "seg_event": 74.6},
    "weak_all": {"seg_a": 76.12, "seg_v": 60.35, "seg_av": 52.61, "seg_type": 63.03, "seg_event": 71.73},
    "tolerance": 3.0,
}
# Evidence strengths, searched by bench/calibrate_synthetic.py --fit: zero-shot pseudo labels on LLP-size
# synthetic test (θ fitted on synthetic val, mean over world seeds 0-4) meet VALOR's Seg A (audio) and
# Seg V + Seg AV (visual, the sum of the two errors zero).
# >>> calibrated V2_STRENGTH
V2_STRENGTH: dict = {'audio': 1.0499, 'visual': 1.0865}
# <<< calibrated V2_STRENGTH

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
_CHUNK = 256  # videos per generated feature block: bounds memory at any dataset size


# ---- random streams ------------------------------------------------------------------------------


def _rng(seed: int, *names: str) -> np.random.Generator:
    """An independent stream per named array, so writing fewer layouts changes no other file."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---- the world: concepts, projections, text embeddings ---------------------------------------------


class World:
    """Version 1: everything fixed for a seed. Concepts are unit rows [C, K]; projections are [K, D]."""

    version = 1
    DIMS = {
        "clip": 768,
        "clap": 512,
        "vggish": 128,
        "res152": 2048,
        "r2plus1d_18": 512,
        "clap_tok0": 768,
        "clap_tok1": 768,
    }

    def __init__(self, seed: int):
        rng = _rng(seed, "world")
        unav = _unit(rng.standard_normal((len(UNAV_CLASSES), LATENT)))
        for a, b in CONFUSABLE:
            ia, ib = UNAV_CLASSES.index(a), UNAV_CLASSES.index(b)
            unav[ib] = _unit(0.6 * unav[ia] + 0.8 * unav[ib])
        mapped = [UNAV_CLASSES.index(LLP_TO_UNAV[c]) for c in LLP_CLASSES]
        # A small domain shift between the datasets: same concept, slightly moved.
        llp = _unit(unav[mapped] + 0.35 * _unit(rng.standard_normal((len(LLP_CLASSES), LATENT))))
        self.concepts = {"llp": llp, "unav": unav}
        # Entries N(0, 1/D): a projection keeps latent norms and inner products on average.
        self.proj = {k: rng.standard_normal((LATENT, d)) / np.sqrt(d) for k, d in self.DIMS.items()}
        self.mean = {m: MEAN_NORM * _unit(rng.standard_normal(LATENT)) for m in ("audio", "visual")}
        self.text = {}
        for dataset, concepts in self.concepts.items():
            for model in ("clip", "clap"):
                d = self.DIMS[model]
                # Concept-space perturbation -> class-specific biases; output noise -> weaker scores.
                moved = _unit(concepts + TEXT_SHIFT * _unit(rng.standard_normal(concepts.shape)))
                noise = rng.standard_normal((len(concepts), d)) / np.sqrt(d)
                text = moved @ self.proj[model] + TEXT_NOISE * noise
                self.text[dataset, model] = _unit(text).astype(np.float32)


def _latent(
    rng: np.random.Generator, active: np.ndarray, concepts: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """Segment latents [N, T, K] from active classes bool [N, T, C].

    Sum of the active concepts (amplitude per video and class: some events are faint) + a dataset-wide
    mean direction `mean` [K] (gives per-class score offsets, as real CLIP/CLAP scores have) + a scene
    vector per video + AR(1) noise over time.
    """
    n, t, c = active.shape
    amp = rng.uniform(AMPLITUDE[0], AMPLITUDE[1], size=(n, 1, c))
    content = (active * amp) @ concepts
    scene = SCENE * rng.standard_normal((n, 1, LATENT)) / np.sqrt(LATENT)
    rho, std = AR_RHO, AR_NOISE / np.sqrt(LATENT)
    shocks = rng.standard_normal((n, t, LATENT)) * std
    noise = np.empty_like(shocks)
    noise[:, 0] = shocks[:, 0]
    for step in range(1, t):  # T <= 75 steps; each is vectorised over videos
        noise[:, step] = rho * noise[:, step - 1] + np.sqrt(1 - rho**2) * shocks[:, step]
    return content + mean + scene + noise


def _embed(
    rng: np.random.Generator, z: np.ndarray, proj: np.ndarray, noise: float = EMBED_NOISE
) -> np.ndarray:
    """CLIP/CLAP-like unit embeddings float32 [..., D] of latents [..., K]."""
    d = proj.shape[1]
    x = z.astype(np.float32) @ proj.astype(np.float32)
    x += (noise / np.sqrt(d)) * rng.standard_normal(x.shape, dtype=np.float32)
    return _unit(x)


def _cnn(rng: np.random.Generator, z: np.ndarray, proj: np.ndarray, relu: bool) -> np.ndarray:
    """HAN-layout CNN-like features float32 [..., D]: unit-scale activations (non-negative if relu)."""
    d = proj.shape[1]
    x = z.astype(np.float32) @ (proj * np.sqrt(d)).astype(np.float32)
    x += 0.5 * rng.standard_normal(x.shape, dtype=np.float32)
    return np.maximum(x, 0, out=x) if relu else x


# ---- ids and filenames -------------------------------------------------------------------------


def _youtube_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct 11-char ids over [A-Za-z0-9_-] (so some contain '_' or start with '-')."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        codes = _ALPHABET[rng.integers(0, len(_ALPHABET), size=(n - len(ids), 11))]
        for name in codes.view("S11").ravel():
            name = name.decode()
            if name not in seen:
                seen.add(name)
                ids.append(name)
    return ids


def _force_quirks(ids: list[str], start: int, n: int) -> None:
    """Make sure a split has an id starting with '-' and one containing '_' (parsers must cope)."""
    if n >= 1 and not any(i.startswith("-") for i in ids[start : start + n]):
        candidate = "-" + ids[start][1:]
        if candidate not in ids:
            ids[start] = candidate
    if n >= 2 and not any("_" in i for i in ids[start : start + n]):
        candidate = ids[start + 1][:4] + "_" + ids[start + 1][5:]
        if candidate not in ids:
            ids[start + 1] = candidate


def _filenames(rng: np.random.Generator, ids: Sequence[str], decimals: int) -> list[str]:
    """`<id>_<start>_<start+10>`; `decimals` randomly chosen entries get a one-decimal start."""
    starts = rng.integers(0, 591, size=len(ids)).astype(np.float64)
    pick = rng.permutation(len(ids))[:decimals]
    starts[pick] += rng.integers(1, 10, size=len(pick)) / 10
    names = []
    for vid, s in zip(ids, starts, strict=True):
        fmt = "{:.1f}" if s != int(s) else "{:.0f}"
        names.append(f"{vid}_{fmt.format(s)}_{fmt.format(s + 10)}")
    return names


# ---- LLP labels ----------------------------------------------------------------------------------


def _topk_rows(rng: np.random.Generator, weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """bool [N, C]: row n holds counts[n] distinct classes drawn without replacement ~ weights (Gumbel)."""
    keys = np.log(weights)[None, :] + rng.gumbel(size=(len(counts), len(weights)))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return rank < counts[:, None]


def _intervals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n event extents (onset, offset) in whole segments, 1..10 long; about a third span the clip."""
    onset = rng.integers(0, SEGMENTS, size=n)
    offset = onset + 1 + (rng.random(n) * (SEGMENTS - onset)).astype(np.int64)
    full = rng.random(n) < 0.35
    return np.where(full, 0, onset), np.where(full, SEGMENTS, offset)


class LLPLabels:
    """Weak bool [N, 25], dense gt_audio / gt_visual bool [N, 10, 25] and the dense CSV rows.

    rows[m]: int arrays (video, class, onset, offset) in write order; they OR-merge to gt[m].
    """

    def __init__(self, rng: np.random.Generator, n: int, split: str):
        c = len(LLP_CLASSES)
        probs = LABELS_PER_VIDEO["train" if split == "train" else "eval"]
        count = rng.choice(np.arange(1, 5), size=n, p=probs)
        speech = rng.random(n) < SPEECH_RATE
        others = _topk_rows(rng, TRAIN_CLASS_COUNTS[1:], count - speech)
        weak = np.concatenate([speech[:, None], others], axis=1)

        vid, cls = np.nonzero(weak)
        audio_only = np.where(cls == 0, AUDIO_ONLY["Speech"], AUDIO_ONLY["default"])
        u = rng.random(len(vid))
        has_a = u >= VISUAL_ONLY
        has_v = (u < VISUAL_ONLY) | (u >= VISUAL_ONLY + audio_only)
        # Events per (video, class, modality): one, sometimes a second one (may overlap or touch).
        second = rng.random((len(vid), 2)) < 0.25
        on_a, off_a = _intervals(rng, 2 * len(vid))
        on_v, off_v = _intervals(rng, 2 * len(vid))
        synced = np.repeat(rng.random(len(vid)) < 0.5, 2)  # visual extent = audio extent
        on_v, off_v = np.where(synced, on_a, on_v), np.where(synced, off_a, off_v)
        keep = np.stack([np.ones(len(vid), bool), second[:, 0]], 1).ravel()
        keep_v = np.stack([np.ones(len(vid), bool), second[:, 1]], 1).ravel()
        pair_vid, pair_cls = np.repeat(vid, 2), np.repeat(cls, 2)
        rows = {
            "audio": self._rows(rng, pair_vid, pair_cls, on_a, off_a, keep & np.repeat(has_a, 2)),
            "visual": self._rows(rng, pair_vid, pair_cls, on_v, off_v, keep_v & np.repeat(has_v, 2)),
        }
        # A few videos have a short audio event of a class missing from the weak labels (as in LLP).
        extra = np.nonzero(rng.random(n) < 0.02)[0]
        if len(extra):
            extra_cls = np.argmax(np.where(weak[extra], -1.0, rng.random((len(extra), c))), axis=1)
            on = rng.integers(0, SEGMENTS - 2, size=len(extra))
            length = rng.integers(1, 3, size=len(extra))
            rows["audio"] = self._merge(rows["audio"], (extra, extra_cls, on, on + length))
        self.weak, self.rows = weak, rows
        self.gt = {m: render(r, n) for m, r in rows.items()}

    @staticmethod
    def _rows(rng, vid, cls, on, off, keep):
        vid, cls, on, off = vid[keep], cls[keep], on[keep], off[keep]
        # Some events are written as two touching rows (OR-merge makes them one event again).
        split = ((off - on) >= 2) & (rng.random(len(vid)) < 0.06)
        cut = on + 1 + (rng.random(len(vid)) * np.maximum(off - on - 1, 1)).astype(np.int64)
        first = (vid, cls, on, np.where(split, cut, off))
        tail = (vid[split], cls[split], cut[split], off[split])
        return LLPLabels._merge(first, tail)

    @staticmethod
    def _merge(a, b):
        vid, cls, on, off = (np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
        order = np.lexsort((off, on, cls, vid))
        return vid[order], cls[order], on[order], off[order]


def render(rows, n: int) -> np.ndarray:
    """Dense bool [N, 10, 25] from rows (video, class, onset, offset): half-open, OR-merged."""
    vid, cls, on, off = rows
    gt = np.zeros((n, SEGMENTS, len(LLP_CLASSES)), dtype=bool)
    t = np.arange(SEGMENTS)
    mask = (t >= on[:, None]) & (t < off[:, None])
    np.logical_or.at(gt, (vid[:, None], t[None, :], cls[:, None]), mask)
    return gt


# ---- world version 2 -------------------------------------------------------------------------------


def visual_salience_group(unav_class: str) -> str:
    """How much of a single frame an event of this UnAV class occupies: low, mid or high (a priori).

    low: the sound's source is a small or absent part of the frame (a speaking or singing person is a face
    among the scene, the speaker often off screen; bells, sirens, alarms, horns; weather and wind);
    mid: instruments and engines / machines (visible, but small, partly occluded, alike across classes);
    high: everything else (animals, babies, sports, crowds, water): the frame is about the event.
    """
    low = ("speaking", "singing", "choir", "whisper", "laughing", "shouting", "cough", "sneez", "burping",
           "nose blowing", "sobbing", "whistling", "beat boxing", "battle cry", "siren", "bell", "ringing",
           "honking", "horning", "wind noise", "thunder", "raining", "slurping", "eating")
    mid = ("playing", "orchestra", "car ", "motorcycle", "engine", "auto racing", "buses", "airplane",
           "helicopter", "train", "chainsaw", "lawn", "vacuum", "hair dryer", "machine gun", "typing",
           "hammering", "skidding", "fireworks", "sailing")
    sports = ("tennis", "badminton", "volleyball", "basketball", "bowling")
    if any(k in unav_class for k in low):
        return "low"
    if any(k in unav_class for k in sports):
        return "high"
    if any(k in unav_class for k in mid):
        return "mid"
    return "high"


@dataclass(frozen=True, eq=False)
class ClassSet:
    """One dataset's classes in a version-2 world.

    concepts [C, K] unit; salience: modality -> [C] (how strongly an active event shows in that modality's
    features); direction: model -> [C, K] unit latent direction its text embedding encodes; text: model ->
    [C, D] unit float32 text embeddings (the files' event_feats).
    """

    concepts: np.ndarray
    salience: dict[str, np.ndarray]
    direction: dict[str, np.ndarray]
    text: dict[str, np.ndarray]


class WorldV2:
    """Version 2: everything fixed for a seed, with the mechanisms real CLIP / CLAP features have.

    - Per-segment evidence weaker than the event: an event's contribution to a segment is its per-video
      amplitude times the class's salience times a per-segment gain (a share `evidence_drop` of an event's
      seconds carry only `drop_gain` of it: occlusion, a camera pan, the dog between barks), under a
      per-video scene vector (a frame is mostly scene; scenes differ between videos) and per-second noise
      with little temporal correlation. Events are multi-second (the label model), so a model that sees a
      video's other seconds can read each second against the video's own baseline; a class-wise threshold
      on one second's score cannot (tests/test_synthetic.py measures the difference).
    - Class-dependent visibility: visual salience by visual_salience_group (speech, alarms and weather
      barely show in a frame; instruments and engines partly; animals and sports fully), audio salience
      near 1 for all; both with a per-class factor.
    - Modality gap and class-dependent alignment: a class's text embedding encodes a latent direction
      at cosine `alignment` (uniform per class in a model-specific range: CLAP reads sounds better than
      CLIP reads LLP's sound-event prompts) from its feature concept, and every text embedding of a model
      shares a common direction (text and feature embeddings sit in separate cones).
    - Distribution shift: each dataset (UnAV, LLP, AVE) has its own mean feature direction (cosine
      `domain_mean_cos` to UnAV's); LLP / AVE concepts and text directions are their UnAV partner's moved
      by `concept_shift` / `prompt_shift` (same text encoder, other prompt words), so what a generator
      learns on UnAV transfers, imperfectly.
    The strengths of the event evidence per modality (V2_STRENGTH) are the calibrated values.
    """

    version = 2
    DIMS = World.DIMS

    def __init__(self, seed: int, strength: dict[str, float] | None = None, features: dict | None = None):
        self.seed = seed
        self.strength = dict(V2_STRENGTH if strength is None else strength)
        self.features = dict(V2_FEATURES if features is None else features)
        f = self.features
        rng = _rng(seed, "world-v2")
        unav = _unit(rng.standard_normal((len(UNAV_CLASSES), LATENT)))
        for a, b in CONFUSABLE:
            ia, ib = UNAV_CLASSES.index(a), UNAV_CLASSES.index(b)
            unav[ib] = _unit(0.6 * unav[ia] + 0.8 * unav[ib])
        self.proj = {k: rng.standard_normal((LATENT, d)) / np.sqrt(d) for k, d in self.DIMS.items()}
        self.gap = {m: _unit(rng.standard_normal(self.DIMS[m])) for m in ("clip", "clap")}
        self._mean_base = {m: _unit(rng.standard_normal(LATENT)) for m in ("audio", "visual")}
        self._means: dict[tuple[str, str], np.ndarray] = {}
        jitter = f["salience_jitter"]
        level = np.array([f["visual_salience"][visual_salience_group(c)] for c in UNAV_CLASSES])
        salience = {
            "audio": rng.uniform(1 - jitter, 1 + jitter, len(UNAV_CLASSES)),
            "visual": level * rng.uniform(1 - jitter, 1 + jitter, len(UNAV_CLASSES)),
        }
        direction = {}
        for model in ("clip", "clap"):
            lo, hi = f["alignment"][model]
            alpha = rng.uniform(lo, hi, size=(len(UNAV_CLASSES), 1))
            other = rng.standard_normal(unav.shape)
            other = _unit(other - (other * unav).sum(1, keepdims=True) * unav)  # orthogonal to the concept
            direction[model] = alpha * unav + np.sqrt(1 - alpha**2) * other
        self.classes = {"unav": ClassSet(unav, salience, direction, self._texts(rng, direction))}
        mapped = [UNAV_CLASSES.index(LLP_TO_UNAV[c]) for c in LLP_CLASSES]
        self.classes["llp"] = self.derive(mapped, _rng(seed, "world-v2", "llp"))
        self.concepts = {k: v.concepts for k, v in self.classes.items()}
        self.text = {(k, m): v.text[m] for k, v in self.classes.items() for m in ("clip", "clap")}

    def _texts(self, rng: np.random.Generator, direction: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for model, d in direction.items():
            dim = self.DIMS[model]
            x = d @ self.proj[model] + self.features["text_noise"] * rng.standard_normal((len(d), dim)) / np.sqrt(dim)
            out[model] = _unit(_unit(x) + self.features["text_gap"] * self.gap[model]).astype(np.float32)
        return out

    def derive(self, mapped: Sequence[int], rng: np.random.Generator) -> ClassSet:
        """Classes of another dataset, each a moved copy of the UnAV class `mapped[i]` (LLP, AVE)."""
        unav = self.classes["unav"]
        f = self.features
        concepts = _unit(unav.concepts[mapped] + f["concept_shift"] * _unit(rng.standard_normal((len(mapped), LATENT))))
        direction = {
            m: _unit(unav.direction[m][mapped] + f["prompt_shift"] * _unit(rng.standard_normal((len(mapped), LATENT))))
            for m in ("clip", "clap")
        }
        salience = {m: s[mapped] for m, s in unav.salience.items()}
        return ClassSet(concepts, salience, direction, self._texts(rng, direction))

    def mean(self, domain: str, modality: str) -> np.ndarray:
        """The dataset-wide mean latent [K] of a domain (unav, llp, ave) and modality."""
        key = (domain, modality)
        if key not in self._means:
            base = self._mean_base[modality]
            if domain == "unav":
                direction = base
            else:
                other = _unit(_rng(self.seed, "world-v2", "domain", domain, modality).standard_normal(LATENT))
                c = self.features["domain_mean_cos"]
                direction = _unit(c * base + np.sqrt(1 - c**2) * _unit(other - (other @ base) * base))
            self._means[key] = self.features["mean_norm"] * direction
        return self._means[key]

    def latent(self, rng: np.random.Generator, active: np.ndarray, classes: ClassSet, modality: str,
               domain: str) -> np.ndarray:
        """Segment latents [N, T, K] from active classes bool [N, T, C] (class docstring)."""
        f = self.features
        n, t, c = active.shape
        amp = rng.uniform(*f["amplitude"], size=(n, 1, c))
        drop = rng.random((n, t, c)) < f["evidence_drop"][modality]
        weight = active * amp * np.where(drop, f["drop_gain"], 1.0) * classes.salience[modality]
        content = self.strength[modality] * (weight @ classes.concepts)
        scene = f["scene"][modality] * rng.standard_normal((n, 1, LATENT)) / np.sqrt(LATENT)
        return content + self.mean(domain, modality) + scene + _ar_noise(rng, n, t, f["noise"][modality],
                                                                          f["noise_rho"])


def _ar_noise(rng: np.random.Generator, n: int, t: int, norm: float, rho: float) -> np.ndarray:
    """Stationary AR(1) noise [n, t, K] of expected norm `norm` and lag-1 correlation `rho`."""
    shocks = rng.standard_normal((n, t, LATENT)) * (norm / np.sqrt(LATENT))
    noise = np.empty_like(shocks)
    noise[:, 0] = shocks[:, 0]
    for step in range(1, t):
        noise[:, step] = rho * noise[:, step - 1] + np.sqrt(1 - rho**2) * shocks[:, step]
    return noise


def make_world(seed: int, version: int = GENERATOR_VERSION) -> World | WorldV2:
    if version == 1:
        return World(seed)
    if version == 2:
        return WorldV2(seed)
    raise UwavError(f"synthetic world version {version}; expected one of {', '.join(map(str, WORLD_VERSIONS))}")


def _tilted(rng: np.random.Generator, p, tilt: np.ndarray, size: int) -> np.ndarray:
    """int [R, size] draws of 1..len(p) from the distribution p tilted per row: p(x) ~ p(x) exp(tilt[r] x)."""
    values = np.arange(1, len(p) + 1)
    w = _normalised(p)[None, :] * np.exp(tilt[:, None] * values[None, :])
    cdf = np.cumsum(w / w.sum(1, keepdims=True), axis=1)
    return 1 + (rng.random((len(tilt), size))[:, :, None] > cdf[:, None, :-1]).sum(-1)


def _event_rows(rng: np.random.Generator, full: np.ndarray, modality: str, params: dict,
                cls: np.ndarray | None = None) -> np.ndarray:
    """bool [R, 10] event rows: the whole clip with probability full[r], else 1-4 separated events.

    A partial row is laid out from its measured parts: the event count and lengths (single events and
    events sharing a row differ; for a row of class cls[r] both are tilted to the class's measured means:
    speech comes in several short bursts, a cello plays on) and the gaps between events (mostly short:
    one sound paused). The first / last event is pinned to the clip edge with the measured probabilities
    (an event that began before the clip or outlasts it); an edge that is not pinned keeps at least one
    free segment, so the measured edge shares are the model's. What does not fit in ten segments drops
    the last events; the free segments left go to the free edges (uniformly at random), or, with both
    edges pinned, lengthen the first and last events (cut by the clip, their lengths are open anyway).
    """
    r = len(full)
    is_full = rng.random(r) < full
    count_tilt = np.zeros(r) if cls is None else np.asarray(params["count_tilt"][modality])[cls]
    length_tilt = np.zeros(r) if cls is None else np.asarray(params["length_tilt"][modality])[cls]
    k = _tilted(rng, params["events_per_row"][modality], count_tilt, 1)[:, 0]
    single = _tilted(rng, params["event_length"][modality], length_tilt, 4)
    multi = _tilted(rng, params["event_length_multi"][modality], length_tilt, 4)
    length = np.where(k[:, None] == 1, single, multi)
    gap = _tilted(rng, params["inner_gap"][modality], np.full(r, params["gap_tilt"][modality]), 3)  # after event j
    s1, e1, s2, e2 = params["edge"][modality]
    u = rng.random((r, 2))
    one = k == 1
    pin_start = np.where(one, u[:, 0] < s1, u[:, 0] < s2)
    pin_end = np.where(one, (u[:, 0] >= s1) & (u[:, 0] < s1 + e1), u[:, 1] < e2)
    reach = np.cumsum(length, axis=1) + np.concatenate([np.zeros((r, 1), np.int64), np.cumsum(gap, axis=1)], 1)

    def need(k):  # segments the first k events and their inner gaps take
        return np.take_along_axis(reach, k[:, None] - 1, 1)[:, 0]

    for _ in range(3):
        k = np.where((need(k) + ~pin_start + ~pin_end > SEGMENTS) & (k > 1), k - 1, k)
    one = k == 1
    # A lone event too long for a free edge runs into the clip edge (start first, then end).
    pin_start |= need(k) + ~pin_start + ~pin_end > SEGMENTS
    pin_end |= need(k) + ~pin_start + ~pin_end > SEGMENTS
    slack = SEGMENTS - need(k) - ~pin_start - ~pin_end
    # Slack to the free edges: all of it to the one free edge, or a uniform split between two.
    split = np.floor(rng.random(r) * (slack + 1)).astype(np.int64)
    lead = np.where(pin_start, 0, 1 + np.where(pin_end, slack, split))
    stretch = pin_start & pin_end  # both edges pinned (k >= 2): the edge events take the slack
    first_extra = np.where(stretch, split, 0)
    length = length.copy()
    length[:, 0] += first_extra
    last = k - 1
    np.put_along_axis(length, last[:, None], np.take_along_axis(length, last[:, None], 1)
                      + np.where(stretch, slack - split, 0)[:, None], 1)
    onset = lead[:, None] + np.concatenate(
        [np.zeros((r, 1), np.int64), np.cumsum(length[:, :3] + gap, axis=1)], 1)  # [R, 4]
    t = np.arange(SEGMENTS)[None, None, :]
    present = np.arange(4)[None, :, None] < k[:, None, None]
    inside = (t >= onset[:, :, None]) & (t < (onset + length)[:, :, None]) & present
    return inside.any(1) | is_full[:, None]


def _normalised(p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p / p.sum()


def _rows_from_events(rng: np.random.Generator, vid: np.ndarray, cls: np.ndarray, events: np.ndarray):
    """Dense CSV rows (video, class, onset, offset) of event rows bool [R, 10], one row per run."""
    keep = events.any(1)
    vid, cls, events = vid[keep], cls[keep], events[keep]
    padded = np.zeros((len(events), SEGMENTS + 2), dtype=np.int8)
    padded[:, 1:-1] = events
    d = np.diff(padded, axis=1)
    row, on = np.nonzero(d == 1)
    _, off = np.nonzero(d == -1)
    return LLPLabels._rows(rng, vid[row], cls[row], on, off, np.ones(len(row), dtype=bool))


class LLPLabelsV2:
    """Version-2 labels: the same attributes as LLPLabels, every rate measured from the real LLP (V2_LABELS).

    Videos with one label and videos with more differ in the real data (a lone label is rarely Speech,
    more often a whole-clip event, heard and seen), so class frequencies, modality shares and full-clip
    shares are drawn per bucket of label count (LABEL_BUCKETS).
    """

    def __init__(self, rng: np.random.Generator, n: int, split: str, params: dict | None = None):
        p = V2_LABELS if params is None else params
        kind = "train" if split == "train" else "eval"
        c = len(LLP_CLASSES)
        count = rng.choice(np.arange(1, 6), size=n, p=_normalised(p["labels_per_video"][kind]))
        speech = rng.random(n) < np.asarray(p["speech_by_count"][kind])[count - 1]
        # The other classes, ~ their measured frequency in the bucket (+0.5: a class never seen in a bucket
        # stays possible), drawn without replacement (Gumbel top-k).
        bucket = label_bucket(count, speech)
        weights = np.stack([np.asarray(p["class_counts"][kind][b][1:], np.float64) + 0.5 for b in LABEL_BUCKETS])
        keys = np.log(weights)[bucket] + rng.gumbel(size=(n, c - 1))
        others = np.argsort(np.argsort(-keys, axis=1), axis=1) < (count - speech)[:, None]
        weak = np.concatenate([speech[:, None], others], axis=1)

        vid, cls = np.nonzero(weak)
        alone = count[vid] == 1  # the pair's video has only this label

        def per_bucket(table: dict, *key: str) -> np.ndarray:
            """The pair's class's entry of `table[bucket][*key]` for the bucket of its video."""
            def entry(b):
                x = table[b]
                for k in key:
                    x = x[k]
                return np.asarray(x)
            return np.stack([entry(b) for b in LABEL_BUCKETS])[bucket[vid], cls]

        shares = per_bucket(p["modality_type"])  # [R, 3] audio-only, visual-only, no event; the rest AV
        u = rng.random(len(vid))
        a_only = u < shares[:, 0]
        v_only = (u >= shares[:, 0]) & (u < shares[:, :2].sum(1))
        none = (u >= shares[:, :2].sum(1)) & (u < shares.sum(1))
        has_a, has_v = ~v_only & ~none, ~a_only & ~none
        # A video with several labels rarely shows none of them (off-screen speech goes with a visible main
        # event): where nothing is visible, one audio-only class (not Speech where there is another) becomes
        # audio-visual with probability show_one.
        hidden = ~np.bincount(vid, weights=has_v, minlength=n).astype(bool)
        pick = a_only & hidden[vid] & ~alone
        key = np.where(pick, rng.random(len(vid)) + (cls != 0), -1.0)
        best = np.full(n, -1.0)
        np.maximum.at(best, vid, key)
        chosen = pick & (key == best[vid]) & (rng.random(n) < p["show_one"])[vid]
        a_only &= ~chosen
        has_v |= chosen
        full = {m: per_bucket(p["full_clip"], m) for m in ("audio", "visual")}
        ev_a = _event_rows(rng, full["audio"], "audio", p, cls) & has_a[:, None]
        # Audio-visual pairs: the two extents nest (the same event seen and heard): seen longer than heard
        # (the union with a visual draw; probability visual_longer) or heard longer than seen (the
        # intersection; if it is empty, the audio extent). That alone gives the real share of pairs with one
        # extent in both (whole-clip rows are common). Visual-only pairs take the visual draw.
        draw = _event_rows(rng, full["visual"], "visual", p, cls)
        longer = rng.random(len(vid)) < p["visual_longer"]
        nested = np.where(longer[:, None], ev_a | draw, ev_a & draw)
        nested = np.where(nested.any(1, keepdims=True), nested, ev_a)
        ev_v = np.where((has_a & has_v)[:, None], nested, draw) & has_v[:, None]
        rows = {"audio": _rows_from_events(rng, vid, cls, ev_a), "visual": _rows_from_events(rng, vid, cls, ev_v)}
        # Events of a class missing from the weak labels (the dense annotators heard or saw more than the weak
        # labels list; often Speech, most often in one-label videos): a rate per bucket, Speech with its
        # measured share where the weak labels lack it, else a class ~ the pair bucket's frequencies.
        for m in ("audio", "visual"):
            out = p["outside_weak"][m]
            extra = np.nonzero(rng.random(n) < np.asarray(out["rate"])[bucket])[0]
            log_w = np.log(np.asarray(p["class_counts"]["eval"]["pair"], np.float64) + 0.5)
            log_w[0] = -np.inf  # Speech is drawn on its own share below
            keys = np.where(weak[extra], -np.inf, log_w + rng.gumbel(size=(len(extra), c)))
            speech_out = (rng.random(len(extra)) < out["speech"]) & ~weak[extra, 0]
            extra_cls = np.where(speech_out, 0, np.argmax(keys, axis=1))
            events = _event_rows(rng, np.full(len(extra), out["full"]), m, p)
            rows[m] = LLPLabels._merge(rows[m], _rows_from_events(rng, extra, extra_cls, events))
        self.weak, self.rows = weak, rows
        self.gt = {m: render(r, n) for m, r in rows.items()}


def llp_labels(rng: np.random.Generator, n: int, split: str, version: int = GENERATOR_VERSION):
    """The LLP label model of a world version: LLPLabels (1) or LLPLabelsV2 (2)."""
    return LLPLabels(rng, n, split) if version == 1 else LLPLabelsV2(rng, n, split)


def _weak_lines(filenames: Sequence[str], weak: np.ndarray) -> list[str]:
    return [
        f"{f}\t{','.join(LLP_CLASSES[c] for c in np.nonzero(w)[0])}"
        for f, w in zip(filenames, weak, strict=True)
    ]


def _dense_lines(filenames: Sequence[str], rows) -> list[str]:
    vid, cls, on, off = rows
    return [
        f"{filenames[v]}\t{a}\t{b}\t{LLP_CLASSES[c]}" for v, c, a, b in zip(vid, cls, on, off, strict=True)
    ]


# ---- UnAV labels -----------------------------------------------------------------------------------


def _unav_database(rng: np.random.Generator, ids: Sequence[str], subsets: Sequence[str]) -> dict:
    """The annotation JSON's "database": durations 10-60 s (int or float), 1-3 classes, AV events."""
    n = len(ids)
    duration = rng.uniform(10, 60, size=n)
    integral = rng.random(n) < 0.64
    duration = np.where(integral, np.round(duration), np.round(duration, 2))
    duration[rng.random(n) < 0.03] = 60
    classes = _topk_rows(rng, np.ones(len(UNAV_CLASSES)), rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1]))
    vid, cls = np.nonzero(classes)
    repeats = rng.choice([1, 2, 3], size=len(vid), p=[0.6, 0.3, 0.1])
    vid, cls = np.repeat(vid, repeats), np.repeat(cls, repeats)
    d = duration[vid]
    start = rng.uniform(0, d - 0.3)
    end = start + rng.uniform(0.21, 1.0, size=len(vid)) * (d - start)
    full = rng.random(len(vid)) < 0.25
    start, end = np.where(full, 0, start), np.where(full, d, end)
    whole = rng.random(len(vid)) < 0.3  # some events in whole seconds, as in the real file
    start = np.where(whole, np.floor(start), np.round(start, 3))
    end = np.minimum(np.where(whole, np.ceil(end), np.round(end, 3)), d)
    order = np.lexsort((cls, start, vid))
    events: list[list[dict]] = [[] for _ in range(n)]
    for i in order:
        s, e = start[i], end[i]
        events[vid[i]].append(
            {
                "segment": [int(s) if s == int(s) else float(s), int(e) if e == int(e) else float(e)],
                "label": UNAV_CLASSES[cls[i]],
                "label_id": int(cls[i]),
            }
        )
    database = {}
    for i in rng.permutation(n):  # subsets interleaved in the file, like the real one
        dur = duration[i]
        database[ids[i]] = {
            "duration": int(dur) if integral[i] or dur == 60 else float(dur),
            "annotations": events[i],
            "subset": subsets[i],
        }
    return database


# ---- writing ---------------------------------------------------------------------------------------


def _save_all(folder: Path, ids: Sequence[str], arrays: np.ndarray | Sequence[np.ndarray]) -> None:
    """One `<id>.npy` per video. Plain np.save: the whole tree is renamed into place atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid, arr in zip(ids, arrays, strict=True):
        np.save(folder / f"{vid}.npy", arr)


def _save_text(root: Path, world: World | WorldV2, dataset: str) -> None:
    """UWAV text embeddings: feats_{CLIP,CLAP}/event_feats/all_event_feats.npy [C, 768] / [C, 512]."""
    for model, folder in (("clip", "feats_CLIP"), ("clap", "feats_CLAP")):
        (root / folder / "event_feats").mkdir(parents=True, exist_ok=True)
        np.save(root / folder / "event_feats" / "all_event_feats.npy", world.text[dataset, model])


def _chunks(n: int, size: int = _CHUNK) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


def llp_latents(world: World | WorldV2, seed: int, split: str, labels) -> dict[str, np.ndarray]:
    """Segment latents [N, 10, K] per modality of one LLP split (the stream every layout is drawn from)."""
    zrng = _rng(seed, "llp-latent", split)
    if world.version == 1:
        return {m: _latent(zrng, labels.gt[m], world.concepts["llp"], world.mean[m]) for m in ("audio", "visual")}
    return {m: world.latent(zrng, labels.gt[m], world.classes["llp"], m, "llp") for m in ("audio", "visual")}


def _uwav_chunks(world: World | WorldV2, seed: int, split: str, z: dict[str, np.ndarray], kind: str,
                 modality: str) -> Iterator[tuple[slice, np.ndarray]]:
    """(videos, UWAV-layout segment features [n, 10, D]) per chunk, in the order the files are written."""
    rng = _rng(seed, "llp", split, "uwav", kind)
    for sl in _chunks(len(z[modality])):
        yield sl, _embed(rng, z[modality][sl], world.proj[kind])


UWAV_KINDS = (("clip", "visual", "feats_CLIP"), ("clap", "audio", "feats_CLAP"))


def llp_uwav_features(world: World | WorldV2, seed: int, split: str, labels) -> dict[str, np.ndarray]:
    """In memory, the CLIP [N, 10, 768] / CLAP [N, 10, 512] features `generate` writes for an LLP split."""
    z = llp_latents(world, seed, split, labels)
    return {kind: np.concatenate([x for _, x in _uwav_chunks(world, seed, split, z, kind, modality)])
            for kind, modality, _ in UWAV_KINDS}


def _write_llp_split(
    root: Path, world: World | WorldV2, seed: int, split: str, ids, labels, layouts
) -> None:
    z = llp_latents(world, seed, split, labels)
    n = len(ids)
    if "uwav" in layouts:
        for kind, modality, folder in UWAV_KINDS:
            for sl, feats in _uwav_chunks(world, seed, split, z, kind, modality):
                _save_all(root / folder / "segment_feats", ids[sl], feats)
    if "han" in layouts:
        rng = _rng(seed, "llp", split, "han")
        for sl in _chunks(n, 32):  # res152 is 655 KB per video
            _save_all(root / "feats/vggish", ids[sl], _cnn(rng, z["audio"][sl], world.proj["vggish"], False))
            # 8 frames per segment: the segment latent plus small per-frame jitter.
            frames = np.repeat(z["visual"][sl], 8, axis=1)
            frames = frames + 0.1 * rng.standard_normal(frames.shape) / np.sqrt(LATENT)
            _save_all(root / "feats/res152", ids[sl], _cnn(rng, frames, world.proj["res152"], True))
            _save_all(
                root / "feats/r2plus1d_18",
                ids[sl],
                _cnn(rng, z["visual"][sl], world.proj["r2plus1d_18"], True),
            )
    if "valor" in layouts:
        rng = _rng(seed, "llp", split, "valor")
        token_segment = (np.arange(32) * SEGMENTS) // 32  # token tau covers 0.3125 s
        for sl in _chunks(n):
            _save_all(root / "CLIP/features", ids[sl], _embed(rng, z["visual"][sl], world.proj["clip"]))
            zt = z["audio"][sl][:, token_segment]
            groups = [_cnn(rng, zt, world.proj[f"clap_tok{f}"], False) for f in (0, 1)]
            tokens = np.concatenate(groups, axis=1)  # row = f * 32 + tau
            tokens -= tokens.mean(axis=-1, keepdims=True)  # like the HTS-AT final LayerNorm output
            tokens /= tokens.std(axis=-1, keepdims=True)
            _save_all(root / "CLAP/features", ids[sl], tokens)
        # Pseudo labels: the dense GT with 10% of the segment decisions flipped, gated by weak labels.
        for kind, modality in (("CLIP", "visual"), ("CLAP", "audio")):
            flips = rng.random(labels.gt[modality].shape) < 0.1
            pseudo = (labels.gt[modality] ^ flips) & labels.weak[:, None, :]
            _save_all(root / kind / "segment_pseudo_labels", ids, pseudo.astype(np.int64))


def unav_latent(world: World | WorldV2, rng: np.random.Generator, active: np.ndarray, modality: str) -> np.ndarray:
    """UnAV latents [N, T, K] from active classes bool [N, T, 100] (native frames)."""
    if world.version == 1:
        return _latent(rng, active, world.concepts["unav"], world.mean[modality])
    return world.latent(rng, active, world.classes["unav"], modality, "unav")


def _write_unav(root: Path, world: World | WorldV2, seed: int, ids: list[str], subsets: list[str]) -> None:
    database = _unav_database(_rng(seed, "unav-labels"), ids, subsets)
    write_json(root / "unav100_annotations.json", {"version": "unav100", "database": database})
    videos = read_unav_json(root / "unav100_annotations.json")  # also proves the file parses
    _save_text(root, world, "unav")
    for subset in UNAV_SUBSETS:
        members = [v for v in videos.values() if v.subset == subset]
        for model, folder in (("clip", "feats_CLIP"), ("clap", "feats_CLAP")):
            rng = _rng(seed, "unav", subset, model)
            rate = UNAV_RATE[model]
            for sl in _chunks(len(members)):
                chunk = members[sl]
                seconds = np.array([v.seconds for v in chunk])
                labels = split_labels(chunk, int(seconds.max()))  # [n, Tmax, 100]
                native = np.maximum(1, np.round(np.array([v.duration for v in chunk]) * rate)).astype(int)
                frame = np.arange(native.max())
                # Native frame j shows the content of the second its centre falls in.
                sec = np.minimum(((frame + 0.5) / rate).astype(int)[None, :], seconds[:, None] - 1)
                active = np.take_along_axis(labels, sec[:, :, None], axis=1)
                z = unav_latent(world, rng, active, MODALITY[model])
                feats = _embed(rng, z, world.proj[model])
                _save_all(
                    root / folder / "segment_feats",
                    [v.id for v in chunk],
                    [f[:length] for f, length in zip(feats, native, strict=True)],
                )


def resolve_sizes(size: str, overrides: dict[str, int | None] | None = None, table=None,
                  required=LLP_SPLITS, dataset: str = "LLP") -> dict[str, int]:
    """Videos per split for a named size (`table`, default SIZES) with per-split overrides applied."""
    table = SIZES if table is None else table
    if size not in table:
        raise UwavError(f"unknown {dataset} size {size!r}; expected one of {', '.join(table)}")
    sizes = dict(table[size])
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in sizes:
            raise UwavError(f"unknown split {key!r} in size overrides; expected one of {', '.join(sizes)}")
        sizes[key] = int(value)
    for split in required:
        if sizes[split] < 1:
            raise UwavError(f"{dataset} {split} needs at least 1 video; found {sizes[split]}")
    for key, value in sizes.items():
        if value < 0:
            raise UwavError(f"{key} video count {value}; expected >= 0")
    return sizes


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UwavError(f"{out}: exists and is not a folder; expected a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UwavError(f"{out}: folder is not empty; expected a new or empty folder (or pass --force)")


def generate(
    out: str | os.PathLike,
    size: str = "tiny",
    seed: int = 0,
    layouts: Sequence[str] | None = None,
    overrides: dict[str, int | None] | None = None,
    force: bool = False,
    progress: bool = False,
    world_version: int = GENERATOR_VERSION,
) -> dict:
    """Write a synthetic dataset to `out` and return its manifest (also written as synthetic.json).

    world_version: 2 (default, calibrated to the real LLP) or 1 (the first world, byte for byte as before).

    out/llp/annotations/  AVVP_{train,val_pd,test_pd,dataset_full}.csv, AVVP_eval_{audio,visual}.csv
                          (val + test), synthetic_train_eval_{audio,visual}.csv (train dense GT)
    out/llp/...           the feature layouts asked for (han: feats/, valor: CLIP/ CLAP/,
                          uwav: feats_CLIP/ feats_CLAP/ incl. event_feats with the 25 LLP text embeddings)
    out/unav/             unav100_annotations.json, feats_CLIP/ feats_CLAP/ at native rates UNAV_RATE
    """
    out = Path(out)
    if seed < 0:
        raise UwavError(f"seed {seed}; expected a non-negative integer")
    check_world_version(world_version)
    sizes = resolve_sizes(size, overrides)
    layouts = tuple(DEFAULT_LAYOUTS[size] if layouts is None else layouts)
    unknown = [x for x in layouts if x not in LAYOUTS]
    if unknown or not layouts:
        raise UwavError(f"layouts {','.join(layouts) or '(none)'}; expected a subset of {','.join(LAYOUTS)}")
    layouts = tuple(x for x in LAYOUTS if x in layouts)
    _prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp): the finished tree gets the user's umask permissions, not 0700.
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        manifest = _generate_into(staging, seed, size, sizes, layouts, progress, world_version)
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _replace_dir(staging: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "x")
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_world_version(version: int) -> None:
    if version not in WORLD_VERSIONS:
        raise UwavError(f"synthetic world version {version}; expected one of {', '.join(map(str, WORLD_VERSIONS))}")


def calibration_record() -> dict:
    """What synthetic.json records about world version 2: every parameter and where it came from."""
    return {
        "script": "bench/calibrate_synthetic.py",
        "targets": V2_TARGETS,
        "labels": {"source": "measured from the real LLP CSVs (train weak; val + test weak and dense GT)",
                   "values": V2_LABELS},
        "features": {"source": "set a priori (uwav.data.synthetic.WorldV2 docstring)", "values": V2_FEATURES},
        "strength": {"source": "searched: zero-shot Seg A / Seg V on LLP-scale synthetic test (θ fitted on "
                               "val, world seeds 0-2) against the zero-shot targets", "values": V2_STRENGTH},
    }


def _generate_into(root: Path, seed: int, size: str, sizes: dict[str, int], layouts, progress: bool,
                   version: int = GENERATOR_VERSION) -> dict:
    world = make_world(seed, version)
    n_llp = [sizes[s] for s in LLP_SPLITS]
    n_unav = [sizes[f"unav_{s}"] for s in UNAV_SUBSETS]
    ids = _youtube_ids(_rng(seed, "ids"), sum(n_llp) + sum(n_unav))
    offsets = np.cumsum([0, *n_llp])
    for k in range(3):
        _force_quirks(ids, int(offsets[k]), n_llp[k])

    llp_root, ann = root / "llp", root / "llp" / "annotations"
    ann.mkdir(parents=True)
    weak_lines, eval_lines = [], {"audio": [], "visual": []}
    steps = tqdm(total=3 + (1 if sum(n_unav) else 0), desc="synth", disable=not progress, unit="split")
    for k, split in enumerate(LLP_SPLITS):
        split_ids = ids[offsets[k] : offsets[k + 1]]
        names = _filenames(
            _rng(seed, "llp-names", split),
            split_ids,
            max(1, len(split_ids) // 2000) if split == "train" else 0,
        )
        labels = llp_labels(_rng(seed, "llp-labels", split), len(split_ids), split, version)
        lines = _weak_lines(names, labels.weak)
        weak_lines += lines
        write_text(ann / WEAK_CSV[split], "filename\tevent_labels\n" + "\n".join(lines) + "\n")
        for modality in ("audio", "visual"):
            dense = _dense_lines(names, labels.rows[modality])
            if split == "train":
                write_text(
                    ann / f"synthetic_train_eval_{modality}.csv",
                    "filename\tonset\toffset\tevent_labels\n" + "".join(x + "\n" for x in dense),
                )
            else:
                eval_lines[modality] += dense
        if split == "val":
            # Quirks of the real eval CSVs (data-formats §2.6): a degenerate row and an orphan row
            # whose truncated name matches no video. Both must be no-ops for a correct reader.
            eval_lines["audio"].append(f"{names[0]}\t9\t9\tSpeech")
            for modality in ("audio", "visual"):
                eval_lines[modality].append(f"{split_ids[0][:9]}_30_40\t0\t10\tDog")
        _write_llp_split(llp_root, world, seed, split, split_ids, labels, layouts)
        steps.update()
    write_text(ann / "AVVP_dataset_full.csv", "filename\tevent_labels\n" + "\n".join(weak_lines) + "\n")
    for modality in ("audio", "visual"):
        write_text(
            ann / f"AVVP_eval_{modality}.csv",
            "filename\tonset\toffset\tevent_labels\n" + "".join(x + "\n" for x in eval_lines[modality]),
        )
    if "uwav" in layouts:
        _save_text(llp_root, world, "llp")

    if sum(n_unav):
        unav_ids = ids[sum(n_llp) :]
        subsets = [s for s, count in zip(UNAV_SUBSETS, n_unav, strict=True) for _ in range(count)]
        _write_unav(root / "unav", world, seed, unav_ids, subsets)
        steps.update()
    steps.close()

    manifest = {
        "generator": "uwav.data.synthetic",
        "generator_version": version,
        "seed": seed,
        "size": size,
        "layouts": list(layouts),
        "llp": {s: sizes[s] for s in LLP_SPLITS},
        "unav": {s: sizes[f"unav_{s}"] for s in UNAV_SUBSETS},
        "unav_native_rate_hz": UNAV_RATE,
        "llp_to_unav": LLP_TO_UNAV,
        "confusable_unav_pairs": [list(p) for p in CONFUSABLE],
        "notes": "synthetic data; llp/ and unav/ follow the released layouts (data-formats.md); "
        "llp/annotations/synthetic_train_eval_*.csv hold dense train GT that real LLP lacks",
    }
    if version >= 2:  # version 1's manifest stays byte for byte what it was (generator_version names it)
        manifest["world_version"] = version
        manifest["calibration"] = calibration_record()
    write_json(root / "synthetic.json", manifest)
    return manifest
