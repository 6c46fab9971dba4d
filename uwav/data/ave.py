"""AVE annotations: Annotations.txt and the split files, as weak video labels and dense segment GT.

Rules from data-formats.md §8:
- every file has lines `Category&VideoID&Quality&StartTime&EndTime`, split on '&' into exactly 5 fields;
  a first line equal to that header is skipped (the archive copy has it, the repository copy does not);
- the event occupies segments `StartTime <= t < EndTime` (integers 0..10, start <= end);
- a split is a list of ROWS of Annotations.txt: `trainSet.txt` / `valSet.txt` / `testSet.txt` (the rows
  written out in split order, matched back by full line, which is unique) or `<split>_order.h5` (dataset
  `order`, 0-based row indices; needs h5py, otherwise the txt files are used and the result says so).

Samples are keyed by row, never by YouTube id: 45 ids occur more than once (18 of them in two splits).
The sample key ("filename", as in LLP) is `f"{row:04d}_{video_id}"` with `row` the 0-based row of
Annotations.txt; feature files stay keyed by the 11-char video id (repeated ids are the same clip).

AVE events are audio-visual, so gt_audio and gt_visual are both the event mask. The zero-length row
(`Church bell&VWi2ENBuTbw&good&0&0`) keeps its video label and gets an all-background mask.

Class index order is explicit (`class_order`): "dataset" = first appearance in Annotations.txt
(uwav.classes.AVE_CLASSES, the released one-hot arrays) or "alphabetical" (UWAV's code list,
AVE_CLASSES_ALPHABETICAL). Background is index 28 in both.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uwav.classes import AVE_CLASS_ORDERS, AVE_CLASSES, class_names
from uwav.errors import UwavError
from uwav.io import read_text_file

SEGMENTS = 10
HEADER = "Category&VideoID&Quality&StartTime&EndTime"
ANNOTATIONS = "Annotations.txt"
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
ORDER_FILES = {"train": "train_order.h5", "val": "val_order.h5", "test": "test_order.h5"}
SPLIT_SOURCES = ("txt", "h5")
BACKGROUND = len(AVE_CLASSES)  # segment label 28


def sample_key(row: int, video_id: str) -> str:
    """The per-row sample key used as `filename` everywhere (predictions, logits cache)."""
    return f"{row:04d}_{video_id}"


@dataclass(frozen=True)
class AveRow:
    category: str
    video_id: str
    quality: str
    start: int
    end: int
    line: int  # 1-based line number in its file

    @property
    def text(self) -> str:
        return f"{self.category}&{self.video_id}&{self.quality}&{self.start}&{self.end}"


def _time(value: str, name: str, where: str) -> int:
    try:
        t = int(value)
    except ValueError:
        raise UwavError(f"{where}: {name} {value!r} is not an integer; expected 0..{SEGMENTS}") from None
    if not 0 <= t <= SEGMENTS:
        raise UwavError(f"{where}: {name} {value!r} is outside 0..{SEGMENTS}")
    return t


def read_ave_file(path: str | os.PathLike) -> list[AveRow]:
    """Every row of an AVE annotation or split file, validated; a leading header line is skipped."""
    path = Path(path)
    lines = read_text_file(path, f"AVE lines {HEADER}").splitlines()
    rows: list[AveRow] = []
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1 and line.strip() == HEADER:
            continue
        if not line.strip():
            raise UwavError(f"{path} line {lineno}: empty line; expected {HEADER}")
        fields = line.split("&")
        where = f"{path} line {lineno}"
        if len(fields) != 5:
            raise UwavError(f"{where}: {len(fields)} '&'-separated field(s), expected 5 ({HEADER})")
        category, vid, quality = fields[0], fields[1], fields[2]
        if category not in AVE_CLASSES:
            raise UwavError(f"{where}: unknown category {category!r}; expected one of the 28 AVE classes")
        if not vid:
            raise UwavError(f"{where}: empty VideoID")
        start, end = _time(fields[3], "StartTime", where), _time(fields[4], "EndTime", where)
        if start > end:
            raise UwavError(f"{where}: StartTime {start} > EndTime {end}; expected start <= end")
        rows.append(AveRow(category, vid, quality, start, end, lineno))
    if not rows:
        raise UwavError(f"{path}: no data lines; expected {HEADER} lines")
    return rows


def _h5_available() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def read_order_h5(path: str | os.PathLike, num_rows: int) -> np.ndarray:
    """Row indices int64 [N] from an `*_order.h5` file (dataset `order`)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise UwavError(f"{path}: file not found; expected an HDF5 file with dataset 'order'")
    try:
        with h5py.File(path, "r") as fh:
            if "order" not in fh:
                raise UwavError(f"{path}: no dataset 'order'; found {sorted(fh.keys())}")
            order = np.asarray(fh["order"][()])
    except OSError as err:
        raise UwavError(f"{path}: not a readable HDF5 file ({err})") from None
    if order.ndim != 1 or order.dtype.kind not in "iu":
        raise UwavError(f"{path}: 'order' has shape {order.shape} dtype {order.dtype}; expected (N,) integers")
    if order.size and (order.min() < 0 or order.max() >= num_rows):
        raise UwavError(f"{path}: row indices outside 0..{num_rows - 1}")
    return order.astype(np.int64)


