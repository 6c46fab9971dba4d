"""Parse videos into events: what is heard and seen, when (`uwav parse`).

A video -> CLIP/CLAP segment features (uwav.extract) -> the HAN parser -> method.md §9.2's rule:
  video_pred[c] = p[c] >= 0.5 (or > 0.5, the checkpoint's eval.tie_rule)
  audio[t, c]   = sigmoid(s^a[t, c]) >= 0.5 AND video_pred[c];   visual likewise;   audio-visual = both
Runs of consecutive positive segments become events with onset/offset at segment boundaries (seconds) and a
confidence = the mean segment probability over the run (for audio-visual, the mean of the smaller of the two).
With a generator checkpoint, its segment predictions (sigmoid(z) >= 0.5, no video gate) are added as
events with source "generator".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uwav.checkpoints import load_generator, load_parser
from uwav.classes import class_names
from uwav.errors import UwavError
from uwav.extract.run import Extractor, list_videos
from uwav.extract.video import decode_video
from uwav.io import atomic_path

MODALITIES = ("audio", "visual", "audio-visual")
COLOURS = {"audio": "#1f77b4", "visual": "#ff7f0e", "audio-visual": "#2ca02c"}
THRESHOLD = 0.5


@dataclass
class Parsed:
    """Per-video parser outputs. Arrays are [T, C] / [C]; bounds [T + 1] seconds."""

    video: str
    bounds: np.ndarray
    classes: tuple[str, ...]
    video_prob: np.ndarray
    prob_audio: np.ndarray
    prob_visual: np.ndarray
    events: list[dict]

    def to_json(self) -> dict:
        return {
            "video": self.video,
            "duration": float(self.bounds[-1]),
            "segments": len(self.bounds) - 1,
            "classes_detected": [self.classes[c] for c in np.flatnonzero(self.video_prob >= THRESHOLD)],
            "events": self.events,
        }


def _runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """mask bool [T, C] -> (class, first segment, last segment + 1) for each run of True, vectorised."""
    padded = np.pad(mask.astype(np.int8), ((1, 1), (0, 0)))
    diff = np.diff(padded, axis=0)  # [T + 1, C]: +1 at a run's start, -1 one past its end
    starts_t, starts_c = np.nonzero(diff == 1)
    ends_t, ends_c = np.nonzero(diff == -1)
    order_s, order_e = np.lexsort((starts_t, starts_c)), np.lexsort((ends_t, ends_c))
    return list(
        zip(starts_c[order_s].tolist(), starts_t[order_s].tolist(), ends_t[order_e].tolist(), strict=True)
    )


def events_from_probs(
    prob_a: np.ndarray,
    prob_v: np.ndarray,
    video_prob: np.ndarray | None,
    bounds: np.ndarray,
    classes: tuple[str, ...],
    tie_rule: str = "ge",
    source: str = "parser",
) -> list[dict]:
    """Segment probabilities [T, C] (+ video probability [C] as a gate, or None) -> sorted event dicts."""
    above = np.greater_equal if tie_rule == "ge" else np.greater
    gate = above(video_prob, THRESHOLD)[None, :] if video_prob is not None else True
    on_a = above(prob_a, THRESHOLD) & gate
    on_v = above(prob_v, THRESHOLD) & gate
    masks = {
        "audio": (on_a, prob_a),
        "visual": (on_v, prob_v),
        "audio-visual": (on_a & on_v, np.minimum(prob_a, prob_v)),
    }
    events = []
    for modality, (mask, prob) in masks.items():
        for c, t0, t1 in _runs(mask):
            events.append(
                {
                    "class": classes[c],
                    "modality": modality,
                    "onset": round(float(bounds[t0]), 3),
                    "offset": round(float(bounds[t1]), 3),
                    "confidence": round(float(prob[t0:t1, c].mean()), 4),
                    "source": source,
                }
            )
    events.sort(key=lambda e: (e["onset"], MODALITIES.index(e["modality"]), e["class"]))
    return events


def load_uwav_parser(path: str | Path, device: str = "cpu"):
    """A parser checkpoint trained on the UWAV layout (CLAP audio 512 + CLIP visual 768); else a UwavError."""
    model, ckpt = load_parser(path, device)
    layout = ((ckpt.get("config") or {}).get("paths") or {}).get("layout")
    if layout != "uwav":
        raise UwavError(
            f"{path}: parser trained on the {layout!r} feature layout; `uwav parse` extracts CLAP/CLIP "
            "features, so it needs a parser trained with paths.layout: uwav"
        )
    return model, ckpt


def run_parser(model, clap: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One video's features clap [T, Da], clip [T, Dv] -> (video_prob [C], prob_a [T, C], prob_v [T, C])."""
    if clap.shape[1] != model.audio_dim or clip.shape[1] != model.visual_dim:
        raise UwavError(
            f"features are audio {clap.shape[1]}-d and visual {clip.shape[1]}-d but the parser "
            f"expects {model.audio_dim}-d and {model.visual_dim}-d; extract with the models it was "
            "trained on"
        )
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(
            torch.from_numpy(clap[None]).float().to(device), torch.from_numpy(clip[None]).float().to(device)
        )
    prob = [
        x[0].float().cpu().numpy().astype(np.float64)
        for x in (out.video_prob, torch.sigmoid(out.seg_logits_a), torch.sigmoid(out.seg_logits_v))
    ]
    return prob[0], prob[1], prob[2]


