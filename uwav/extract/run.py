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
from uwav.io import file_sha256, read_text_file, save_npy, write_json

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
    """Videos from files, folders (their video files, sorted) and .txt lists (one path a line).

    Nothing to do is an error: a folder without video files, an empty list; so are listed files that do
    not exist (all of them named at once)."""
    videos: list[Path] = []
    inputs = [Path(i) for i in inputs]
    missing: list[str] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise UwavError(f"{item}: no video files in this folder (looked for {', '.join(VIDEO_SUFFIXES)})")
            videos += found
        elif item.suffix.lower() == ".txt" and item.is_file():
            lines = read_text_file(item, "one video path a line", what="video list").splitlines()
            listed = [(n, Path(line.strip())) for n, line in enumerate(lines, 1) if line.strip()]
            if not listed:
                raise UwavError(f"{item}: the video list is empty; expected one video path a line")
            for n, line in listed:
                video = line if line.is_absolute() else item.parent / line
                if not video.is_file():
                    missing.append(f"{item}:{n}: {video}")
                videos.append(video)
        elif item.is_file():
            videos.append(item)
        else:
            raise UwavError(f"{item}: no such video, folder or .txt list")
    if missing:
        raise UwavError(f"{len(missing)} listed video(s) not found: {_some(missing)}")
    if not videos:
        raise UwavError("no videos given")
    ids = [v.stem for v in videos]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise UwavError(
            f"video id {dupes[0]!r} appears {ids.count(dupes[0])} times in the inputs; ids (file "
            "names without suffix) must be unique"
        )
    return videos


def _some(items: list[str], shown: int = 3) -> str:
    """The first few of a list for a one-line message: `a; b; c; and 4 more`."""
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


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
        try:
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
        finally:  # closed early (an interrupt): decodes not yet started are dropped, not waited for
            for _, fut in pending:
                fut.cancel()


def _load_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON or not UTF-8
        raise UwavError(
            f"{path}: unreadable manifest ({type(err).__name__}); delete it to start over"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("videos", {}), dict):
        raise UwavError(f"{path}: not a uwav extract manifest (expected an object with a videos object); "
                        "delete it to start over")
    return manifest


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
    clip_dir, clap_dir = out / CLIP_DIR / SEGMENTS_SUBDIR, out / CLAP_DIR / SEGMENTS_SUBDIR
    if old is not None and not old.get("videos") and not _any_features(clip_dir, clap_dir):
        old = None  # a run that produced nothing holds nothing to mix with: start afresh, any settings
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
    text = None
    if old is None or not (out / CLIP_DIR / EVENT_FILE).is_file() or not (out / CLAP_DIR / EVENT_FILE).is_file():
        text = extractor.text_embeddings(options.classes)
    # A fresh folder is written from its first extracted video on: a run that extracts nothing leaves nothing.
    started = False

    def start() -> None:
        nonlocal started
        if text is not None:
            save_npy(out / CLIP_DIR / EVENT_FILE, text[0])
            save_npy(out / CLAP_DIR / EVENT_FILE, text[1])
        write_json(manifest_path, manifest)
        started = True

    if old is not None:
        start()

    def done(video: Path) -> bool:
        return (clip_dir / f"{video.stem}.npy").is_file() and (clap_dir / f"{video.stem}.npy").is_file()

    todo = [v for v in videos if not done(v)]
    for v in videos:  # done by an interrupted run whose manifest was not yet rewritten
        if v.stem not in manifest["videos"] and done(v):
            t = int(np.load(clip_dir / f"{v.stem}.npy", mmap_mode="r").shape[0])
            manifest["videos"][v.stem] = {"file": str(v), "segments": t, "duration": None}
    if manifest["videos"] and not started:
        start()
    decoded_stream = decoded_in_background(todo, options.workers, options.segments)
    stream = tqdm(decoded_stream, total=len(todo), desc="extract", unit="video") if progress else decoded_stream
    try:
        for i, (path, decoded) in enumerate(stream):
            if isinstance(decoded, UwavError):
                manifest["failed"][path.stem] = str(decoded)
                continue
            clip, clap = extractor.features(decoded)
            if not started:
                start()
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
    finally:  # also on Ctrl-C / SIGTERM: the manifest lists every video finished so far
        decoded_stream.close()
        if started:
            write_json(manifest_path, manifest)
    failed = list(manifest["failed"].values())
    if failed and not started:
        raise UwavError(f"none of the {len(videos)} video(s) could be decoded, nothing written to {out}: "
                        f"{_some(failed)}")
    if failed:
        raise UwavError(
            f"{len(failed)} of {len(videos)} video(s) failed, listed in {manifest_path} (run again to retry them, "
            f"the others are kept): {_some(failed)}"
        )
    return manifest


def _any_features(*folders: Path) -> bool:
    return any(folder.is_dir() and any(folder.glob("*.npy")) for folder in folders)
