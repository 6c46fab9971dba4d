"""Stage 2: run the pre-trained generator once over every split (LLP or AVE) and cache its logits on disk.

The cache (`<out>/pseudo/logits.npz`) holds, per split, the filenames and the raw logits z^a, z^v
[N, T, C] float32, plus the SHA-256 of the generator checkpoint that made them. Everything downstream
(θ, hard and soft labels, class weights) is recomputed from it for free, so no later step, and no
sweep trial, ever runs the generator again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from uwav.errors import UwavError
from uwav.io import load_checkpoint, save_npz

SPLITS = ("train", "val", "test")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_generator(path: str | Path, device: torch.device | str = "cpu"):
    """Rebuild the generator from a checkpoint written by `uwav pretrain` (weights_only loading)."""
    from uwav.models.generator import Generator, GeneratorConfig

    ckpt = load_checkpoint(path, "generator", ("generator_config", "model"),
                           hint="; run `uwav pretrain CONFIG` first", device=device)
    model = Generator(GeneratorConfig(**ckpt["generator_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


@torch.no_grad()
def run_generator(model, clap: np.ndarray, clip: np.ndarray, text_audio: np.ndarray, text_visual: np.ndarray,
                  batch_size: int = 256, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Logits z^a, z^v [N, T, C] float32 for fixed-length (unmasked) videos, in eval mode."""
    device = torch.device(device)
    ta = torch.from_numpy(np.ascontiguousarray(text_audio, dtype=np.float32)).to(device)
    tv = torch.from_numpy(np.ascontiguousarray(text_visual, dtype=np.float32)).to(device)
    za, zv = [], []
    for start in range(0, clap.shape[0], batch_size):
        a = torch.from_numpy(clap[start:start + batch_size]).to(device)
        v = torch.from_numpy(clip[start:start + batch_size]).to(device)
        z_a, z_v = model(a, v, ta, tv)
        za.append(z_a.float().cpu())
        zv.append(z_v.float().cpu())
    return torch.cat(za).numpy(), torch.cat(zv).numpy()


def generator_features_root(config) -> str:
    own = config.paths.layout in ("uwav", "ave")  # layouts that hold feats_CLIP/ and feats_CLAP/ themselves
    root = config.paths.generator_features or (config.paths.features if own else "")
    if not root:
        raise UwavError("config: paths.generator_features is empty; set it to the UWAV-layout root "
                        "(feats_CLIP/, feats_CLAP/) of the dataset the generator reads")
    return root


def generate_logits(config, progress: bool = True) -> Path:
    """Run the config's generator checkpoint over train/val/test and write the logits cache."""
    from uwav.data.dataset import class_names, load_annotations
    from uwav.data.features import load_text_embeddings, load_uwav_segments

    root = generator_features_root(config)
    ckpt = Path(config.generator_checkpoint)
    model = load_generator(ckpt)
    text_visual, text_audio = load_text_embeddings(root, len(class_names(config)))
    arrays: dict[str, np.ndarray] = {"generator_sha256": np.array(file_sha256(ckpt)),
                                     "dataset": np.array(config.dataset)}
    if config.dataset == "ave":
        arrays["class_order"] = np.array(config.ave_class_order)
    splits = SPLITS
    if progress:
        from tqdm import tqdm

        splits = tqdm(SPLITS, desc="generator logits", unit="split", leave=False)
    for split in splits:
        ann = load_annotations(config, split)
        feats = load_uwav_segments(root, list(ann.ids))
        z_a, z_v = run_generator(model, feats["clap"], feats["clip"], text_audio, text_visual)
        arrays[f"{split}_filenames"] = np.array(ann.filenames)
        arrays[f"{split}_audio"] = z_a
        arrays[f"{split}_visual"] = z_v
    save_npz(config.logits_file, **arrays)
    return Path(config.logits_file)


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


def cache_is_current(config) -> bool:
    """True when the logits file exists and was made by the current generator checkpoint."""
    path, ckpt = Path(config.logits_file), Path(config.generator_checkpoint)
    if not path.is_file() or not ckpt.is_file():
        return False
    try:
        return open_logits(path).get("generator_sha256") == file_sha256(ckpt)
    except UwavError:
        return False


