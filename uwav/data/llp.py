"""LLP (AVVP) annotation CSVs: weak video labels and dense audio / visual segment ground truth.

Rules from data-formats.md §2: tab-separated, read by column name; filenames are
`<11-char YouTube id>_<start>_<end>` with float times; dense rows are matched to videos by exact full
filename, mark the half-open slice `int(onset):int(offset)`, and are OR-merged per (video, class).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uwav.classes import LLP_CLASSES
from uwav.errors import UwavError
from uwav.io import read_text_file

SEGMENTS = 10

WEAK_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
EVAL_AUDIO = "AVVP_eval_audio.csv"
EVAL_VISUAL = "AVVP_eval_visual.csv"
# Synthetic datasets may also ship dense labels for train (never present in the real release).
SYNTHETIC_TRAIN_AUDIO = "synthetic_train_eval_audio.csv"
SYNTHETIC_TRAIN_VISUAL = "synthetic_train_eval_visual.csv"

_CLASS_INDEX = {name: i for i, name in enumerate(LLP_CLASSES)}
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")


def parse_filename(name: str, where: str) -> tuple[str, float, float]:
    """`<id>_<start>_<end>` -> (id, start, end). Never split the whole name on '_': ids contain it."""
    parts = name[12:].split("_")
    ok = len(name) > 12 and name[11] == "_" and _YOUTUBE_ID.fullmatch(name[:11]) is not None
    ok = ok and len(parts) == 2
    if ok:
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            ok = False
        else:
            ok = math.isfinite(start) and math.isfinite(end)
    if not ok:
        raise UwavError(
            f"{where}: bad filename {name!r}; expected <11-char YouTube id>_<start>_<end>, "
            "e.g. AP0061o0Nvk_101.8_111.8"
        )
    return name[:11], start, end


def video_id(name: str) -> str:
    """The 11-char YouTube id that keys feature and pseudo-label files."""
    return name[:11]


def _read_table(path: str | os.PathLike, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a tab-separated file as (line number, {column: value}); the header is line 1."""
    path = Path(path)
    lines = read_text_file(path).splitlines()
    if not lines:
        raise UwavError(f"{path}: empty file; expected a header line with columns {', '.join(required)}")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        raise UwavError(
            f"{path} line 1: missing column(s) {', '.join(missing)}; found {header}, "
            f"expected tab-separated columns including {', '.join(required)}"
        )
    cols = {c: header.index(c) for c in required}
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise UwavError(
                f"{path} line {lineno}: {len(fields)} tab-separated field(s), expected {len(header)}"
            )
        rows.append((lineno, {c: fields[i].strip() for c, i in cols.items()}))
    return rows


def _class_index(name: str, where: str) -> int:
    try:
        return _CLASS_INDEX[name]
    except KeyError:
        raise UwavError(f"{where}: unknown class {name!r}; expected one of the 25 LLP classes") from None


def read_weak_csv(path: str | os.PathLike) -> tuple[tuple[str, ...], np.ndarray]:
    """Weak labels: (filenames in file order, multi-hot float32 [N, C])."""
    rows = _read_table(path, ("filename", "event_labels"))
    if not rows:
        raise UwavError(f"{path}: no data rows; expected one row per video after the header")
    filenames: list[str] = []
    seen: dict[str, int] = {}
    weak = np.zeros((len(rows), len(LLP_CLASSES)), dtype=np.float32)
    for i, (lineno, row) in enumerate(rows):
        where = f"{path} line {lineno}"
        name = row["filename"]
        parse_filename(name, where)
        if name in seen:
            raise UwavError(f"{where}: duplicate filename {name!r} (first on line {seen[name]})")
        seen[name] = lineno
        if not row["event_labels"]:
            raise UwavError(f"{where}: empty event_labels for {name!r}; expected comma-separated classes")
        for label in row["event_labels"].split(","):
            # A repeated label (one real test row) just sets the same bit twice.
            weak[i, _class_index(label.strip(), where)] = 1.0
        filenames.append(name)
    return tuple(filenames), weak


