"""A synthetic AVE dataset in the released annotation format and the paper's AVE feature layout.

Built on the LLP/UnAV generator's world (uwav.data.synthetic.World): each AVE class is a perturbed copy
of a related UnAV class's concept, so a generator pre-trained on the synthetic UnAV set of the same seed
transfers, as with LLP. Known truth, as in real AVE (data-formats.md §8):
- one audio-visual event per clip: the same segments are active in audio and visual; the class is drawn
  with the real train class frequencies;
- about two thirds of the clips are event-only (`0&10`); the others hold one event of 1-9 segments, so
  about 17% of the segments are background (real: 16.9 / 18.2 / 17.8 %);
- the quirks: one zero-length train row (`&0&0`), and one video id on a train row and a val row (same
  times, another category), so loaders must key samples by row; that clip's features carry both events.

Files (OUT/ave/):
  annotations/Annotations.txt, trainSet.txt, valSet.txt, testSet.txt   (no header, rows grouped by class)
  feats_CLIP/segment_feats/<id>.npy (10, 768)   feats_CLAP/segment_feats/<id>.npy (10, 512)
  feats/r2plus1d_18/<id>.npy (10, 512)          feats_{CLIP,CLAP}/event_feats/all_event_feats.npy (28, D)
The text embeddings' rows follow `class_order` (recorded in OUT/synthetic.json). The `*_order.h5` files
are not written (their content is the txt split files'). OUT/unav/ is the UnAV-100 part for pre-training
(as in `uwav data synth`), unless its sizes are 0.

World versions (`world_version`, as for LLP): 2 (default) draws the features with the version-2 feature
model (uwav.data.synthetic.WorldV2: weak per-segment evidence, class-dependent visibility and text
alignment, a domain shift from UnAV) and its evidence strengths, which were calibrated on LLP's zero-shot
baseline: they describe the CLIP / CLAP extractors, which AVE shares, and the UnAV part is then the same
world as `uwav data synth --dataset llp` writes. There are no AVE zero-shot targets, so nothing is
calibrated on AVE itself. The AVE label model (below) is the same in both versions: it already follows the
real AVE files. Version 1 is the first world, byte for byte.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uwav.classes import AVE_CLASSES, UNAV_CLASSES, class_names
from uwav.data import synthetic as S
from uwav.errors import UwavError
from uwav.io import write_json, write_text

GENERATOR_VERSION = S.GENERATOR_VERSION
SPLITS = ("train", "val", "test")
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"train": 56, "val": 28, "test": 28, "unav_train": 64, "unav_validation": 16, "unav_test": 16},
    "small": {"train": 560, "val": 140, "test": 140, "unav_train": 400, "unav_validation": 100, "unav_test": 0},
    "medium": {"train": 1400, "val": 200, "test": 200, "unav_train": 1000, "unav_validation": 250,
               "unav_test": 0},
    "ave": {"train": 3339, "val": 402, "test": 402, "unav_train": 6489, "unav_validation": 2134, "unav_test": 0},
}
# Each AVE class shares its concept with a related UnAV class (AVE_CLASSES order).
AVE_TO_UNAV: dict[str, str] = dict(zip(AVE_CLASSES, (
    "church bell ringing", "man speaking", "dog barking", "airplane flyby", "auto racing", "woman speaking",
    "helicopter", "playing violin", "playing flute", "playing ukulele", "people eating", "engine knocking",
    "playing cornet", "driving motorcycle", "playing acoustic guitar", "train horning",
    "telephone bell ringing", "playing banjo", "sheep bleating", "baby crying", "driving buses",
    "chainsawing trees", "cat meowing", "horse clip-clop", "water burbling", "frog croaking",
    "playing accordion", "playing zither",
), strict=True))
# Real train clips per class (data-formats §8.3), AVE_CLASSES order: the class draw weights.
TRAIN_CLASS_COUNTS = np.array([152, 142, 137, 148, 152, 141, 144, 151, 138, 131, 146, 112, 82, 81, 150, 142,
                               128, 147, 80, 67, 57, 128, 48, 52, 144, 89, 124, 126], dtype=np.float64)
EVENT_ONLY = 2750 / 4143  # clips annotated 0&10


def ave_concepts(world: S.World, seed: int) -> np.ndarray:
    """AVE concepts [28, K]: the mapped UnAV concept moved slightly (a domain shift, as for LLP)."""
    rng = S._rng(seed, "ave-world")
    mapped = [UNAV_CLASSES.index(AVE_TO_UNAV[c]) for c in AVE_CLASSES]
    noise = S._unit(rng.standard_normal((len(AVE_CLASSES), S.LATENT)))
    return S._unit(world.concepts["unav"][mapped] + 0.35 * noise)


def ave_text(world: S.World, seed: int, concepts: np.ndarray) -> dict[str, np.ndarray]:
    """CLIP [28, 768] / CLAP [28, 512] unit text embeddings in AVE_CLASSES order (same model as LLP's)."""
    rng = S._rng(seed, "ave-text")
    out = {}
    for model in ("clip", "clap"):
        d = world.DIMS[model]
        moved = S._unit(concepts + S.TEXT_SHIFT * S._unit(rng.standard_normal(concepts.shape)))
        text = moved @ world.proj[model] + S.TEXT_NOISE * rng.standard_normal((len(concepts), d)) / np.sqrt(d)
        out[model] = S._unit(text).astype(np.float32)
    return out


def draw_rows(rng: np.random.Generator, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Rows of all splits: class (AVE_CLASSES index), start, end int64 [R] and split name [R].

    Event-only with probability EVENT_ONLY, else length uniform in 1..9 at a uniform onset.
    """
    split = np.concatenate([np.full(counts[s], s) for s in SPLITS])
    r = len(split)
    cls = rng.choice(len(AVE_CLASSES), size=r, p=TRAIN_CLASS_COUNTS / TRAIN_CLASS_COUNTS.sum())
    length = rng.integers(1, S.SEGMENTS, size=r)
    start = (rng.random(r) * (S.SEGMENTS - length + 1)).astype(np.int64)
    full = rng.random(r) < EVENT_ONLY
    start = np.where(full, 0, start)
    end = np.where(full, S.SEGMENTS, start + length)
    return {"cls": cls.astype(np.int64), "start": start, "end": end, "split": split}


def _quirks(rows: dict[str, np.ndarray], ids: list[str]) -> dict[str, int]:
    """Zero-length train row and an id shared by a train and a val row; returns their row numbers."""
    train = np.nonzero(rows["split"] == "train")[0]
    val = np.nonzero(rows["split"] == "val")[0]
    out = {}
    if len(train) >= 2:
        z = int(train[0])
        rows["start"][z] = rows["end"][z] = 0
        out["zero_length"] = z
    if len(train) >= 2 and len(val) >= 1:
        a, b = int(train[-1]), int(val[0])
        ids[b] = ids[a]
        rows["start"][b], rows["end"][b] = rows["start"][a], rows["end"][a]
        if rows["cls"][b] == rows["cls"][a]:
            rows["cls"][b] = (rows["cls"][a] + 1) % len(AVE_CLASSES)
        out["repeated_id_rows"] = [a, b]
    return out


def _line(cls: int, vid: str, start: int, end: int) -> str:
    return f"{AVE_CLASSES[cls]}&{vid}&good&{start}&{end}"


def _write_features(root: Path, world: S.World | S.WorldV2, seed: int, classes, ids: list[str],
                    rows: dict[str, np.ndarray]) -> None:
    """Per distinct id: CLIP / R(2+1)D from a visual latent, CLAP from an audio latent, same active mask."""
    unique, inverse = np.unique(np.asarray(ids), return_inverse=True)
    t = np.arange(S.SEGMENTS)
    inside = (t[None, :] >= rows["start"][:, None]) & (t[None, :] < rows["end"][:, None])
    active = np.zeros((len(unique), S.SEGMENTS, len(AVE_CLASSES)), dtype=bool)
    np.logical_or.at(active, (inverse[:, None], t[None, :], rows["cls"][:, None]), inside)
    names = [str(x) for x in unique]
    rngs = {k: S._rng(seed, "ave", k) for k in ("latent", "clip", "clap", "r2plus1d_18")}
    for sl in S._chunks(len(names)):
        if world.version == 1:  # classes: the concepts [28, K]
            z = {m: S._latent(rngs["latent"], active[sl], classes, world.mean[m]) for m in ("audio", "visual")}
        else:  # classes: a ClassSet
            z = {m: world.latent(rngs["latent"], active[sl], classes, m, "ave") for m in ("audio", "visual")}
        S._save_all(root / "feats_CLIP" / "segment_feats", names[sl],
                    S._embed(rngs["clip"], z["visual"], world.proj["clip"]))
        S._save_all(root / "feats_CLAP" / "segment_feats", names[sl],
                    S._embed(rngs["clap"], z["audio"], world.proj["clap"]))
        S._save_all(root / "feats" / "r2plus1d_18", names[sl],
                    S._cnn(rngs["r2plus1d_18"], z["visual"], world.proj["r2plus1d_18"], True))


def resolve_sizes(size: str, overrides: dict[str, int | None] | None = None) -> dict[str, int]:
    return S.resolve_sizes(size, overrides, table=SIZES, required=SPLITS, dataset="AVE")


def generate_ave(
    out: str | os.PathLike,
    size: str = "tiny",
    seed: int = 0,
    overrides: dict[str, int | None] | None = None,
    class_order: str = "dataset",
    force: bool = False,
    world_version: int = GENERATOR_VERSION,
) -> dict:
    """Write OUT/ave (and OUT/unav unless its sizes are 0) and return the manifest (OUT/synthetic.json)."""
    out = Path(out)
    if seed < 0:
        raise UwavError(f"seed {seed}; expected a non-negative integer")
    S.check_world_version(world_version)
    names = class_names("ave", class_order)
    sizes = resolve_sizes(size, overrides)
    S._prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        manifest = _generate_into(staging, seed, size, sizes, names, class_order, world_version)
        S._replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _generate_into(root: Path, seed: int, size: str, sizes: dict[str, int], names: Sequence[str],
                   class_order: str, version: int = GENERATOR_VERSION) -> dict:
    world = S.make_world(seed, version)
    if version == 1:
        classes = ave_concepts(world, seed)
    else:
        mapped = [UNAV_CLASSES.index(AVE_TO_UNAV[c]) for c in AVE_CLASSES]
        classes = world.derive(mapped, S._rng(seed, "ave-world-v2"))
    counts = {s: sizes[s] for s in SPLITS}
    n_unav = [sizes[f"unav_{s}"] for s in S.UNAV_SUBSETS]
    n_rows = sum(counts.values())
    all_ids = S._youtube_ids(S._rng(seed, "ave-ids"), n_rows + sum(n_unav))
    ids = all_ids[:n_rows]
    rng = S._rng(seed, "ave-labels")
    rows = draw_rows(rng, counts)
    quirks = _quirks(rows, ids)
    # Annotations.txt groups rows by class like the real file; the splits are random subsets of it.
    order = np.lexsort((rng.permutation(n_rows), rows["cls"]))
    position = np.empty(n_rows, dtype=np.int64)
    position[order] = np.arange(n_rows)
    ave = root / "ave"
    ann = ave / "annotations"
    ann.mkdir(parents=True)
    lines = [_line(rows["cls"][i], ids[i], rows["start"][i], rows["end"][i]) for i in range(n_rows)]
    write_text(ann / "Annotations.txt", "".join(lines[i] + "\n" for i in order))
    for split, fname in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        members = np.nonzero(rows["split"] == split)[0]
        members = members[rng.permutation(len(members))]  # split order differs from file order, as in AVE
        write_text(ann / fname, "".join(lines[i] + "\n" for i in members))
    _write_features(ave, world, seed, classes, ids, rows)
    text = ave_text(world, seed, classes) if version == 1 else classes.text
    rank = [AVE_CLASSES.index(n) for n in names]  # rows in the chosen class order
    for model, folder in (("clip", "feats_CLIP"), ("clap", "feats_CLAP")):
        (ave / folder / "event_feats").mkdir(parents=True, exist_ok=True)
        np.save(ave / folder / "event_feats" / "all_event_feats.npy", text[model][rank])
    if sum(n_unav):
        subsets = [s for s, c in zip(S.UNAV_SUBSETS, n_unav, strict=True) for _ in range(c)]
        S._write_unav(root / "unav", world, seed, all_ids[n_rows:], subsets)
    manifest = {
        "generator": "uwav.data.synthetic_ave",
        "generator_version": version,
        "dataset": "ave",
        "seed": seed,
        "size": size,
        "class_order": class_order,
        "ave": counts,
        "unav": {s: sizes[f"unav_{s}"] for s in S.UNAV_SUBSETS},
        "background_fraction": float(1 - (rows["end"] - rows["start"]).sum() / (n_rows * S.SEGMENTS)),
        "quirk_rows": {k: (int(position[v]) if isinstance(v, int) else [int(position[x]) for x in v])
                       for k, v in quirks.items()},
        "ave_to_unav": AVE_TO_UNAV,
        "notes": "synthetic data; ave/annotations follow the AVE release format (data-formats.md §8), "
                 "features the paper's AVE set (CLIP + R(2+1)D-18 visual, CLAP audio); quirk_rows are "
                 "0-based rows of Annotations.txt",
    }
    if version >= 2:  # version 1's manifest stays byte for byte what it was
        manifest["world_version"] = version
        manifest["calibration"] = {**S.calibration_record(), "ave": "features: the LLP-calibrated version-2 feature "
                                   "model (same extractors); labels: the AVE label model above (real AVE files)"}
    write_json(root / "synthetic.json", manifest)
    return manifest