def _rows_from_txt(path: Path, index: dict[str, int]) -> np.ndarray:
    out = []
    for row in read_ave_file(path):
        i = index.get(row.text)
        if i is None:
            raise UwavError(f"{path} line {row.line}: {row.text!r} is not a row of {ANNOTATIONS}")
        out.append(i)
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class AveAnnotations:
    """All rows of Annotations.txt plus the split membership (row indices per split)."""

    root: str
    rows: tuple[AveRow, ...]
    split_rows: dict[str, np.ndarray]  # split -> int64 [N] row indices, in split-file order
    split_source: str  # "txt" or "h5"
    note: str  # why the source differs from the one asked for, else ""
    had_header: bool

    @property
    def annotations_file(self) -> str:
        return str(Path(self.root) / ANNOTATIONS)


def read_ave_annotations(root: str | os.PathLike, split_source: str = "txt") -> AveAnnotations:
    """Annotations.txt and the three splits from `root`; `split_source` "txt" or "h5" (falls back to txt)."""
    if split_source not in SPLIT_SOURCES:
        raise UwavError(f"AVE split source {split_source!r}; expected one of {', '.join(SPLIT_SOURCES)}")
    root = Path(root)
    path = root / ANNOTATIONS
    rows = read_ave_file(path)
    with open(path, encoding="utf-8") as fh:
        had_header = fh.readline().strip() == HEADER
    index: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.text in index:
            raise UwavError(f"{path} line {row.line}: duplicate line {row.text!r} (first at row "
                            f"{index[row.text]}); split files could not be matched to rows")
        index[row.text] = i
    note = ""
    if split_source == "h5" and not _h5_available():
        split_source, note = "txt", "h5py is not installed: split membership read from the txt split files"
    split_rows = {}
    for split in SPLIT_FILES:
        if split_source == "h5":
            split_rows[split] = read_order_h5(root / ORDER_FILES[split], len(rows))
        else:
            split_rows[split] = _rows_from_txt(root / SPLIT_FILES[split], index)
    owner: dict[int, str] = {}
    for split, members in split_rows.items():
        for i in members.tolist():
            if i in owner:
                raise UwavError(f"{root}: row {i} ({rows[i].text!r}) is in both {owner[i]} and {split}; "
                                "expected disjoint splits")
            owner[i] = split
    return AveAnnotations(str(root), tuple(rows), split_rows, split_source, note, had_header)


