"""Typed configuration from YAML, validated before anything runs.

One YAML file describes a whole pipeline for one dataset (see configs/): where the data and the
artefacts live, the generator and its pre-training, the pseudo-label knobs, the HAN parser, the losses
and the optimiser. Each command reads the sections it needs. Sweeps address fields by dotted keys
(`loss.W`, `pseudo.offset_audio`) and get the same validation.

Where the UWAV paper and its official code differ (method.md §13) the default is the code's value and
the field's `doc` names the paper's value.

Errors name the file, the dotted key, what was found and what is allowed, on one line.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from uwav.errors import UwavError
from uwav.hardware import PRECISIONS


def _f(default, doc: str = "", *, choices: tuple | None = None, lo: float | None = None,
       hi: float | None = None, lo_open: bool = False):
    """A config field with its documentation and allowed values (checked by `_check_value`)."""
    return field(default=default, metadata={"doc": doc, "choices": choices, "lo": lo, "hi": hi,
                                            "lo_open": lo_open})


# Resolved once against the device before training (uwav.hardware.resolve_precision).
_PRECISION_DOC = ("fp32 (the paper's numbers); bf16 autocast, refused before training on hardware without bf16 "
                  "units (CPUs without AVX-512 BF16/AMX, CUDA below compute capability 8.0), where it is the slow "
                  "path (~50x slower on an AVX2-only EPYC); bf16_force: bf16 anyway; auto: bf16 where it is "
                  "fast, fp32 elsewhere. Runs record the precision used")


@dataclass(frozen=True)
class PathsConfig:
    annotations: str = _f("", "folder with the LLP CSVs (AVVP_*.csv); AVE: the folder with Annotations.txt "
                          "and trainSet/valSet/testSet.txt")
    features: str = _f("", "root of the parser's input features, in the layout below")
    layout: str = _f("han", "parser input: han (VGGish + ResNet-152 + R(2+1)D), uwav (CLAP + CLIP, "
                     "the paper's Table A6 variant) or ave (CLAP + CLIP ++ R(2+1)D-18, the paper's AVE set)",
                     choices=("han", "uwav", "ave"))
    generator_features: str = _f("", "UWAV-layout root of the dataset (feats_CLIP/, feats_CLAP/) the "
                                 "generator reads; empty = `features` (uwav or ave layout)")
    eval_audio: str = _f("", "dense audio GT file; empty = <annotations>/AVVP_eval_audio.csv (HEAD). "
                         "Use legacy/AVVP_eval_audio.csv to compare with pre-2024 numbers")
    eval_visual: str = _f("", "dense visual GT file; empty = <annotations>/AVVP_eval_visual.csv")
    unav_features: str = _f("", "UWAV-layout UnAV-100 root for generator pre-training")
    unav_annotations: str = _f("", "UnAV-100 annotation JSON")
    out: str = _f("runs/uwav", "folder for every artefact of this pipeline (checkpoints, logits, metrics)")


@dataclass(frozen=True)
class GeneratorConfig:
    """The `generator:` section, which is also the model's config (uwav.models.generator.Generator)."""

    hidden: int = _f(1024, "transformer width (input MLP D → 2·hidden → hidden, as the code)", lo=1)
    layers: int = _f(5, "post-norm encoder layers", lo=1)
    heads: int = _f(16, "attention heads", lo=1)
    ff: int = _f(2048, "feed-forward width", lo=1)
    dropout: float = _f(0.3, "dropout", lo=0.0, hi=0.95)
    normalize_text: bool = _f(False, "L2-normalise the rows of the class text embeddings "
                              "(all_event_feats.npy) before the logits; false uses them as stored, like the code")


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = _f(80, "epochs", lo=1)
    batch_size: int = _f(64, "videos per batch", lo=1)
    lr_max: float = _f(1e-4, "peak learning rate after warm-up", lo=0.0, lo_open=True)
    lr_min: float = _f(1e-5, "final cosine learning rate", lo=0.0)
    warmup_epochs: int = _f(10, "linear warm-up epochs", lo=0)
    weight_decay: float = _f(1e-3, "AdamW weight decay", lo=0.0)
    beta1: float = _f(0.5, "AdamW beta1 (code 0.5)", lo=0.0, hi=0.999)
    grad_clip: float = _f(2.0, "global grad-norm clip (code 2.0; paper 1.0)", lo=0.0)
    pos_weight: float = _f(5.0, "BCE weight of classes present in the video (code 5; paper 1)", lo=0.0)
    bucket_by_length: bool = _f(True, "batch videos of similar length and pad to the batch's longest, each "
                                "second weighted by its expected weight under the code's uniform batches "
                                "(the code's objective in expectation; uwav.pretrain). False: the code's "
                                "uniform batches padded to the split's longest, each divided by its own "
                                "valid seconds × C")
    max_videos: int = _f(0, "use at most this many UnAV videos per subset (0 = all)", lo=0)
    precision: str = _f("fp32", _PRECISION_DOC, choices=PRECISIONS)
    device: str = _f("auto", "auto (CUDA when available), cpu or cuda", choices=("auto", "cpu", "cuda"))


