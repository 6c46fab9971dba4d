"""Batched extraction of videos into the UWAV feature layout (data-formats.md §5), resumable, with a manifest.

Output, relative to `out`:
  feats_CLIP/segment_feats/<id>.npy        [T, D_clip] float32, L2-normalised image embeddings
  feats_CLAP/segment_feats/<id>.npy        [T, D_clap] float32, L2-normalised audio embeddings
  feats_CLIP/event_feats/all_event_feats.npy   [C, D_clip] text embeddings of "A photo of <class>"
  feats_CLAP/event_feats/all_event_feats.npy   [C, D_clap] text embeddings of "This is the sound of <class>"
  manifest.json    models, weights and their SHA-256, prompts, segmentation rule, and one entry per video

<id> is the file name without its suffix. A video whose two files exist is skipped (resume); every file is
written atomically, so an interrupted run leaves only complete files. Decoding runs in `workers` threads
(PyAV releases the GIL) while the encoders run in the calling thread.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uwav.classes import CLAP_PROMPT, CLIP_PROMPT, class_names, prompts
from uwav.errors import UwavError
from uwav.extract.clap import load_clap
from uwav.extract.clip import load_clip
from uwav.extract.video import VIDEO_SUFFIXES, DecodedVideo, decode_video
from uwav.io import file_sha256, save_npy, write_json

CLIP_DIR = "feats_CLIP"
CLAP_DIR = "feats_CLAP"
SEGMENTS_SUBDIR = "segment_feats"
EVENT_FILE = "event_feats/all_event_feats.npy"
MANIFEST = "manifest.json"
SEGMENTATION = (
    "T = round(duration) one-second segments (or --segments); frame nearest each segment centre; "
    "audio 48 kHz, channels averaged, int16 round-trip, chunk i = N//T samples from round(i*N/T), "
    "repeat-padded to 10 s for CLAP"
)


@dataclass
class ExtractOptions:
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = None  # local checkpoint file or an open_clip tag already cached
    clip_config: str | None = None  # open_clip model-config JSON for custom architectures
    clap_checkpoint: str | None = None  # local laion_clap checkpoint (630k-fusion-best.pt)
    clap_tokenizer: str = "roberta-base"  # folder with vocab.json + merges.txt, or a cached hub name
    clap_audio_model: str = "HTSAT-tiny"
    clap_fusion: bool = True
    clap_text_config: dict | None = None  # RoBERTa architecture override (tests)
    random_weights: bool = False  # allow missing weights (smoke tests, pictures)
    classes: str = "llp"
    segments: int | None = None
    batch_size: int = 64
    workers: int = 2
    device: str = "cpu"


class Extractor:
    """Both encoders, loaded once: decoded video -> (clip [T, Dv], clap [T, Da]); classes -> text."""

    def __init__(self, options: ExtractOptions):
        if not options.random_weights and not (options.clip_pretrained and options.clap_checkpoint):
            raise UwavError(
                "no weights given: pass --clip-pretrained (checkpoint file or cached open_clip tag) "
                "and --clap-checkpoint FILE, or --random-weights for a smoke test"
            )
        self.options = options
        self.clip = load_clip(
            options.clip_model, options.clip_pretrained, options.clip_config, options.device
        )
        self.clap = load_clap(
            options.clap_checkpoint,
            options.clap_tokenizer,
            options.clap_audio_model,
            options.clap_fusion,
            options.device,
            options.clap_text_config,
        )

    def features(self, video: DecodedVideo) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.clip.encode_images(video.frames, self.options.batch_size),
            self.clap.encode_audio(video.chunks, self.options.batch_size),
        )

    def text_embeddings(self, classes: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(CLIP [C, Dv], CLAP [C, Da]) for a class vocabulary, from method.md §2.3's templates."""
        names = class_names(classes or self.options.classes)
        return (
            self.clip.encode_texts(prompts(names, CLIP_PROMPT)),
            self.clap.encode_texts(prompts(names, CLAP_PROMPT)),
        )

    def describe(self) -> dict:
        """The manifest's model section: names, weights and SHA-256 of local weight files."""
        o = self.options
        return {
            "classes": o.classes,
            "prompts": {"clip": CLIP_PROMPT, "clap": CLAP_PROMPT},
            "clip": {
                "library": "open_clip",
                "model": self.clip.name,
                "weights": self.clip.pretrained,
                "sha256": _sha256_or_none(o.clip_pretrained),
                "dim": self.clip.dim,
                "config": o.clip_config,
                "sha256_config": _sha256_or_none(o.clip_config),
            },
            "clap": {
                "library": "laion_clap",
                "model": self.clap.name,
                "weights": self.clap.checkpoint,
                "sha256": _sha256_or_none(o.clap_checkpoint),
                "dim": self.clap.dim,
                "tokenizer": o.clap_tokenizer,
                "text_config": o.clap_text_config,
            },
            "segmentation": SEGMENTATION,
            "segments": o.segments,
        }


def _sha256_or_none(path: str | None) -> str | None:
    return file_sha256(path) if path and Path(path).is_file() else None


