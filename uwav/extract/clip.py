"""CLIP image and text encoders through open_clip; L2-normalised embeddings.

Weights: `pretrained` is a local checkpoint file, or an open_clip tag (e.g. "openai") that must already be in
the user's cache: the hub is offline (compat.offline_hub), so nothing is ever downloaded. `pretrained=None`
gives random weights (tests). `config` is an optional open_clip model-config JSON for architectures open_clip
does not ship (tests use a tiny one). Images are preprocessed by the model's own open_clip eval transform
(resize shortest side, centre crop, CLIP mean/std).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uwav.checkpoints import checkpoint_problem
from uwav.errors import UwavError
from uwav.extract import compat

DEFAULT_MODEL = "ViT-L-14"


@dataclass
class ClipEncoder:
    model: torch.nn.Module
    preprocess: object  # PIL.Image -> [3, H, W] tensor
    tokenizer: object  # list[str] -> [C, L] int tensor
    name: str
    pretrained: str  # what was loaded ("none" for random weights)
    device: torch.device

    @property
    def dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else 0

    @torch.no_grad()
    def encode_images(self, images: list, batch_size: int = 64) -> np.ndarray:
        """T PIL images -> [T, D] float32, L2-normalised."""
        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + batch_size]]).to(
                self.device
            )
            out.append(torch.nn.functional.normalize(self.model.encode_image(batch).float(), dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    @torch.no_grad()
    def encode_texts(self, prompts: list[str]) -> np.ndarray:
        """C prompts -> [C, D] float32, L2-normalised; refuses a tokenizer that collapses prompts."""
        tokens = self.tokenizer(prompts)
        compat.check_distinct_tokens(tokens.numpy(), prompts, f"of CLIP model {self.name}")
        emb = self.model.encode_text(tokens.to(self.device)).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy().astype(np.float32)


def load_clip(
    name: str = DEFAULT_MODEL,
    pretrained: str | None = None,
    config: str | None = None,
    device: str | torch.device = "cpu",
) -> ClipEncoder:
    open_clip = compat.import_open_clip()
    if config:
        cfg_path = Path(config)
        if not cfg_path.is_file():
            raise UwavError(f"{cfg_path}: open_clip model config not found")
        open_clip.add_model_config(cfg_path)
        name = cfg_path.stem
    if name not in open_clip.list_models():
        raise UwavError(
            f"CLIP model {name!r} is unknown to open_clip; expected one of open_clip.list_models() "
            "or --clip-config FILE.json"
        )
    if pretrained and Path(pretrained).suffix and not Path(pretrained).is_file():
        raise UwavError(f"{pretrained}: CLIP checkpoint not found")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, device=device
        )
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        if pretrained and Path(pretrained).is_file():  # a local file: say what is wrong with it
            text = str(err)
            if "state_dict" in text:  # another architecture: the first mismatch, with both shapes
                detail = next((line.strip() for line in text.splitlines()[1:] if line.strip()), text)
                raise UwavError(f"{pretrained}: made by another model than CLIP {name}: {detail}") from None
            with open(pretrained, "rb") as fh:
                why = checkpoint_problem(fh.read(4), err)
            raise UwavError(f"{pretrained}: not a CLIP checkpoint: {why}") from None
        raise UwavError(
            f"CLIP {name} weights {pretrained!r}: cannot load ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); give a local checkpoint file, or "
            "a tag already in the open_clip cache (nothing is downloaded)"
        ) from None
    return ClipEncoder(
        model.eval(),
        preprocess,
        open_clip.get_tokenizer(name),
        name,
        str(pretrained) if pretrained else "none",
        torch.device(device),
    )