@dataclass(frozen=True)
class PseudoConfig:
    offset_audio: float = _f(0.0, "δ_a added to every fitted audio threshold (logit units)")
    offset_visual: float = _f(0.0, "δ_v added to every fitted visual threshold (logit units)")
    temperature: float = _f(2.0, "soft-label temperature τ (code 2; paper 1)", lo=0.0, lo_open=True)
    inf_threshold_policy: str = _f("batch_min", "replacement for θ = −∞ in soft labels: batch_min (code) "
                                   "or global_min (deterministic)", choices=("batch_min", "global_min"))
    threshold_mode: str = _f("classwise", "classwise θ per class and modality (code) or one "
                             "classagnostic θ per modality", choices=("classwise", "classagnostic"))
    threshold_fit: str = _f("f1", "how θ is fitted on val: f1 (exact best cut maximising segment F1, the "
                            "LLP code) or grid (100 thresholds per class, the code's AVE-only option; "
                            "uwav.pseudo.thresholds._grid_cut documents the grid)", choices=("f1", "grid"))
    threshold_cuts: str = _f("code", "which cuts the f1 fit scores: code (the official computation: float32 "
                             "2pr/(p+r), first maximum over every cut of the stably sorted val logits, also "
                             "inside the −∞ block and inside tied logits), finite (uwav's earlier rule: float64 "
                             "F1, only cuts at or after the first finite logit) or realisable (only cuts that "
                             "z > θ can produce: between distinct logits). README: \"Where uwav departs from "
                             "the official code\"", choices=("code", "finite", "realisable"))
    zero_shot_thresholds: str = _f("fit", "zero-shot baseline thresholds: fit on val like the generator's, "
                                   "or the hand-set valor values (real VALOR-style features only)",
                                   choices=("fit", "valor"))


@dataclass(frozen=True)
class ParserConfig:
    """The `parser:` section, which is also the model's config (uwav.models.han.HAN)."""

    d_model: int = _f(512, "HAN width", lo=1)
    layers: int = _f(5, "HAN layers (code 5; original HAN 1)", lo=1)
    heads: int = _f(16, "attention heads", lo=1)
    ff: int = _f(2048, "feed-forward width", lo=1)
    dropout: float = _f(0.1, "dropout", lo=0.0, hi=0.95)
    audio_projection: str = _f("mlp", "audio input projection: mlp (UWAV: Da → 2·d_model → d_model, as the code) "
                               "or linear (original HAN)", choices=("mlp", "linear"))
    visual_projection: str = _f("linear", "visual input projection: linear (Dv → d_model) or none (the code's "
                                "CLIP + CLAP variant, Table A6 †: CLIP features enter as they are, so d_model "
                                "must be 768; configs/llp_clipclap.yaml)", choices=("linear", "none"))
    layer_impl: str = _f("auto", "HAN layer implementation: plain (uwav.models.han, the paper's equations), fast "
                         "(uwav.models.han_fast, the CPU-tuned layer: same parameters and function) or auto "
                         "(fast on CPU, plain elsewhere)", choices=("auto", "plain", "fast"))


