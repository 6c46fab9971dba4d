"""Decode one video into 1-s segments: one RGB frame and one 48 kHz mono waveform chunk per segment (PyAV).

Segmentation (our choice where data-formats.md §6 lists UWAV's as unknown):
  * duration D = the container's duration (falls back to the audio length); T = max(1, round(D)) segments,
    so a 10.03-s LLP clip gives the usual T = 10; `segments=` forces T (e.g. 10 for LLP).
  * segment i spans [i·D/T, (i+1)·D/T).
  * frame: the decoded frame whose timestamp is nearest the segment CENTRE (i+0.5)·D/T, as the UWAV paper
    states. VALOR's released features instead used round(linspace(0, N-1, 10)) over 8-fps frames, i.e.
    late in each segment.
  * audio: decoded at the source layout, resampled to 48 kHz, then the channels AVERAGED (FFmpeg's own
    mono downmix scales stereo by about 1.41), then int16 round-trip quantised as laion_clap does. Chunk i
    starts at sample round(i·N/T) and has N // T samples (VALOR's rule, data-formats.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uwav.errors import UwavError

SAMPLE_RATE = 48_000
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


@dataclass
class DecodedVideo:
    path: Path
    duration: float  # seconds
    frames: list  # T PIL.Image RGB, one per segment (nearest the segment centre)
    frame_times: np.ndarray  # [T] float64 seconds, timestamps of the chosen frames
    chunks: np.ndarray  # [T, S] float32 mono 48 kHz, S = N // T samples
    audio: np.ndarray  # [N] float32 mono 48 kHz, the whole track

    @property
    def segments(self) -> int:
        return len(self.frames)

    def bounds(self) -> np.ndarray:
        """[T + 1] segment boundaries in seconds."""
        return np.linspace(0.0, self.duration, self.segments + 1)


def segment_count(duration: float, segments: int | None = None) -> int:
    return int(segments) if segments else max(1, int(round(duration)))


def int16_roundtrip(x: np.ndarray) -> np.ndarray:
    """laion_clap's float32 -> int16 -> float32 quantisation (clip to [-1, 1], scale 32767)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / np.float32(32767.0)


def chunk_audio(audio: np.ndarray, segments: int) -> np.ndarray:
    """[N] -> [T, N // T]: chunk i starts at round(i·N/T) (VALOR's rule)."""
    n = audio.shape[0]
    length = n // segments
    if length == 0:
        raise UwavError(f"audio of {n} samples is too short for {segments} segments")
    starts = np.round(np.arange(segments) * n / segments).astype(np.int64)
    starts = np.minimum(starts, n - length)
    return audio[starts[:, None] + np.arange(length)[None, :]]


def _decode_audio(container, path: Path) -> np.ndarray:
    import av

    stream = container.streams.audio[0]
    layout = stream.layout.name if stream.layout else "stereo"
    # Keep the source layout and average ourselves (see module docstring).
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
    parts = []
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            parts.append(out.to_ndarray())
    for out in resampler.resample(None):
        parts.append(out.to_ndarray())
    if not parts:
        raise UwavError(f"{path}: the audio stream holds no decodable samples")
    planar = np.concatenate(parts, axis=1)  # [channels, N]
    return planar.mean(axis=0).astype(np.float32)


def _decode_frames(container, targets: np.ndarray, path: Path) -> tuple[list, np.ndarray]:
    """For each target time (sorted), the decoded frame nearest to it; streams, keeps only chosen frames."""
    stream = container.streams.video[0]
    chosen: list = []
    times: list[float] = []
    prev = prev_t = None
    j = 0
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        t = float(frame.pts * frame.time_base)
        while j < len(targets) and t >= targets[j]:
            take_prev = prev is not None and targets[j] - prev_t <= t - targets[j]
            chosen.append(prev if take_prev else frame.to_image())
            times.append(prev_t if take_prev else t)
            j += 1
        prev, prev_t = frame.to_image(), t
    if prev is None:
        raise UwavError(f"{path}: the video stream holds no decodable frames")
    while j < len(targets):  # targets past the last frame get the last frame
        chosen.append(prev)
        times.append(prev_t)
        j += 1
    return chosen, np.asarray(times, dtype=np.float64)


def decode_video(path: str | Path, segments: int | None = None) -> DecodedVideo:
    """Decode `path` into T one-second segments (see the module docstring for the rules)."""
    try:
        import av
    except ImportError:
        raise UwavError(
            "decoding videos needs PyAV; install the extract extra: pip install -e '.[extract]'"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise UwavError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UwavError(f"{path}: no video stream; expected a video with picture and sound")
            if not container.streams.audio:
                raise UwavError(f"{path}: no audio stream; audio-visual parsing needs the soundtrack")
            audio = _decode_audio(container, path)
            duration = (
                container.duration / av.time_base if container.duration else audio.shape[0] / SAMPLE_RATE
            )
            count = segment_count(duration, segments)
            container.seek(0)
            targets = (np.arange(count) + 0.5) * duration / count
            frames, frame_times = _decode_frames(container, targets, path)
    except UwavError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise UwavError(f"{path}: cannot decode the video ({type(err).__name__}: {err})") from None
    audio = int16_roundtrip(audio)
    return DecodedVideo(path, float(duration), frames, frame_times, chunk_audio(audio, count), audio)