def list_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Videos from files, folders (their video files, sorted) and .txt lists (one path a line)."""
    videos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            videos += sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.suffix.lower() == ".txt" and item.is_file():
            lines = [line.strip() for line in item.read_text().splitlines()]
            videos += [
                Path(line) if Path(line).is_absolute() else item.parent / line for line in lines if line
            ]
        elif item.is_file():
            videos.append(item)
        else:
            raise UwavError(f"{item}: no such video, folder or .txt list")
    ids = [v.stem for v in videos]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise UwavError(
            f"video id {dupes[0]!r} appears {ids.count(dupes[0])} times in the inputs; ids (file "
            "names without suffix) must be unique"
        )
    return videos


def decoded_in_background(
    paths: list[Path], workers: int, segments: int | None
) -> Iterator[tuple[Path, DecodedVideo | UwavError]]:
    """Yield (path, decoded video or its error) in input order, decoding up to 2·workers videos ahead."""
    if workers <= 1:
        for p in paths:
            try:
                yield p, decode_video(p, segments)
            except UwavError as err:
                yield p, err
        return

    def job(p: Path):
        try:
            return decode_video(p, segments)
        except UwavError as err:
            return err

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Path, Future]] = deque()
        todo = iter(paths)
        for p in todo:
            pending.append((p, pool.submit(job, p)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            p, fut = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(job, nxt)))
            yield p, fut.result()


def _load_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UwavError(
            f"{path}: unreadable manifest ({type(err).__name__}); delete it to start over"
        ) from None


def _same_models(old: dict, new: dict) -> str | None:
    """The first manifest key whose value differs between runs (resuming would mix features), else None."""
    for section, keys in (
        ("clip", ("model", "weights", "sha256", "sha256_config")),
        ("clap", ("model", "weights", "sha256", "tokenizer")),
        ("", ("classes", "segments")),
    ):
        for key in keys:
            a = old.get(section, {}).get(key) if section else old.get(key)
            b = new.get(section, {}).get(key) if section else new.get(key)
            if a != b:
                return f"{section + '.' if section else ''}{key}: {a!r} before, {b!r} now"
    return None


def extract(
    inputs: Iterable[str | Path],
    out: str | Path,
    options: ExtractOptions,
    progress: bool = True,
    extractor: Extractor | None = None,
    on_video: Callable[[str], None] | None = None,
) -> dict:
    """Extract every input video into `out` (UWAV layout); skip videos already done. Returns the manifest.

    Videos that fail to decode are listed under manifest["failed"], and a UwavError naming them is raised
    after all others are written.
    """
    out = Path(out)
    videos = list_videos(inputs)
    manifest_path = out / MANIFEST
    old = _load_manifest(manifest_path)
    extractor = extractor or Extractor(options)
    models = {**extractor.describe(), "classes": options.classes, "segments": options.segments}
    if old is not None:
        diff = _same_models(old, models)
        if diff:
            raise UwavError(
                f"{manifest_path}: this folder was extracted with other settings ({diff}); use "
                "another --out folder so features of different models never mix"
            )
    manifest = {**models, "videos": dict(old.get("videos", {})) if old else {}, "failed": {}}

    clip_dir, clap_dir = out / CLIP_DIR / SEGMENTS_SUBDIR, out / CLAP_DIR / SEGMENTS_SUBDIR
    if (
        old is None
        or not (out / CLIP_DIR / EVENT_FILE).is_file()
        or not (out / CLAP_DIR / EVENT_FILE).is_file()
    ):
        text_clip, text_clap = extractor.text_embeddings(options.classes)
        save_npy(out / CLIP_DIR / EVENT_FILE, text_clip)
        save_npy(out / CLAP_DIR / EVENT_FILE, text_clap)
    write_json(manifest_path, manifest)

    def done(video: Path) -> bool:
        return (clip_dir / f"{video.stem}.npy").is_file() and (clap_dir / f"{video.stem}.npy").is_file()

    todo = [v for v in videos if not done(v)]
    for v in videos:  # done by an interrupted run whose manifest was not yet rewritten
        if v.stem not in manifest["videos"] and done(v):
            t = int(np.load(clip_dir / f"{v.stem}.npy", mmap_mode="r").shape[0])
            manifest["videos"][v.stem] = {"file": str(v), "segments": t, "duration": None}
    stream = decoded_in_background(todo, options.workers, options.segments)
    if progress:
        stream = tqdm(stream, total=len(todo), desc="extract", unit="video", initial=0)
    for i, (path, decoded) in enumerate(stream):
        if isinstance(decoded, UwavError):
            manifest["failed"][path.stem] = str(decoded)
            continue
        clip, clap = extractor.features(decoded)
        save_npy(clip_dir / f"{path.stem}.npy", clip)
        save_npy(clap_dir / f"{path.stem}.npy", clap)
        manifest["videos"][path.stem] = {
            "file": str(path),
            "segments": decoded.segments,
            "duration": round(decoded.duration, 4),
        }
        if on_video is not None:
            on_video(path.stem)
        if i % 50 == 49:
            write_json(manifest_path, manifest)
    write_json(manifest_path, manifest)
    if manifest["failed"]:
        first = next(iter(manifest["failed"].values()))
        raise UwavError(
            f"{len(manifest['failed'])} of {len(videos)} video(s) failed, listed in {manifest_path}; "
            f"first: {first}"
        )
    return manifest
