"""Everything the parser's `fit` needs, loaded once into contiguous numpy arrays.

`load_parser_data` reads annotations, parser features, the cached generator logits and the θ that
`uwav pseudo` fitted on val (uwav.data.logits) for the requested splits. The result is plain numpy, so a
sweep driver can put it into Ray's object store once and every trial maps the same memory.

Test hygiene: with `include_test=False` (what sweeps use) the test CSVs, features and logits are never
opened, and `ParserData.split("test")` raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uwav.data.ave import load_ave_split
from uwav.data.features import parser_inputs
from uwav.data.llp import load_llp_split
from uwav.data.logits import LogitsCache, logits_for_split, open_logits, read_thresholds
from uwav.errors import UwavError


@dataclass
class SplitArrays:
    name: str
    filenames: tuple[str, ...]
    weak: np.ndarray  # [N, C] float32 0/1
    audio: np.ndarray  # [N, T, Da] float32 parser audio input
    visual: np.ndarray  # [N, T, Dv] float32 parser visual input
    gt_audio: np.ndarray | None = None  # [N, T, C] bool dense GT (val/test; synthetic train)
    gt_visual: np.ndarray | None = None
    logits_audio: np.ndarray | None = None  # [N, T, C] float32 generator logits
    logits_visual: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.filenames)


@dataclass
class ParserData:
    splits: dict[str, SplitArrays]
    # θ fitted on val per threshold mode: {"classwise": {"audio": [C], "visual": [C]}, "classagnostic": ...}
    thresholds: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> SplitArrays:
        if name not in self.splits:
            if name == "test":
                raise UwavError("the test split is not loaded here: sweeps and model selection never read "
                                "it; only an explicit final evaluation (uwav train --test / --best) does")
            raise UwavError(f"split {name!r} is not loaded (loaded: {', '.join(self.splits)})")
        return self.splits[name]

    @property
    def num_classes(self) -> int:
        return self.splits["train"].weak.shape[1]

    def nbytes(self) -> int:
        total = 0
        for s in self.splits.values():
            for v in vars(s).values():
                if isinstance(v, np.ndarray):
                    total += v.nbytes
        return total


def annotation_files(config) -> str:
    """The dense-GT file recorded with results: LLP's audio GT CSV, or AVE's Annotations.txt."""
    if config.dataset == "ave":
        return str(Path(config.paths.annotations) / "Annotations.txt")
    return config.paths.eval_audio or str(Path(config.paths.annotations) / "AVVP_eval_audio.csv")


def load_annotations(config, split: str):
    """One split's labels (LLPSplit or AveSplit: filenames, ids, weak [N, C], gt_audio / gt_visual)."""
    paths = config.paths
    if not paths.annotations:
        what = "Annotations.txt and the AVE split files" if config.dataset == "ave" else "the LLP CSVs"
        raise UwavError(f"config: paths.annotations is empty; set it to the folder holding {what}")
    if config.dataset == "ave":
        return load_ave_split(paths.annotations, split, class_order=config.ave_class_order)
    return load_llp_split(paths.annotations, split, eval_audio=paths.eval_audio or None,
                          eval_visual=paths.eval_visual or None)


def _parser_inputs(config, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if not config.paths.features:
        raise UwavError("config: paths.features is empty; set it to the root of the parser features")
    return parser_inputs(config.paths.features, config.paths.layout, ids)


def load_split(config, split: str, logits: LogitsCache | None) -> SplitArrays:
    ann = load_annotations(config, split)
    audio, visual = _parser_inputs(config, list(ann.ids))
    arrays = SplitArrays(name=split, filenames=tuple(ann.filenames), weak=ann.weak.astype(np.float32),
                         audio=audio, visual=visual, gt_audio=ann.gt_audio, gt_visual=ann.gt_visual)
    if logits is not None:
        arrays.logits_audio, arrays.logits_visual = logits_for_split(logits, split, arrays.filenames)
    return arrays


def load_parser_data(config, include_test: bool, with_logits: bool = True) -> ParserData:
    """Load train + val (+ test) for `fit`, with the logits and θ of `uwav pseudo` (never re-fitted)."""
    logits = None
    if with_logits:
        path = Path(config.logits_file)
        if not path.is_file():
            raise UwavError(f"{path}: generator logits not found; run `uwav pseudo CONFIG` first")
        logits = open_logits(path)
    names = ["train", "val"] + (["test"] if include_test else [])
    splits = {name: load_split(config, name, logits) for name in names}
    val = splits["val"]
    if val.gt_audio is None or val.gt_visual is None:
        raise UwavError("val split has no dense labels; θ fitting and model selection need them")
    data = ParserData(splits=splits, meta={
        "dataset": config.dataset,
        "audio_gt_file": annotation_files(config),
        "layout": config.paths.layout,
    })
    if config.dataset == "ave":
        data.meta["class_order"] = config.ave_class_order
    if logits is not None:
        sha = logits.get("generator_sha256", "")
        data.thresholds, theta_meta = read_thresholds(Path(config.logits_file).parent, data.num_classes, sha)
        # θ files written before `threshold_cuts` was recorded were fitted with the finite rule.
        data.meta.update(generator_sha256=sha, threshold_fit=theta_meta.get("threshold_fit", ""),
                         threshold_cuts=theta_meta.get("threshold_cuts", "finite"))
    return data
