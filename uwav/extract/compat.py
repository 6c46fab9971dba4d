"""The small, isolated workarounds that let open_clip and laion_clap run on a CPU-only torch, offline.

Each function fixes one known trap, says why, and is called by clip.py / clap.py right before the
library that needs it. Nothing else in the project patches third-party code.

1. torchvision (`import_torchvision`). open_clip, timm and laion_clap import torchvision at module level,
   but only use its pure-Python transforms. PyPI's torchvision wheel is a CUDA build whose native `_C.so`
   does not load beside the CPU torch wheel; torchvision then still registers fake kernels for the
   unguarded ops `torchvision::nms` / `qnms` and the import dies with
   `RuntimeError: operator torchvision::nms does not exist`. We declare the two op schemas ourselves (no
   kernels) and import again: the transforms work, and only torchvision's detection ops stay unusable,
   which this project never calls.
2. HuggingFace hub (`offline_hub`). transformers retries the hub for minutes when there is no network.
   HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE must be set before transformers is first imported.
3. laion_clap's package import (`import_clap_module`). `import laion_clap` runs `training/data.py`, which
   loads three tokenizers from the hub at import time and needs torchaudio for its mel spectrogram. We
   import its model package `clap_module` directly (the way laion_clap itself does, via sys.path) and
   compute the mel spectrogram in clap.py.
4. CLAP's RoBERTa text tower (`roberta_from_config`). clap_module builds it with
   `RobertaModel.from_pretrained('roberta-base')`, a hub download, although every text-tower weight is
   then overwritten by the CLAP checkpoint. We build the same architecture from its config instead.
5. Degenerate tokenisers (`check_distinct_tokens`). Offline, transformers can hand back a tokenizer with
   an empty vocabulary; every prompt then becomes the same ids and every class the same embedding, which
   would silently make a classifier useless. We refuse instead.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence

from uwav.errors import UwavError

_TORCHVISION_UNGUARDED_OPS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_torchvision_lib = None  # keeps the schema library alive for the process

# roberta-base's architecture (its config.json), so the CLAP text tower needs no hub download.
ROBERTA_BASE = dict(
    vocab_size=50265,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=514,
    type_vocab_size=1,
    initializer_range=0.02,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)


def offline_hub() -> None:
    """Trap 2: never let transformers / huggingface_hub reach for the network."""
    from uwav._env import quiet_library_defaults

    quiet_library_defaults()


def require(module: str, what: str):
    """Import `module` or raise a UwavError that names the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UwavError(
            f"{what} needs the package {err.name or module!r}; install the extract extra: "
            "pip install -e '.[extract]' (see README, Extract & parse)"
        ) from None


def import_torchvision():
    """Trap 1: import torchvision, declaring its two unguarded op schemas if its native library is absent."""
    global _torchvision_lib
    try:
        import torchvision

        return torchvision
    except ImportError:
        raise UwavError(
            "torchvision is not installed; install the extract extra: pip install -e '.[extract]'"
        ) from None
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the failed import leaves half-initialised modules behind
    import torch

    _torchvision_lib = torch.library.Library("torchvision", "DEF")
    for schema in _TORCHVISION_UNGUARDED_OPS:
        _torchvision_lib.define(schema)
    import torchvision

    return torchvision


def import_open_clip():
    offline_hub()
    import_torchvision()
    return require("open_clip", "CLIP extraction")


def import_clap_module():
    """Trap 3: laion_clap's model package without `import laion_clap` (hub tokenizers, torchaudio)."""
    offline_hub()
    import_torchvision()
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise UwavError(
            "CLAP extraction needs laion_clap; install it: pip install --no-deps laion_clap==1.1.7 "
            "(see README, Extract & parse)"
        )
    package_dir = list(spec.submodule_search_locations)[0]
    if package_dir not in sys.path:
        sys.path.append(
            package_dir
        )  # laion_clap's own __init__ does the same; its modules import `clap_module`
    return require("clap_module", "CLAP extraction")


@contextlib.contextmanager
def roberta_from_config(overrides: dict | None = None) -> Iterator[None]:
    """Trap 4: inside the block, clap_module's `RobertaModel.from_pretrained(name)` builds from a config.

    `overrides` changes the architecture (tests use a tiny vocabulary); the default is roberta-base.
    """
    import transformers

    clap_model = sys.modules["clap_module.model"]
    original = clap_model.RobertaModel

    class _FromConfig(original):  # type: ignore[misc, valid-type]
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return original(transformers.RobertaConfig(**{**ROBERTA_BASE, **(overrides or {})}))

    clap_model.RobertaModel = _FromConfig
    try:
        yield
    finally:
        clap_model.RobertaModel = original


def check_distinct_tokens(ids, prompts: Sequence[str], source: str) -> None:
    """Trap 5: refuse a tokenizer that maps different prompts to identical token ids.

    ids: int tensor/array [C, L], one row per prompt.
    """
    import numpy as np

    rows = np.asarray(ids)
    distinct_prompts = len(set(prompts))
    distinct_rows = len({r.tobytes() for r in rows})
    if distinct_rows < distinct_prompts:
        raise UwavError(
            f"tokenizer {source}: {distinct_prompts} different prompts gave only {distinct_rows} "
            "different token sequences (an empty or placeholder vocabulary, as transformers can "
            "return offline); point the option to a folder with the real tokenizer files"
        )
