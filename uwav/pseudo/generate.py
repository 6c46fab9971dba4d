"""Stage 2, first half: run the pre-trained generator once over every split (LLP or AVE), cache its logits.

The cache (`<out>/pseudo/logits.npz`, read by uwav.data.logits) holds, per split, the filenames and the
raw logits z^a, z^v [N, T, C] float32, plus the SHA-256 of the generator checkpoint that made them.
Everything downstream (θ, hard and soft labels, class weights) is a function of it, so no later step,
and no sweep trial, ever runs the generator again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from uwav.checkpoints import load_generator
from uwav.classes import class_names
from uwav.data.dataset import load_annotations
from uwav.data.features import load_text_embeddings, load_uwav_segments
from uwav.data.logits import open_logits
from uwav.errors import UwavError
from uwav.io import file_sha256, save_npz

SPLITS = ("train", "val", "test")


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
    """The UWAV-layout root (feats_CLIP/, feats_CLAP/) of the dataset the generator reads."""
    own = config.paths.layout in ("uwav", "ave")  # layouts that hold feats_CLIP/ and feats_CLAP/ themselves
    root = config.paths.generator_features or (config.paths.features if own else "")
    if not root:
        raise UwavError("config: paths.generator_features is empty; set it to the UWAV-layout root "
                        "(feats_CLIP/, feats_CLAP/) of the dataset the generator reads")
    return root


def text_embeddings(config) -> tuple[np.ndarray, np.ndarray]:
    """(CLIP [C, 768], CLAP [C, 512]) class text embeddings of the config's dataset."""
    return load_text_embeddings(generator_features_root(config), len(class_names(config.dataset,
                                                                                  config.ave_class_order)))


def generate_logits(config, progress: bool = True) -> Path:
    """Run the config's generator checkpoint over train/val/test and write the logits cache."""
    root = generator_features_root(config)
    ckpt = Path(config.generator_checkpoint)
    model = load_generator(ckpt)
    text_visual, text_audio = text_embeddings(config)
    arrays: dict[str, np.ndarray] = {"generator_sha256": np.array(file_sha256(ckpt)),
                                     "dataset": np.array(config.dataset)}
    if config.dataset == "ave":
        arrays["class_order"] = np.array(config.ave_class_order)
    splits = SPLITS
    if progress:
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


def cache_is_current(config) -> bool:
    """True when the logits file exists and was made by the current generator checkpoint."""
    path, ckpt = Path(config.logits_file), Path(config.generator_checkpoint)
    if not path.is_file() or not ckpt.is_file():
        return False
    try:
        return open_logits(path).get("generator_sha256") == file_sha256(ckpt)
    except UwavError:
        return False