@dataclass(frozen=True, eq=False)
class AveSplit:
    """One AVE split, field-compatible with LLPSplit (filenames, weak, gt_audio, gt_visual, ids).

    filenames: per-row sample keys `f"{row:04d}_{video_id}"`; rows: int64 [N] Annotations.txt rows;
    weak: float32 [N, 28] one-hot video label; gt_audio = gt_visual: bool [N, 10, 28] event mask;
    segment_labels: int64 [N, 10], the class index or 28 (background); class_order: index order used.
    """

    split: str
    filenames: tuple[str, ...]
    video_ids: tuple[str, ...]
    rows: np.ndarray
    weak: np.ndarray
    gt_audio: np.ndarray
    gt_visual: np.ndarray
    segment_labels: np.ndarray
    class_order: str
    split_source: str
    audio_gt_file: str
    visual_gt_file: str
    notes: tuple[str, ...] = field(default=())

    @property
    def ids(self) -> tuple[str, ...]:
        """Feature-file keys (11-char video ids); repeated ids map to the same file."""
        return self.video_ids

    def __len__(self) -> int:
        return len(self.filenames)


def split_arrays(rows: list[AveRow] | tuple[AveRow, ...], members: np.ndarray, class_order: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weak float32 [N, C], event mask bool [N, T, C], segment labels int64 [N, T]) of `members`."""
    names = class_names("ave", class_order)
    position = {name: i for i, name in enumerate(names)}
    cls = np.array([position[rows[i].category] for i in members.tolist()], dtype=np.int64)
    start = np.array([rows[i].start for i in members.tolist()], dtype=np.int64)
    end = np.array([rows[i].end for i in members.tolist()], dtype=np.int64)
    n, c = len(cls), len(names)
    weak = np.zeros((n, c), dtype=np.float32)
    weak[np.arange(n), cls] = 1.0
    t = np.arange(SEGMENTS)
    inside = (t[None, :] >= start[:, None]) & (t[None, :] < end[:, None])  # [N, T]
    gt = inside[:, :, None] & (np.arange(c)[None, None, :] == cls[:, None, None])
    labels = np.where(inside, cls[:, None], BACKGROUND).astype(np.int64)
    return weak, gt, labels


def load_ave_split(annotations_dir: str | os.PathLike, split: str, class_order: str = "dataset",
                   split_source: str = "txt", annotations: AveAnnotations | None = None) -> AveSplit:
    """One split of the AVE annotations in `annotations_dir` (see the module docstring)."""
    if split not in SPLIT_FILES:
        raise UwavError(f"unknown AVE split {split!r}; expected one of {', '.join(SPLIT_FILES)}")
    class_names("ave", class_order)
    ann = annotations or read_ave_annotations(annotations_dir, split_source)
    members = ann.split_rows[split]
    weak, gt, labels = split_arrays(ann.rows, members, class_order)
    vids = tuple(ann.rows[i].video_id for i in members.tolist())
    keys = tuple(sample_key(i, v) for i, v in zip(members.tolist(), vids, strict=True))
    notes = (ann.note,) if ann.note else ()
    return AveSplit(split=split, filenames=keys, video_ids=vids, rows=members, weak=weak, gt_audio=gt,
                    gt_visual=gt.copy(), segment_labels=labels, class_order=class_order,
                    split_source=ann.split_source, audio_gt_file=ann.annotations_file,
                    visual_gt_file=ann.annotations_file, notes=notes)


# ---- oddities (uwav data check --dataset ave) ---------------------------------------------------


@dataclass
class AveOddities:
    """What data-formats §8.3 calls quirks, found in the files rather than assumed.

    zero_length: (row, split, line text) of rows with StartTime == EndTime (video label kept, all background);
    repeated_ids: video id -> [(row, split, category)] for ids on more than one row;
    cross_split_ids: the repeated ids whose rows fall in more than one split;
    counts / background: rows and background-segment fraction per split.
    """

    rows: int
    distinct_ids: int
    had_header: bool
    split_source: str
    note: str
    counts: dict[str, int]
    background: dict[str, float]
    zero_length: list[tuple[int, str, str]]
    repeated_ids: dict[str, list[tuple[int, str, str]]]
    cross_split_ids: list[str]
    classes_seen: int

    def lines(self) -> list[str]:
        out = [
            f"  rows {self.rows} ({self.distinct_ids} distinct video ids), header line "
            f"{'present (skipped)' if self.had_header else 'absent'}, splits from {self.split_source} files"
            + (f" ({self.note})" if self.note else ""),
            "  " + ", ".join(f"{s} {self.counts[s]} clips ({100 * self.background[s]:.1f}% background segments)"
                             for s in self.counts),
            f"  classes present: {self.classes_seen} of {len(AVE_CLASSES)}",
        ]
        for row, split, text in self.zero_length:
            out.append(f"  oddity: zero-length row {row} ({split}) {text!r}: video label kept, all segments "
                       "background")
        if self.repeated_ids:
            times = Counter(len(v) for v in self.repeated_ids.values())
            shape = ", ".join(f"{n} x{k}" for k, n in sorted(times.items()))
            out.append(f"  oddity: {len(self.repeated_ids)} video ids on more than one row ({shape}); "
                       f"{len(self.cross_split_ids)} of them in two splits; samples are keyed by row")
            for vid in self.cross_split_ids[:3]:
                desc = "; ".join(f"row {r} {s} {c!r}" for r, s, c in self.repeated_ids[vid])
                out.append(f"    e.g. {vid}: {desc}")
        return out


def ave_oddities(root: str | os.PathLike, split_source: str = "txt") -> AveOddities:
    ann = read_ave_annotations(root, split_source)
    split_of = np.full(len(ann.rows), "", dtype=object)
    for split, members in ann.split_rows.items():
        split_of[members] = split
    counts, background = {}, {}
    for split, members in ann.split_rows.items():
        _, _, labels = split_arrays(ann.rows, members, "dataset")
        counts[split] = len(members)
        background[split] = float((labels == BACKGROUND).mean()) if len(members) else 0.0
    zero = [(i, str(split_of[i]) or "-", r.text) for i, r in enumerate(ann.rows) if r.start == r.end]
    by_id: dict[str, list[tuple[int, str, str]]] = {}
    for i, r in enumerate(ann.rows):
        by_id.setdefault(r.video_id, []).append((i, str(split_of[i]) or "-", r.category))
    repeated = {vid: v for vid, v in by_id.items() if len(v) > 1}
    cross = [vid for vid, v in repeated.items() if len({s for _, s, _ in v}) > 1]
    return AveOddities(rows=len(ann.rows), distinct_ids=len(by_id), had_header=ann.had_header,
                       split_source=ann.split_source, note=ann.note, counts=counts, background=background,
                       zero_length=zero, repeated_ids=repeated, cross_split_ids=cross,
                       classes_seen=len({r.category for r in ann.rows}))


def check_prediction_classes(path: str | os.PathLike, class_order: str) -> None:
    """If a predictions .npz records its `classes` (uwav train does), they must match `class_order`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            recorded = [str(x) for x in npz["classes"].tolist()] if "classes" in npz.files else None
    except FileNotFoundError:
        raise UwavError(f"{path}: file not found") from None
    except Exception as err:  # np.load raises many types for corrupt input
        raise UwavError(f"{path}: not a readable .npz ({type(err).__name__}: {err})") from None
    if recorded is not None and tuple(recorded) != class_names("ave", class_order):
        other = [name for name, names in AVE_CLASS_ORDERS.items() if tuple(recorded) == names]
        found = f"the {other[0]} order" if other else "another class list"
        raise UwavError(f"{path}: key classes holds {found}; expected the {class_order} order "
                        f"(pass --class-order {other[0] if other else class_order})")
