"""Readers of the stage-2 artefacts that `uwav pseudo` writes into <out>/pseudo/ (uwav.pseudo.run).

  logits.npz                      per split: `<split>_filenames`, `<split>_audio`, `<split>_visual` (raw
                                  generator logits [N, T, C] float32), plus `generator_sha256`, `dataset`
                                  (and AVE's `class_order`)
  {a,v}_classwise_thresholds.npy  θ [C] float32 fitted on val (may hold −∞), one per modality
  {a,v}_classagnostic_thresholds.npy   the one-θ-per-modality alternative, as [C] copies
  thresholds.json                 how θ was made: fit method (`threshold_fit`), cut rule (`threshold_cuts`;
                                  absent in files from before the key = finite), the logits' generator
                                  SHA-256, the val files

Training reads θ from these files; nothing re-fits it on load, so editing the .npy files changes the
labels a run trains on (the metadata records that the fit was `uwav pseudo`'s).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uwav.errors import UwavError

LOGITS_FILE = "logits.npz"
THRESHOLDS_META = "thresholds.json"
MODALITY_PREFIX = {"audio": "a", "visual": "v"}


def threshold_file(pseudo_dir: str | Path, mode: str, modality: str) -> Path:
    return Path(pseudo_dir) / f"{MODALITY_PREFIX[modality]}_{mode}_thresholds.npy"


class LogitsCache:
    """Lazy view of the logits file: a split's arrays are read only when asked for (test stays unread)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._npz = np.load(path, allow_pickle=False)
        except Exception as err:
            raise UwavError(f"{path}: unreadable logits cache ({type(err).__name__}); rerun `uwav pseudo`") from None

    def get(self, key: str, default=""):
        return str(self._npz[key]) if key in self._npz.files else default

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = [f"{split}_filenames", f"{split}_audio", f"{split}_visual"]
        missing = [k for k in keys if k not in self._npz.files]
        if missing:
            raise UwavError(f"{self.path}: missing key {missing[0]!r}; rerun `uwav pseudo`")
        return tuple(self._npz[k] for k in keys)  # type: ignore[return-value]


def open_logits(path: str | Path) -> LogitsCache:
    return LogitsCache(Path(path))


def logits_for_split(cache: LogitsCache, split: str, filenames: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """z^a, z^v [N, T, C] aligned to `filenames`; the cache must hold exactly those videos."""
    names, z_a, z_v = cache.split(split)
    names = [str(n) for n in names]
    if names != list(filenames):
        index = {n: i for i, n in enumerate(names)}
        missing = [f for f in filenames if f not in index]
        if missing:
            raise UwavError(f"{cache.path}: {len(missing)} {split} videos have no logits (first: {missing[0]}); "
                            "rerun `uwav pseudo` after changing the data")
        order = np.array([index[f] for f in filenames])
        z_a, z_v = z_a[order], z_v[order]
    return np.ascontiguousarray(z_a, dtype=np.float32), np.ascontiguousarray(z_v, dtype=np.float32)


def read_thresholds(pseudo_dir: str | Path, num_classes: int, generator_sha256: str
                    ) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """θ as `uwav pseudo` stored it: ({mode: {modality: [C] float32}}, the metadata).

    Refuses θ made from other logits than the cache beside it (a newer generator checkpoint) and files
    of the wrong shape; every problem names the file and says to rerun `uwav pseudo`.
    """
    pseudo_dir = Path(pseudo_dir)
    meta_path = pseudo_dir / THRESHOLDS_META
    if not meta_path.is_file():
        raise UwavError(f"{meta_path}: θ not found; run `uwav pseudo CONFIG` (it fits θ on val once)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UwavError(f"{meta_path}: unreadable ({type(err).__name__}); rerun `uwav pseudo`") from None
    if not isinstance(meta, dict) or meta.get("generator_sha256") != generator_sha256:
        raise UwavError(f"{meta_path}: θ was fitted on the logits of another generator checkpoint; "
                        "rerun `uwav pseudo`")
    thresholds: dict[str, dict[str, np.ndarray]] = {}
    for mode in meta.get("modes", ()):
        thresholds[mode] = {}
        for modality in MODALITY_PREFIX:
            path = threshold_file(pseudo_dir, mode, modality)
            try:
                theta = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise UwavError(f"{path}: unreadable θ file ({type(err).__name__}); rerun `uwav pseudo`") from None
            if theta.shape != (num_classes,) or not np.issubdtype(theta.dtype, np.floating):
                raise UwavError(f"{path}: θ has shape {theta.shape} and dtype {theta.dtype}; expected "
                                f"({num_classes},) float")
            if np.isnan(theta).any() or np.isposinf(theta).any():
                raise UwavError(f"{path}: θ holds NaN or +inf; only finite values and -inf are allowed")
            thresholds[mode][modality] = theta.astype(np.float32)
    return thresholds, meta
