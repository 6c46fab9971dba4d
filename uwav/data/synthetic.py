"""Synthetic LLP and UnAV-100 datasets in the released on-disk layouts (data-formats.md §2-5, §7, §10).

The generator draws one world per seed:
- a latent concept vector per UnAV class (K = 64 dims); listed pairs of classes get correlated concepts
  (confusable classes); each LLP class is a perturbed copy of a related UnAV class, so the two datasets
  share one concept space and pre-training on UnAV transfers;
- fixed random projections from the latent space to every feature space (CLIP 768, CLAP 512, VGGish
  128, ResNet-152 2048, R(2+1)D 512, CLAP tokens 2 x 768);
- text embeddings = perturbed concept, projected, plus noise, L2-normalised, so zero-shot cosine scores
  are informative but imperfect.
A segment's latent is the sum of the concepts active in that segment and modality (random amplitude),
plus a per-video scene vector and AR(1) noise over time; each feature adds its own noise. Nothing here
is tuned to make any method win.

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
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uwav.classes import LLP_CLASSES, UNAV_CLASSES
from uwav.data.unav import read_unav_json, split_labels  # one label rule, shared with the loader
from uwav.errors import UwavError
from uwav.io import write_json, write_text

GENERATOR_VERSION = 1
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

# Feature model (module docstring). Chosen so zero-shot scores are clearly informative yet far from
# perfect; they are not tuned towards any method.
AMPLITUDE = (0.3, 1.0)  # concept amplitude per (video, class)
SCENE = 0.8  # per-video nuisance vector norm
AR_NOISE, AR_RHO = 0.8, 0.7  # temporally smooth noise: stationary norm and lag-1 correlation
MEAN_NORM = 1.0  # dataset-wide mean direction per modality
EMBED_NOISE = 0.5  # isotropic noise norm added in the embedding space
TEXT_SHIFT, TEXT_NOISE = 0.7, 0.3  # text = perturbed concept (concept space) + noise (embedding space)

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
    """Everything fixed for a seed. Concepts are unit rows [C, K]; projections are [K, D]."""

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


def _save_text(root: Path, world: World, dataset: str) -> None:
    """UWAV text embeddings: feats_{CLIP,CLAP}/event_feats/all_event_feats.npy [C, 768] / [C, 512]."""
    for model, folder in (("clip", "feats_CLIP"), ("clap", "feats_CLAP")):
        (root / folder / "event_feats").mkdir(parents=True, exist_ok=True)
        np.save(root / folder / "event_feats" / "all_event_feats.npy", world.text[dataset, model])


def _chunks(n: int, size: int = _CHUNK) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


def _write_llp_split(
    root: Path, world: World, seed: int, split: str, ids, labels: LLPLabels, layouts
) -> None:
    concepts = world.concepts["llp"]
    zrng = _rng(seed, "llp-latent", split)
    z = {m: _latent(zrng, labels.gt[m], concepts, world.mean[m]) for m in ("audio", "visual")}
    n = len(ids)
    if "uwav" in layouts:
        for kind, modality, folder in (("clip", "visual", "feats_CLIP"), ("clap", "audio", "feats_CLAP")):
            rng = _rng(seed, "llp", split, "uwav", kind)
            for sl in _chunks(n):
                _save_all(
                    root / folder / "segment_feats", ids[sl], _embed(rng, z[modality][sl], world.proj[kind])
                )
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


def _write_unav(root: Path, world: World, seed: int, ids: list[str], subsets: list[str]) -> None:
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
                z = _latent(rng, active, world.concepts["unav"], world.mean[MODALITY[model]])
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
) -> dict:
    """Write a synthetic dataset to `out` and return its manifest (also written as synthetic.json).

    out/llp/annotations/  AVVP_{train,val_pd,test_pd,dataset_full}.csv, AVVP_eval_{audio,visual}.csv
                          (val + test), synthetic_train_eval_{audio,visual}.csv (train dense GT)
    out/llp/...           the feature layouts asked for (han: feats/, valor: CLIP/ CLAP/,
                          uwav: feats_CLIP/ feats_CLAP/ incl. event_feats with the 25 LLP text embeddings)
    out/unav/             unav100_annotations.json, feats_CLIP/ feats_CLAP/ at native rates UNAV_RATE
    """
    out = Path(out)
    if seed < 0:
        raise UwavError(f"seed {seed}; expected a non-negative integer")
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
        manifest = _generate_into(staging, seed, size, sizes, layouts, progress)
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


def _generate_into(root: Path, seed: int, size: str, sizes: dict[str, int], layouts, progress: bool) -> dict:
    world = World(seed)
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
        labels = LLPLabels(_rng(seed, "llp-labels", split), len(split_ids), split)
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
        "generator_version": GENERATOR_VERSION,
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
    write_json(root / "synthetic.json", manifest)
    return manifest