@dataclass(frozen=True)
class LossConfig:
    segment_target: str = _f("soft", "segment targets: soft (uncertainty-weighted) or hard pseudo labels",
                             choices=("soft", "hard"))
    reweight: bool = _f(True, "class-balanced re-weighting of the segment loss")
    W: float = _f(0.5, "positive-weight factor W", lo=0.0, lo_open=True)
    reweight_scale: str = _f("code", "code (× C) or paper (× 1) magnitude of the weights",
                             choices=("code", "paper"))
    mixup: bool = _f(True, "uncertainty-weighted feature mixup loss")
    mixup_target: str = _f("soft", "targets mixed by mixup: soft or hard labels; AVE: ceil_literal/round",
                           choices=("soft", "hard", "ceil_literal", "round"))
    alpha: float = _f(1.7, "Beta(a, b) parameter a of the mixup λ (≤ 0 disables mixing: λ = 1)")
    beta: float = _f(0.0, "Beta(a, b) parameter b; 0 ties it to alpha, the paper's Beta(α, α)", lo=0.0)
    lambda_seg: float = _f(1.0, "weight of the segment loss", lo=0.0)
    lambda_mix: float = _f(1.0, "weight of the mixup loss", lo=0.0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(80, "epochs", lo=1)
    batch_size: int = _f(64, "videos per batch", lo=1)
    lr_max: float = _f(1e-4, "peak learning rate after warm-up", lo=0.0, lo_open=True)
    lr_min: float = _f(5e-6, "final cosine learning rate", lo=0.0)
    warmup_epochs: int = _f(10, "linear warm-up epochs", lo=0)
    weight_decay: float = _f(1e-4, "AdamW weight decay", lo=0.0)
    beta1: float = _f(0.9, "AdamW beta1", lo=0.0, hi=0.999)
    grad_clip: float = _f(1.0, "global grad-norm clip", lo=0.0)
    precision: str = _f("fp32", _PRECISION_DOC, choices=PRECISIONS)
    device: str = _f("auto", "auto (CUDA when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    # 256 keeps the paper-size HAN's largest activation (both streams' qkv, 5,120 x 1,536 floats) under
    # glibc's 32 MiB mmap limit, so uwav.allocator can reuse it; at 512 each pass took ~100,000 page faults.
    eval_batch_size: int = _f(256, "videos per validation forward pass", lo=1)
    train_fraction: float = _f(1.0, "fraction of training videos used (paper Table A7)", lo=0.0, hi=1.0,
                               lo_open=True)


@dataclass(frozen=True)
class EvalConfig:
    tie_rule: str = _f("gt", "binarisation at exactly 0.5: gt (UWAV code, strict) or ge (reference "
                       "AVVP/VALOR evaluators)", choices=("ge", "gt"))
    selection: str = _f("first", "checkpoint selection among equal val Seg Type@AV: first (UWAV, strict >) "
                        "or last (original AVVP, >=)", choices=("first", "last"))


@dataclass(frozen=True)
class Config:
    seed: int = _f(20000, "seeds python, numpy, torch and the data order (code: 20000)")
    dataset: str = _f("llp", "dataset: llp (25 classes, F-scores, objective val Seg Type@AV) or ave (28 classes, "
                      "segment accuracy, objective val accuracy)", choices=("llp", "ave"))
    ave_class_order: str = _f("dataset", "AVE class index order: dataset (first appearance in Annotations.txt, "
                              "the released label arrays) or alphabetical (UWAV's code list); must match the "
                              "rows of the AVE text embeddings; recorded in every output",
                              choices=("dataset", "alphabetical"))
    paths: PathsConfig = field(default_factory=PathsConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    parser: ParserConfig = field(default_factory=ParserConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # Artefact locations, all under paths.out, so every command finds what the previous one wrote.
    @property
    def out(self) -> Path:
        return Path(self.paths.out)

    @property
    def generator_checkpoint(self) -> Path:
        return self.out / "generator" / "best.pt"

    @property
    def logits_file(self) -> Path:
        return self.out / "pseudo" / "logits.npz"

    @property
    def parser_dir(self) -> Path:
        return self.out / "parser"


# ---- validation ----------------------------------------------------------------------------------


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def check_scalar(where: str, key: str, value: Any, tp: type, lo: float | None = None, lo_open: bool = False,
                 hi: float | None = None, choices: tuple | None = None) -> Any:
    """Coerce and validate one scalar of a YAML file (configs, sweep files); `where` names the file."""
    if tp is bool:
        if not isinstance(value, bool):
            raise UwavError(f"{where}: {key} must be true or false, found {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UwavError(f"{where}: {key} must be an integer, found {value!r}")
    elif tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads `1e-3` without a dot as a string; accept plain numeric text.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UwavError(f"{where}: {key} must be a number, found {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise UwavError(f"{where}: {key} must be finite, found {value!r}")
    elif tp is str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise UwavError(f"{where}: {key} must be a string, found {value!r}")
    if choices and value not in choices:
        raise UwavError(f"{where}: {key} must be one of {', '.join(map(str, choices))}; found {value!r}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise UwavError(f"{where}: {key} must be {'>' if lo_open else '>='} {lo}; found {value!r}")
    if hi is not None and value > hi:
        raise UwavError(f"{where}: {key} must be <= {hi}; found {value!r}")
    return value


def _check_value(where: str, key: str, value: Any, f: dataclasses.Field, tp) -> Any:
    """One config field: its type plus the choices and range in the field's metadata."""
    meta = f.metadata
    return check_scalar(where, key, value, tp, lo=meta.get("lo"), lo_open=bool(meta.get("lo_open")),
                        hi=meta.get("hi"), choices=meta.get("choices"))


def _build(cls, raw: Any, where: str, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UwavError(f"{where}: {prefix.rstrip('.') or 'top level'} must be a mapping, found {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise UwavError(f"{where}: unknown key {key!r}; allowed keys under {prefix.rstrip('.') or 'top level'}: "
                        f"{', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, where, key + ".")
        else:
            kwargs[name] = _check_value(where, key, value, fields[name], tp)
    return cls(**kwargs)


def _validate_whole(config: Config, where: str) -> None:
    """Rules that involve more than one field."""
    for section in ("pretrain", "train"):
        sec = getattr(config, section)
        if sec.lr_min > sec.lr_max:
            raise UwavError(f"{where}: {section}.lr_min ({sec.lr_min}) must not exceed {section}.lr_max "
                            f"({sec.lr_max})")
        if sec.warmup_epochs > sec.epochs:
            raise UwavError(f"{where}: {section}.warmup_epochs ({sec.warmup_epochs}) must not exceed "
                            f"{section}.epochs ({sec.epochs})")
    if config.parser.visual_projection == "none":
        # Without a projection the visual features enter the layers as they are: only CLIP alone (768) fits.
        if config.paths.layout != "uwav":
            raise UwavError(f"{where}: parser.visual_projection 'none' needs paths.layout uwav (CLIP visual "
                            f"features, 768); found layout {config.paths.layout!r}")
        if config.parser.d_model != 768:
            raise UwavError(f"{where}: parser.visual_projection 'none' feeds the 768-wide CLIP features to the "
                            f"layers, so parser.d_model must be 768; found {config.parser.d_model}")
    for name, sec in (("generator", config.generator), ("parser", config.parser)):
        width = sec.hidden if name == "generator" else sec.d_model
        if width % sec.heads:
            raise UwavError(f"{where}: {name}.heads ({sec.heads}) must divide the width ({width})")


def config_from_dict(raw: dict, where: str = "<config>") -> Config:
    config = _build(Config, raw, where, "")
    _validate_whole(config, where)
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    from uwav.io import read_yaml

    path = Path(path)
    raw = read_yaml(path, "config file") or {}
    if overrides:
        raw = apply_overrides(raw, overrides, str(path))
    return config_from_dict(raw, str(path))


def apply_overrides(raw: dict, overrides: dict[str, Any], where: str) -> dict:
    """Return a copy of the raw mapping with dotted keys set (`{"loss.W": 0.3}`)."""
    import copy

    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise UwavError(f"{where}: cannot set {dotted!r}: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def with_overrides(config: Config, overrides: dict[str, Any], where: str = "<overrides>") -> Config:
    if not overrides:
        return config
    return config_from_dict(apply_overrides(to_dict(config), overrides, where), where)


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def flat_dict(config) -> dict[str, Any]:
    """{"loss.W": 0.5, ...}: the form MLflow params and sweep spaces use."""
    out: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(to_dict(config), "")
    return out


def field_kind(dotted: str) -> tuple[type, dataclasses.Field]:
    """Type and field of a dotted key, or UwavError if the key does not exist."""
    cls: Any = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise UwavError(f"unknown config key {dotted!r}")
        tp = hints[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                raise UwavError(f"config key {dotted!r} is a section, not a value")
            return tp, fields[part]
        if not dataclasses.is_dataclass(tp):
            raise UwavError(f"unknown config key {dotted!r}")
        cls = tp
    raise UwavError(f"unknown config key {dotted!r}")


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def describe() -> str:
    """Every key with its default and documentation, for `uwav config --help`-style listings."""
    lines = []

    def walk(cls, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
                continue
            default = f.default
            lines.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('doc', '')}")

    walk(Config, "")
    return "\n".join(lines)