def run_pseudo(config, force: bool = False, progress: bool = True) -> dict:
    """`uwav pseudo`: cache logits (once per checkpoint), fit θ on val, score the pseudo labels.

    Writes <out>/pseudo/{logits.npz, a_classwise_thresholds.npy, v_classwise_thresholds.npy,
    quality.json}. Quality rows: the generator's hard labels and the VALOR-style zero-shot baseline
    (thresholded text similarity of the raw features, no temporal model) on val, test and, where the
    dataset ships dense train labels (synthetic), train.
    """
    from uwav.data.dataset import annotation_files, class_names, load_annotations
    from uwav.data.features import load_text_embeddings, load_uwav_segments
    from uwav.io import save_npy, write_json
    from uwav.metrics import ave_accuracy, ave_segment_labels
    from uwav.pseudo import (
        CLAP_ZERO_SHOT_SCALE,
        CLIP_ZERO_SHOT_SCALE,
        VALOR_THRESHOLDS_CLAP,
        VALOR_THRESHOLDS_CLIP,
        fit_thresholds,
        hard_labels,
        pseudo_quality,
        zero_shot_scores,
    )

    regenerated = False
    if force or not cache_is_current(config):
        generate_logits(config, progress=progress)
        regenerated = True
    cache = open_logits(config.logits_file)
    root = generator_features_root(config)
    text_visual, text_audio = load_text_embeddings(root, len(class_names(config)))
    mode, fit = config.pseudo.threshold_mode, config.pseudo.threshold_fit
    ann, logits, zero_shot = {}, {}, {}
    for split in SPLITS:
        ann[split] = load_annotations(config, split)
        logits[split] = logits_for_split(cache, split, tuple(ann[split].filenames))
        feats = load_uwav_segments(root, list(ann[split].ids))
        zero_shot[split] = (zero_shot_scores(feats["clap"], text_audio, CLAP_ZERO_SHOT_SCALE),
                            zero_shot_scores(feats["clip"], text_visual, CLIP_ZERO_SHOT_SCALE))
    val = ann["val"]
    theta = {
        "generator": tuple(fit_thresholds(z, val.weak, gt, mode, fit)
                           for z, gt in zip(logits["val"], (val.gt_audio, val.gt_visual), strict=True)),
    }
    if config.pseudo.zero_shot_thresholds == "valor":
        if config.dataset != "llp":
            raise UwavError("config: pseudo.zero_shot_thresholds = valor only exists for LLP's 25 classes")
        theta["zero_shot"] = (VALOR_THRESHOLDS_CLAP, VALOR_THRESHOLDS_CLIP)
    else:
        theta["zero_shot"] = tuple(fit_thresholds(z, val.weak, gt, mode, fit)
                                   for z, gt in zip(zero_shot["val"], (val.gt_audio, val.gt_visual), strict=True))
    rows = []
    for source, per_split in (("generator", logits), ("zero_shot", zero_shot)):
        for split in ("train", "val", "test"):
            a = ann[split]
            if a.gt_audio is None or a.gt_visual is None:
                continue  # real LLP train has no dense labels
            scores = pseudo_quality(*per_split[split], *theta[source], a.weak, a.gt_audio, a.gt_visual)
            if config.dataset == "ave":
                # Hard labels are weak-gated 0/1, so the §12 rule labels a segment with the video's class
                # exactly where both modalities' pseudo labels are on.
                hard = [hard_labels(z, th, a.weak) for z, th in zip(per_split[split], theta[source], strict=True)]
                scores = {"accuracy": ave_accuracy(ave_segment_labels(*hard, a.weak), a.segment_labels), **scores}
            rows.append({"labels": source, "split": split, **scores})
    pseudo_dir = Path(config.logits_file).parent
    save_npy(pseudo_dir / "a_classwise_thresholds.npy", theta["generator"][0])
    save_npy(pseudo_dir / "v_classwise_thresholds.npy", theta["generator"][1])
    report = {
        "generator_checkpoint": str(config.generator_checkpoint),
        "generator_sha256": cache.get("generator_sha256"),
        "dataset": config.dataset,
        "class_order": config.ave_class_order if config.dataset == "ave" else None,
        "threshold_mode": mode,
        "threshold_fit": fit,
        "zero_shot_thresholds": config.pseudo.zero_shot_thresholds,
        "audio_gt_file": annotation_files(config),
        "thresholds": {src: {"audio": [float(x) for x in th[0]], "visual": [float(x) for x in th[1]]}
                       for src, th in theta.items()},
        "infinite_thresholds": {"audio": int(np.isneginf(theta["generator"][0]).sum()),
                                "visual": int(np.isneginf(theta["generator"][1]).sum())},
        "rows": rows,
        "regenerated_logits": regenerated,
    }
    write_json(pseudo_dir / "quality.json", report)
    return report
