"""UnAV-100: the annotation JSON (data-formats.md §7) and UWAV's per-second features and labels (§5).

Rules reproduced exactly:
- T' = ceil(duration) seconds per video;
- an event [s, e] labels seconds int(s) .. ceil(e) - 1 (floor start, ceil end, integral end exclusive),
  OR-ed over events; every event is audio-visual;
- native-length CLIP/CLAP sequences are adaptive-average-pooled to T' rows and zero-padded to the split's
  longest T' (60 on the real splits).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uwav.classes import UNAV_CLASSES
from uwav.data.features import Problem, Spec, raise_problems, read_into
from uwav.errors import UwavError

SUBSETS = ("train", "validation", "test")
NUM_CLASSES = len(UNAV_CLASSES)
CLIP_SPEC = Spec("feats_CLIP/segment_feats", (None, 768))
CLAP_SPEC = Spec("feats_CLAP/segment_feats", (None, 512))


@dataclass(frozen=True)
class UnavVideo:
    """One video of the JSON; events are (start s, end s, label_id)."""

    id: str
    duration: float
    subset: str
    events: tuple[tuple[float, float, int], ...]

    @property
    def seconds(self) -> int:
        return num_seconds(self.duration)


def num_seconds(duration: float) -> int:
    """T' = ceil(duration): int(d) for integral d, else int(d) + 1."""
    return int(math.ceil(duration))


