"""Every checkpoint uwav writes and reads: the generator, the parser and a parser run's resumable state.

Files are written atomically and read with `torch.load(weights_only=True)` through `load_checkpoint`,
which turns anything that is not the expected checkpoint into one UwavError naming the file.

  generator  <out>/generator/best.pt   {"generator": section, "dims", "model", "epoch", "val_segment_audio_visual"}
  parser     <run>/best.pt             {"parser": section, "dims", "model", "epoch", "val", "config"}
  trainer    <run>/last.pt, sweep      `uwav.fit.Trainer.state_dict()`: weights, optimiser, RNGs, history
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from uwav.config import GeneratorConfig, ParserConfig, to_dict
from uwav.errors import UwavError
from uwav.io import atomic_path
from uwav.models.generator import Generator
from uwav.models.han import HAN


def load_checkpoint(path: str | os.PathLike, kind: str, keys: tuple[str, ...], hint: str = "",
                    device: Any = "cpu") -> dict:
    """torch.load(weights_only=True) of a uwav checkpoint holding `keys`; anything else is one UwavError."""
    path = Path(path)
    if not path.is_file():
        raise UwavError(f"{path}: {kind} checkpoint not found{hint}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a corrupt or foreign file: one line, no traceback
        raise UwavError(f"{path}: not a readable uwav checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        raise UwavError(f"{path}: not a uwav {kind} checkpoint (keys {', '.join(keys)} missing)")
    return ckpt


def save(path: str | os.PathLike, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ---- generator (stage 1) -----------------------------------------------------------------------------


def save_generator(path: str | os.PathLike, model: Generator, epoch: int, segment_audio_visual: float) -> None:
    save(path, {"generator": asdict(model.config), "dims": {"audio_dim": model.audio_dim,
                                                            "visual_dim": model.visual_dim},
                "model": model.state_dict(), "epoch": epoch, "val_segment_audio_visual": segment_audio_visual})


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu") -> Generator:
    """The generator written by `uwav pretrain`, in eval mode on `device`."""
    ckpt = load_checkpoint(path, "generator", ("generator", "dims", "model"),
                           hint="; run `uwav pretrain CONFIG` first", device=device)
    section = dict(ckpt["generator"])
    # Checkpoints written before `generator.normalize_text` existed were trained on L2-normalised text rows.
    section.setdefault("normalize_text", True)
    model = Generator(GeneratorConfig(**section), **ckpt["dims"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


# ---- parser (stage 3) ----------------------------------------------------------------------------------


def save_parser(path: str | os.PathLike, model: HAN, config, epoch: int, val: dict[str, float]) -> None:
    """The parser's weights with its section and sizes, and the whole run config for the record."""
    save(path, {"parser": asdict(model.config), "dims": model.dims, "model": model.state_dict(), "epoch": epoch,
                "val": dict(val), "config": to_dict(config)})


def load_parser(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[HAN, dict]:
    """(model in eval mode on `device`, the checkpoint dict). The layer implementation follows the device."""
    ckpt = load_checkpoint(path, "parser", ("parser", "dims", "model"), device=device)
    impl = "fast" if torch.device(device).type == "cpu" else "plain"
    model = HAN(ParserConfig(**ckpt["parser"]), **ckpt["dims"], layer_impl=impl)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


# ---- a parser run's resumable state ---------------------------------------------------------------------

TRAINER_KEYS = ("model", "optimizer", "epoch", "rng", "torch_rng", "best_objective", "best_epoch", "best_val")


def save_trainer_state(path: str | os.PathLike, state: dict) -> None:
    save(path, state)


def load_trainer_state(path: str | os.PathLike) -> dict:
    """A `Trainer.state_dict()` written by `save_trainer_state` (last.pt, a sweep trial's checkpoint)."""
    return load_checkpoint(path, "resumable training state", TRAINER_KEYS)
