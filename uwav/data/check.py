"""`uwav data check`: validate a dataset tree (annotations + one feature file per video) and summarise it.

Unlike the loaders, which stop at the first bad split, a check collects every problem of the whole tree
so a user can fix them in one go. Files are read one at a time, so checking the 7.8 GB HAN res152
folder needs no more memory than one file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uwav.classes import AVE_CLASSES, LLP_CLASSES, UNAV_CLASSES
from uwav.data.ave import ave_oddities, read_ave_annotations
from uwav.data.features import LAYOUTS, SPECS, UWAV_TEXT, VALOR_PSEUDO, ScanResult, Spec, read_into, scan
from uwav.data.llp import load_llp_split
from uwav.data.unav import CLAP_SPEC, CLIP_SPEC, read_unav_json
from uwav.errors import UwavError

DATASETS = ("llp", "unav", "ave")
UNAV_JSON = "unav100_annotations.json"
UNAV_CHECKED = ("train", "validation")  # the subsets UWAV reads; test is unused (data-formats §7)


@dataclass
class CheckReport:
    """summary: lines to print; problems: one line each (empty when the tree is fine)."""

    root: str
    dataset: str
    layout: str
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_tree(
    root: str | os.PathLike, layout: str | None, dataset: str, annotations: str | os.PathLike | None = None
) -> CheckReport:
    """Validate `root` as `dataset` in `layout`; `annotations` overrides where the labels are read.

    AVE: layout None checks the annotations only (ROOT may be the annotation folder itself).
    """
    if layout is None and dataset != "ave":
        raise UwavError(f"--layout is required for --dataset {dataset}; expected one of {', '.join(LAYOUTS)}")
    if layout is not None and layout not in LAYOUTS:
        raise UwavError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if dataset not in DATASETS:
        raise UwavError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise UwavError(f"{root}: folder not found; expected a dataset root in the {layout} layout")
    report = CheckReport(str(root), dataset, layout)
    if dataset == "llp":
        _check_llp(report, root, layout, Path(annotations) if annotations else root / "annotations")
    elif dataset == "unav":
        _check_unav(report, root, layout, Path(annotations) if annotations else root / UNAV_JSON)
    else:
        if annotations:
            ann_dir = Path(annotations)
        else:
            ann_dir = root / "annotations" if (root / "annotations").is_dir() else root
        _check_ave(report, root, layout, ann_dir)
    return report


def _report_scan(report: CheckReport, name: str, result: ScanResult) -> None:
    good = result.checked - len(result.problems)
    found = f"{result.first_shape} {result.first_dtype}" if result.first_shape else "-"
    report.summary.append(
        f"  {name:<12} {result.spec.folder}/<id>.npy  expected {result.spec.describe()}, found {found}: "
        f"{good}/{result.checked} ok"
    )
    report.problems += [str(p) for p in result.problems]


def _check_text(report: CheckReport, root: Path, classes: int) -> None:
    for name, (rel, dim) in UWAV_TEXT.items():
        data, problem = read_into(root / rel, Spec(rel, (classes, dim)), None)
        if problem is not None:
            report.problems.append(str(problem))
        else:
            # The generator uses the rows as stored (generator.normalize_text: false), so their norms scale
            # its logits: say what they are.
            norms = np.linalg.norm(data.astype(np.float64), axis=-1)
            report.summary.append(f"  {name + ' text':<12} {rel}  {data.shape} ok, row L2 norms min "
                                  f"{norms.min():.4f} mean {norms.mean():.4f} max {norms.max():.4f}")


def _check_llp(report: CheckReport, root: Path, layout: str, annotations: Path) -> None:
    report.summary.append(f"LLP in {root} (layout {layout}), annotations {annotations}")
    ids: list[str] = []
    owner: dict[str, str] = {}
    for split in ("train", "val", "test"):
        try:
            data = load_llp_split(annotations, split)
        except UwavError as err:
            report.problems.append(str(err))
            report.summary.append(f"  {split:<5} unreadable annotations")
            continue
        dense = "dense audio+visual GT" if data.gt_audio is not None else "weak labels only"
        report.summary.append(f"  {split:<5} {len(data)} videos, {dense}")
        for vid in data.ids:
            if vid in owner:
                report.problems.append(
                    f"{annotations}: video id {vid} is in both {owner[vid]} and {split}; "
                    "expected disjoint splits"
                )
            else:
                owner[vid] = split
                ids.append(vid)
    if not ids:
        return
    for name, spec in SPECS[layout].items():
        _report_scan(report, name, scan(root, spec, ids))
    if layout == "valor":
        for name, spec in VALOR_PSEUDO.items():
            if (root / spec.folder).is_dir():
                _report_scan(report, name, scan(root, spec, ids))
            else:
                report.summary.append(f"  {name:<12} {spec.folder}: absent (optional)")
    if layout == "uwav":
        _check_text(report, root, len(LLP_CLASSES))


def _check_unav(report: CheckReport, root: Path, layout: str, annotations: Path) -> None:
    if layout != "uwav":
        raise UwavError(f"UnAV-100 features exist only in the uwav layout; found --layout {layout}")
    report.summary.append(f"UnAV-100 in {root} (layout uwav), annotations {annotations}")
    try:
        videos = read_unav_json(annotations)
    except UwavError as err:
        report.problems.append(str(err))
        return
    ids = []
    for subset in ("train", "validation", "test"):
        members = [v for v in videos.values() if v.subset == subset]
        checked = subset in UNAV_CHECKED
        lengths = [v.seconds for v in members]
        span = f", T' {min(lengths)}..{max(lengths)} s" if lengths else ""
        note = "" if checked else " (unused by UWAV, features not checked)"
        report.summary.append(f"  {subset:<10} {len(members)} videos{span}{note}")
        if checked:
            ids += [v.id for v in members]
    for name, spec in (("clip", CLIP_SPEC), ("clap", CLAP_SPEC)):
        _report_scan(report, name, scan(root, spec, ids))
    _check_text(report, root, len(UNAV_CLASSES))


def _check_ave(report: CheckReport, root: Path, layout: str | None, annotations: Path) -> None:
    """AVE: the annotation oddities (data-formats §8.3), then the features of every distinct video id."""
    if layout not in (None, "uwav", "ave"):
        raise UwavError(f"AVE features are read in the ave (or uwav) layout; found --layout {layout}")
    report.summary.append(f"AVE annotations {annotations}" + (f", features in {root} (layout {layout})"
                                                             if layout else " (annotations only)"))
    try:
        odd = ave_oddities(annotations)
    except UwavError as err:
        report.problems.append(str(err))
        return
    report.summary += odd.lines()
    if not any((annotations / f"{s}_order.h5").is_file() for s in ("train", "val", "test")):
        report.summary.append("  split order files (*_order.h5): absent (the txt split files are used)")
    else:
        try:
            via_h5 = read_ave_annotations(annotations, "h5")
        except UwavError as err:
            report.problems.append(str(err))
        else:
            if via_h5.split_source != "h5":
                report.summary.append(f"  split order files (*_order.h5): not compared ({via_h5.note})")
            else:
                txt = read_ave_annotations(annotations, "txt")
                same = all(np.array_equal(txt.split_rows[s], via_h5.split_rows[s]) for s in txt.split_rows)
                report.summary.append(f"  split order files (*_order.h5) {'match' if same else 'DIFFER FROM'} "
                                      "the txt split files")
                if not same:
                    report.problems.append(f"{annotations}: *_order.h5 and the txt split files disagree")
    if layout is None:
        return
    ann = read_ave_annotations(annotations)
    ids = list(dict.fromkeys(ann.rows[i].video_id for members in ann.split_rows.values() for i in members))
    for name, spec in SPECS[layout].items():
        _report_scan(report, name, scan(root, spec, ids))
    _check_text(report, root, len(AVE_CLASSES))
