"""Every checkpoint uwav writes and reads: the generator, the parser and a parser run's resumable state.

Files are written atomically and read with `torch.load(weights_only=True)` through `load_checkpoint`,
which turns anything that is not the expected checkpoint into one UwavError naming the file.

  generator  <out>/generator/best.pt   {"generator": section, "dims", "model", "epoch", "val_segment_audio_visual"}
  parser     <run>/best.pt             {"parser": section, "dims", "model", "epoch", "val", "config"}
  trainer    <run>/last.pt, sweep      `uwav.fit.Trainer.state_dict()`: weights, optimiser, RNGs, history
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from uwav.config import GeneratorConfig, ParserConfig, to_dict
from uwav.errors import UwavError
from uwav.io import atomic_path
from uwav.models.generator import Generator
from uwav.models.han import HAN

KINDS: dict[str, tuple[str, ...]] = {}  # what each kind of checkpoint holds, filled in below


def read_torch_file(path: str | os.PathLike, kind: str, hint: str = "", device: Any = "cpu") -> Any:
    """torch.load(weights_only=True) of any checkpoint file (uwav's, CLAP's); every way it can fail is one
    UwavError naming the file and what it is instead. A pickle carrying code is refused, never run."""
    path = Path(path)
    if path.is_dir():
        raise UwavError(f"{path}: is a folder; expected a {kind} checkpoint file{hint}")
    if not path.is_file():
        raise UwavError(f"{path}: {kind} checkpoint not found{hint}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise UwavError(f"{path}: empty file, not a {kind} checkpoint{hint}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a corrupt or foreign file: one line, no traceback
        raise UwavError(f"{path}: not a {kind} checkpoint: {checkpoint_problem(head, err)}{hint}") from None


def checkpoint_problem(head: bytes, err: Exception) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    if found:
        return (f"it holds pickled code or objects ({found.group(1)}), which the weights-only reader refuses "
                "without running them")
    if head.startswith(b"PK\x03\x04"):
        return "a truncated or damaged PyTorch file (its zip archive does not read to the end)"
    if head[:1] == b"\x80":
        return "a Python pickle that is not a PyTorch weights file (refused by the weights-only reader, nothing run)"
    return "not a PyTorch file (unrecognised bytes)"


def load_checkpoint(path: str | os.PathLike, kind: str, keys: tuple[str, ...], hint: str = "",
                    device: Any = "cpu") -> dict:
    """A uwav checkpoint holding `keys` (read by `read_torch_file`); another uwav kind is named as such."""
    path = Path(path)
    ckpt = read_torch_file(path, f"uwav {kind}", hint, device)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in keys):
        if isinstance(ckpt, dict):
            for other, other_keys in KINDS.items():
                if other != kind and all(k in ckpt for k in other_keys):
                    raise UwavError(f"{path}: a uwav {other} checkpoint ({KIND_FILES[other]}), not a {kind} "
                                    f"checkpoint{KIND_HINTS.get(kind, hint)}")
        found = f"keys {', '.join(map(str, list(ckpt)[:6]))}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UwavError(f"{path}: not a uwav {kind} checkpoint (found {found}; expected keys {', '.join(keys)})")
    return ckpt


def load_weights(model: torch.nn.Module, weights: Any, where: str, hint: str = "") -> None:
    """model.load_state_dict(weights), after checking every name and shape: a checkpoint of another model
    shape is one UwavError naming the parameters with both shapes."""
    own = model.state_dict()
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UwavError(f"{where}: its weights are not a mapping of tensor names to tensors")
    wrong = [f"{k} {list(weights[k].shape)} in the checkpoint vs {list(v.shape)} in this model"
             for k, v in own.items() if k in weights and weights[k].shape != v.shape]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if wrong or missing or unexpected:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensor(s) of another shape, e.g. {'; '.join(wrong[:2])}")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:2])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:2])})")
        raise UwavError(f"{where}: made by another model shape: {'; '.join(parts)}{hint}")
    model.load_state_dict(weights)


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
    section = ckpt["generator"]
    if isinstance(section, dict):
        # Checkpoints written before `generator.normalize_text` existed were trained on L2-normalised text rows.
        section = {"normalize_text": True, **section}
    model = Generator(_section(path, GeneratorConfig, {"generator": section}, "generator"), **_dims(path, ckpt))
    load_weights(model, ckpt["model"], str(path))
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
    model = HAN(_section(path, ParserConfig, ckpt, "parser"), **_dims(path, ckpt), layer_impl=impl)
    load_weights(model, ckpt["model"], str(path))
    return model.to(device).eval(), ckpt


def _section(path: Path, cls, ckpt: dict, key: str):
    """The model section a checkpoint was written with, as `cls`; a foreign or edited one is a UwavError."""
    try:
        return cls(**ckpt[key])
    except (TypeError, ValueError) as err:
        raise UwavError(f"{path}: its {key} section does not describe a {key} ({err})") from None


def _dims(path: Path, ckpt: dict) -> dict:
    dims = ckpt["dims"]
    if not isinstance(dims, dict) or not all(isinstance(v, int) and v > 0 for v in dims.values()):
        raise UwavError(f"{path}: its dims {dims!r} are not positive feature sizes")
    return dims


# ---- a parser run's resumable state ---------------------------------------------------------------------

TRAINER_KEYS = ("model", "optimizer", "epoch", "rng", "torch_rng", "best_objective", "best_epoch", "best_val")


def save_trainer_state(path: str | os.PathLike, state: dict) -> None:
    save(path, state)


def load_trainer_state(path: str | os.PathLike) -> dict:
    """A `Trainer.state_dict()` written by `save_trainer_state` (last.pt, a sweep trial's checkpoint), with
    "source": the file's path, which `Trainer.load_state_dict` names when the state does not fit the model."""
    return {**load_checkpoint(path, "resumable training state", TRAINER_KEYS), "source": str(path)}


KINDS.update({"generator": ("generator", "dims", "model"), "parser": ("parser", "dims", "model"),
              "resumable training state": TRAINER_KEYS})
KIND_FILES = {"generator": "<out>/generator/best.pt, from uwav pretrain",
              "parser": "a run's best.pt: the best epoch's weights",
              "resumable training state": "a run's last.pt"}
KIND_HINTS = {"resumable training state": "; --resume continues from the run's own last.pt, written after each "
                                          "epoch: restore it, or train without --resume",
              "parser": "; give a parser run's best.pt",
              "generator": "; give the generator <paths.out>/generator/best.pt written by uwav pretrain"}