def _number(value, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UwavError(f"{where}: key {key!r} is {value!r}; expected a finite number")
    return float(value)


def _key(obj: dict, key: str, where: str):
    if not isinstance(obj, dict):
        raise UwavError(f"{where}: found {type(obj).__name__}; expected an object with key {key!r}")
    if key not in obj:
        raise UwavError(f"{where}: missing key {key!r}")
    return obj[key]


def read_unav_json(path: str | os.PathLike) -> dict[str, UnavVideo]:
    """All videos of the annotation JSON, in file order, validated (keys, numbers, label names/ids)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise UwavError(f"{path}: file not found; expected the UnAV-100 annotation JSON") from None
    except (OSError, ValueError) as err:
        raise UwavError(f"{path}: not readable JSON ({err})") from None
    database = _key(doc, "database", str(path))
    if not isinstance(database, dict):
        raise UwavError(f"{path}: key 'database' is {type(database).__name__}; expected an object")
    videos = {}
    for vid, entry in database.items():
        where = f"{path}: video {vid!r}"
        duration = _number(_key(entry, "duration", where), where, "duration")
        if duration <= 0:
            raise UwavError(f"{where}: duration {duration}; expected > 0")
        subset = _key(entry, "subset", where)
        if subset not in SUBSETS:
            raise UwavError(f"{where}: subset {subset!r}; expected one of {', '.join(SUBSETS)}")
        annotations = _key(entry, "annotations", where)
        if not isinstance(annotations, list):
            raise UwavError(f"{where}: key 'annotations' is {type(annotations).__name__}; expected a list")
        events = []
        for j, ann in enumerate(annotations):
            ewhere = f"{where} annotation {j}"
            segment = _key(ann, "segment", ewhere)
            label = _key(ann, "label", ewhere)
            label_id = _key(ann, "label_id", ewhere)
            if not isinstance(segment, list) or len(segment) != 2:
                raise UwavError(f"{ewhere}: segment {segment!r}; expected [start, end]")
            start, end = (_number(x, ewhere, "segment") for x in segment)
            if not 0 <= start < end <= duration:
                raise UwavError(f"{ewhere}: segment {segment!r}; expected 0 <= start < end <= {duration}")
            if isinstance(label_id, bool) or not isinstance(label_id, int) or not 0 <= label_id < NUM_CLASSES:
                raise UwavError(f"{ewhere}: label_id {label_id!r}; expected an integer 0..{NUM_CLASSES - 1}")
            if label != UNAV_CLASSES[label_id]:
                raise UwavError(
                    f"{ewhere}: label {label!r} with label_id {label_id}; expected {UNAV_CLASSES[label_id]!r}"
                )
            events.append((start, end, label_id))
        videos[vid] = UnavVideo(vid, duration, subset, tuple(events))
    return videos


def split_labels(videos: list[UnavVideo], tmax: int) -> np.ndarray:
    """Per-second labels bool [N, Tmax, 100] of a split: seconds int(start) … ceil(end) − 1 of each event
    are positive (data-formats.md §7)."""
    rows = [(i, s, e, c) for i, v in enumerate(videos) for s, e, c in v.events]
    labels = np.zeros((len(videos), tmax, NUM_CLASSES), dtype=bool)
    if rows:
        vid, start, end, cls = (np.asarray(col) for col in zip(*rows, strict=True))
        t = np.arange(tmax)
        mask = (t >= np.floor(start)[:, None]) & (t < np.ceil(end)[:, None])  # [E, Tmax]
        np.logical_or.at(labels, (vid[:, None], t[None, :], cls[:, None]), mask)
    return labels


@functools.lru_cache(maxsize=4096)
def _pool_matrix(n: int, length: int) -> np.ndarray:
    """float32 [length, n]: row i averages input rows floor(i*n/length) .. ceil((i+1)*n/length) - 1."""
    i = np.arange(length)
    lo = (i * n) // length
    hi = -((-(i + 1) * n) // length)  # ceil division in integers: no float rounding at bin edges
    j = np.arange(n)
    inside = (j[None, :] >= lo[:, None]) & (j[None, :] < hi[:, None])
    matrix = (inside / (hi - lo)[:, None]).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def adaptive_pool(x: np.ndarray, length: int) -> np.ndarray:
    """Adaptive average pooling along time: [L, D] -> [length, D] float32.

    Row i is the mean of x[floor(i*L/length) : ceil((i+1)*L/length)]; when L < length rows repeat.
    A cached [length, L] averaging matrix makes this one small matmul per video.
    """
    n = x.shape[0]
    if n < 1 or length < 1:
        raise ValueError(f"adaptive_pool needs L >= 1 and length >= 1, got {n} and {length}")
    return _pool_matrix(n, length) @ np.asarray(x, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class UnavSplit:
    """One UnAV subset at 1 s resolution, zero-padded to Tmax.

    ids: [N]; clap: float32 [N, Tmax, 512]; clip: float32 [N, Tmax, 768]; labels: bool [N, Tmax, 100];
    lengths: int64 [N] (T' = ceil(duration)).
    """

    ids: tuple[str, ...]
    clap: np.ndarray
    clip: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def load_unav_split(
    features_root: str | os.PathLike,
    annotations_json: str | os.PathLike,
    subset: str,
    max_videos: int | None = None,
) -> UnavSplit:
    """Read one subset in the UWAV layout (native-length files), pooled to 1 s and padded to max T'."""
    if subset not in SUBSETS:
        raise UwavError(f"unknown UnAV subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    videos = [v for v in read_unav_json(annotations_json).values() if v.subset == subset]
    if max_videos is not None:
        videos = videos[:max_videos]
    if not videos:
        raise UwavError(f"{annotations_json}: no videos in subset {subset!r}")
    lengths = np.array([v.seconds for v in videos], dtype=np.int64)
    tmax = int(lengths.max())
    feats = {}
    problems: list[Problem] = []
    for key, spec in (("clap", CLAP_SPEC), ("clip", CLIP_SPEC)):
        folder = Path(features_root) / spec.folder
        if not folder.is_dir():
            raise UwavError(f"{folder}: folder not found; expected <id>.npy files holding {spec.describe()}")
        out = np.zeros((len(videos), tmax, spec.shape[1]), dtype=np.float32)
        # Native lengths differ per video, so this loop is per file; pooling itself is vectorised.
        for i, video in enumerate(videos):
            data, problem = read_into(folder / f"{video.id}.npy", spec, None)
            if problem is not None:
                problems.append(problem)
            else:
                out[i, : lengths[i]] = adaptive_pool(data, int(lengths[i]))
        feats[key] = out
    raise_problems(problems, f"UnAV {subset} feature")
    return UnavSplit(
        ids=tuple(v.id for v in videos),
        clap=feats["clap"],
        clip=feats["clip"],
        labels=split_labels(videos, tmax),
        lengths=lengths,
    )