def read_dense_csv(path: str | os.PathLike, filenames: Sequence[str]) -> np.ndarray:
    """Dense GT for `filenames` (exact full-name match): bool [N, T, C].

    A row marks segments `int(onset) <= t < int(offset)` (int() truncates like the reference
    evaluator); rows with onset >= offset are no-ops, rows naming no listed video are ignored.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(filenames):
        if name in index:
            raise UwavError(f"{path}: duplicate video {name!r} in the split asked for")
        index[name] = i
    rows = _read_table(path, ("filename", "onset", "offset", "event_labels"))
    vid, cls, on, off = [], [], [], []
    for lineno, row in rows:
        where = f"{path} line {lineno}"
        c = _class_index(row["event_labels"], where)
        bounds = []
        for key in ("onset", "offset"):
            try:
                value = float(row[key])
            except ValueError:
                raise UwavError(
                    f"{where}: {key} {row[key]!r} is not a number; expected 0..{SEGMENTS}"
                ) from None
            if not 0 <= value <= SEGMENTS:  # also rejects nan
                raise UwavError(f"{where}: {key} {row[key]!r} is outside 0..{SEGMENTS}")
            bounds.append(int(value))
        i = index.get(row["filename"])
        if i is None:
            continue  # orphan row
        vid.append(i)
        cls.append(c)
        on.append(bounds[0])
        off.append(bounds[1])
    gt = np.zeros((len(filenames), SEGMENTS, len(LLP_CLASSES)), dtype=bool)
    if vid:
        t = np.arange(SEGMENTS)
        on_a, off_a = np.asarray(on)[:, None], np.asarray(off)[:, None]
        mask = (t >= on_a) & (t < off_a)  # [R, T]; empty for degenerate rows
        np.logical_or.at(gt, (np.asarray(vid)[:, None], t[None, :], np.asarray(cls)[:, None]), mask)
    return gt


@dataclass(frozen=True, eq=False)
class LLPSplit:
    """One LLP split in weak-CSV file order.

    weak: float32 [N, C]; gt_audio / gt_visual: bool [N, T, C] or None (train without dense labels).
    """

    split: str
    filenames: tuple[str, ...]
    weak: np.ndarray
    gt_audio: np.ndarray | None
    gt_visual: np.ndarray | None
    audio_gt_file: str | None
    visual_gt_file: str | None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(video_id(f) for f in self.filenames)

    def __len__(self) -> int:
        return len(self.filenames)


def load_llp_split(
    annotations_dir: str | os.PathLike,
    split: str,
    eval_audio: str | os.PathLike | None = None,
    eval_visual: str | os.PathLike | None = None,
) -> LLPSplit:
    """Weak labels of `split` plus dense GT.

    val / test: dense GT from AVVP_eval_{audio,visual}.csv in `annotations_dir`, or the given override
    files (the audio GT version is a user choice, data-formats.md §2.7). train: dense GT only when a
    synthetic dataset ships synthetic_train_eval_{audio,visual}.csv; the overrides never apply to train
    (they name val/test files), and without those files gt_audio / gt_visual are None.
    """
    if split not in WEAK_FILES:
        raise UwavError(f"unknown LLP split {split!r}; expected one of {', '.join(WEAK_FILES)}")
    root = Path(annotations_dir)
    filenames, weak = read_weak_csv(root / WEAK_FILES[split])
    if split == "train":
        audio_file, visual_file = root / SYNTHETIC_TRAIN_AUDIO, root / SYNTHETIC_TRAIN_VISUAL
        if not audio_file.exists() and not visual_file.exists():
            return LLPSplit(split, filenames, weak, None, None, None, None)
    else:
        audio_file = Path(eval_audio) if eval_audio is not None else root / EVAL_AUDIO
        visual_file = Path(eval_visual) if eval_visual is not None else root / EVAL_VISUAL
    gt_audio = read_dense_csv(audio_file, filenames)
    gt_visual = read_dense_csv(visual_file, filenames)
    return LLPSplit(split, filenames, weak, gt_audio, gt_visual, str(audio_file), str(visual_file))


# What each prediction key holds and its range (evaluation.md §1-2): sigmoid segment probabilities, and the
# MMIL video output, a sum of two attention-weighted probabilities, in [0, 2].
VALUE_RANGES = {"audio": (0.0, 1.0), "visual": (0.0, 1.0), "video": (0.0, 2.0)}
VALUE_MEANING = {"audio": "sigmoid segment probabilities", "visual": "sigmoid segment probabilities",
                 "video": "the MMIL video-level output"}


def load_predictions(
    path: str | os.PathLike, filenames: Sequence[str], num_classes: int = len(LLP_CLASSES)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a predictions .npz and reorder it to `filenames` (a split's order).

    The file holds `filename` (N,) full LLP filenames (AVE: the per-row sample keys) in any order,
    `audio` and `visual` [N, T, C] segment probabilities and `video` [N, C] video-level outputs, with
    C = `num_classes` (25 LLP, 28 AVE). Returns float64 (audio, visual, video).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise UwavError(f"{path}: file not found") from None
    except Exception as err:  # np.load raises many types for corrupt input
        raise UwavError(f"{path}: not a readable .npz ({type(err).__name__}: {err})") from None
    missing = [k for k in ("filename", "audio", "visual", "video") if k not in arrays]
    if missing:
        raise UwavError(
            f"{path}: missing key(s) {', '.join(missing)}; found {sorted(arrays)}, "
            "expected filename, audio, visual, video"
        )
    names = arrays["filename"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise UwavError(
            f"{path}: key filename has shape {names.shape} dtype {names.dtype}; expected (N,) strings"
        )
    names = [str(n) for n in names.tolist()]
    n, c = len(names), num_classes
    expected = {"audio": (n, SEGMENTS, c), "visual": (n, SEGMENTS, c), "video": (n, c)}
    out, problems = {}, []
    for key, shape in expected.items():
        arr = arrays[key]
        if arr.shape != shape or arr.dtype.kind not in "fiub":
            problems.append(f"key {key} has shape {arr.shape} dtype {arr.dtype}; expected numeric {shape}")
            continue
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        if not finite.all():
            problems.append(f"key {key} holds {int((~finite).sum())} NaN/inf value(s)")
        low, high = VALUE_RANGES[key]
        seen = arr[finite]
        if seen.size and (seen.min() < low or seen.max() > high):
            problems.append(f"key {key} holds values in [{seen.min():.4g}, {seen.max():.4g}], outside [{low:g}, "
                            f"{high:g}] for {VALUE_MEANING[key]} (were logits saved?)")
        out[key] = arr
    if problems:  # every key's problem at once
        raise UwavError(f"{path}: {'; '.join(problems)}")
    position: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in position:
            raise UwavError(f"{path}: key filename: duplicate {name!r} at rows {position[name]} and {i}")
        position[name] = i
    wanted = set(filenames)
    absent = [f for f in filenames if f not in position]
    extra = [f for f in names if f not in wanted]
    if absent or extra:
        raise UwavError(
            f"{path}: key filename does not match the split: {len(absent)} missing "
            f"(e.g. {', '.join(absent[:3]) or '-'}), {len(extra)} extra (e.g. {', '.join(extra[:3]) or '-'})"
        )
    order = np.array([position[f] for f in filenames], dtype=np.int64)
    return out["audio"][order], out["visual"][order], out["video"][order]