def parse_features(
    model,
    clap: np.ndarray,
    clip: np.ndarray,
    bounds: np.ndarray,
    classes: tuple[str, ...],
    video: str = "",
    tie_rule: str = "ge",
) -> Parsed:
    """Parser inference on one video's features; bounds [T + 1] are the segment boundaries in seconds."""
    if not (clap.shape[0] == clip.shape[0] == len(bounds) - 1):
        raise UwavError(
            f"{video}: {clap.shape[0]} audio and {clip.shape[0]} visual segments for "
            f"{len(bounds) - 1} segment bounds; expected equal counts"
        )
    video_prob, prob_a, prob_v = run_parser(model, clap, clip)
    if video_prob.shape[0] != len(classes):
        raise UwavError(
            f"the parser predicts {video_prob.shape[0]} classes but --classes names {len(classes)}"
        )
    events = events_from_probs(prob_a, prob_v, video_prob, bounds, classes, tie_rule)
    return Parsed(video, bounds, classes, video_prob, prob_a, prob_v, events)


def parse_videos(
    inputs,
    parser: str | Path,
    options,
    generator: str | Path | None = None,
    extractor=None,
    progress: bool = False,
) -> list[Parsed]:
    """Decode, extract and parse each input video (files, folders, .txt lists). `options`: ExtractOptions."""
    videos = list_videos(inputs)  # nothing to parse is refused before any model is loaded
    model, ckpt = load_uwav_parser(parser, options.device)
    tie_rule = ((ckpt.get("config") or {}).get("eval") or {}).get("tie_rule", "ge")
    classes = class_names(options.classes)
    extractor = extractor or Extractor(options)
    gen = text = None
    if generator is not None:
        gen = load_generator(generator, options.device)
        text = [torch.from_numpy(t) for t in extractor.text_embeddings()]  # (CLIP, CLAP)
    results, failed = [], []
    for path in videos:
        try:
            decoded = decode_video(path, options.segments)
        except UwavError as err:  # the others are still parsed, so that every failure is named at once
            failed.append(str(err))
            continue
        clip, clap = extractor.features(decoded)
        parsed = parse_features(model, clap, clip, decoded.bounds(), classes, str(path), tie_rule)
        if gen is not None:
            with torch.no_grad():
                z_a, z_v = gen(torch.from_numpy(clap[None]), torch.from_numpy(clip[None]), text[1], text[0])
            pa, pv = (torch.sigmoid(z[0]).double().numpy() for z in (z_a, z_v))
            parsed.events += events_from_probs(pa, pv, None, parsed.bounds, classes, tie_rule, "generator")
        results.append(parsed)
        if progress:
            print(f"{path}: {len(parsed.events)} events", flush=True)
    if failed:
        shown = "; ".join(failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise UwavError(f"{len(failed)} of {len(videos)} video(s) could not be decoded, nothing written: {shown}")
    return results


def plot_timeline(parsed: Parsed, path: str | Path, note: str = "", max_classes: int = 8) -> Path:
    """PNG timeline: one lane per detected class and modality; bars = events, shading = segment probability.

    Lanes show the classes with parser events, or the most probable classes when there are none.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser_events = [e for e in parsed.events if e["source"] == "parser"]
    shown = sorted({parsed.classes.index(e["class"]) for e in parser_events})
    if not shown:
        shown = sorted(np.argsort(-parsed.video_prob, kind="stable")[:3].tolist())
    hidden = max(0, len(shown) - max_classes)
    shown = shown[:max_classes]
    lanes = [(c, m) for c in shown for m in MODALITIES]
    prob = {
        "audio": parsed.prob_audio,
        "visual": parsed.prob_visual,
        "audio-visual": np.minimum(parsed.prob_audio, parsed.prob_visual),
    }
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.32 * len(lanes)), dpi=110)
    b = parsed.bounds
    for row, (c, m) in enumerate(lanes):
        y = len(lanes) - 1 - row
        for t in range(len(b) - 1):  # probability shading, light
            ax.add_patch(
                plt.Rectangle(
                    (b[t], y - 0.4),
                    b[t + 1] - b[t],
                    0.8,
                    color=COLOURS[m],
                    alpha=0.25 * float(prob[m][t, c]),
                    linewidth=0,
                )
            )
        for e in parser_events:
            if e["class"] == parsed.classes[c] and e["modality"] == m:
                ax.add_patch(
                    plt.Rectangle(
                        (e["onset"], y - 0.3),
                        e["offset"] - e["onset"],
                        0.6,
                        color=COLOURS[m],
                        alpha=0.9,
                        linewidth=0,
                    )
                )
                ax.text(
                    e["offset"] - 0.05,
                    y,
                    f"{e['confidence']:.2f}",
                    ha="right",
                    va="center",
                    fontsize=7,
                    color="white",
                )
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"{parsed.classes[c]} · {m}" for c, m in reversed(lanes)], fontsize=8)
    ax.set_xlim(0, float(b[-1]))
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xticks(b, [f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}" for x in b], fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("time (s)")
    title = f"{Path(parsed.video).name}: {len(parser_events)} events"
    title += f" (lanes for {len(shown)} of {len(shown) + hidden} classes)" if hidden else ""
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
