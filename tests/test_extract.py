"""uwav.extract on the real sample clip: decoding rules, CLIP/CLAP encoders loaded from checkpoints the tests
save (random weights), the UWAV layout, the manifest, resume, and the compatibility guards."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

# find_spec, not import: a bare `import open_clip` fails beside the CPU torch (uwav.extract.compat).
for _name in ("av", "open_clip"):
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_name} not installed (extract extra)", allow_module_level=True)
import torch  # noqa: E402
from conftest import SHARED  # noqa: E402

from uwav.errors import UwavError  # noqa: E402
from uwav.extract import video as V  # noqa: E402

SAMPLE = SHARED / "llp" / "sample_video" / "BjCEufrlXm4.mp4"
TINY_CLIP = {
    "embed_dim": 768,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
TINY_ROBERTA = {"vocab_size": 300, "num_hidden_layers": 1, "intermediate_size": 64, "num_attention_heads": 2}

needs_sample = pytest.mark.skipif(not SAMPLE.is_file(), reason="shared sample clip not found")


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / RoBERTa byte-level alphabet (256 printable stand-ins for the bytes)."""
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    extra = [b for b in range(256) if b not in bs]
    return [chr(c) for c in bs] + [chr(256 + i) for i in range(len(extra))]


def write_tokenizer(folder: Path, with_bytes: bool = True) -> Path:
    """A real RoBERTa tokenizer folder with a byte-level vocabulary and no merges (tiny, offline)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode() if with_bytes else []:
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Tiny CLIP config + both checkpoints saved from randomly initialised models, and a tokenizer."""
    if importlib.util.find_spec("laion_clap") is None:  # not imported: `import laion_clap` hits the hub
        pytest.skip("laion_clap not installed")
    from uwav.extract.clap import load_clap
    from uwav.extract.clip import load_clip

    root = tmp_path_factory.mktemp("assets")
    config = root / "uwav-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    tok = write_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    clip = load_clip(config=str(config))
    torch.save(clip.model.state_dict(), root / "clip.pt")
    clap = load_clap(None, str(tok), text_config=TINY_ROBERTA)
    torch.save({"state_dict": clap.model.state_dict()}, root / "clap.pt")
    return {
        "config": str(config),
        "tokenizer": str(tok),
        "clip": str(root / "clip.pt"),
        "clap": str(root / "clap.pt"),
    }


def make_options(assets, **kw):
    from uwav.extract.run import ExtractOptions

    return ExtractOptions(
        clip_pretrained=assets["clip"],
        clip_config=assets["config"],
        clap_checkpoint=assets["clap"],
        clap_tokenizer=assets["tokenizer"],
        clap_text_config=TINY_ROBERTA,
        workers=2,
        **kw,
    )


@pytest.fixture(scope="module")
def extractor(assets):
    from uwav.extract.run import Extractor

    return Extractor(make_options(assets))


# ---- decoding ----------------------------------------------------------------------------------


@needs_sample
def test_decode_sample_segments_frames_and_audio():
    d = V.decode_video(SAMPLE)
    assert d.segments == 10 and abs(d.duration - 10.03) < 0.01
    centres = (np.arange(10) + 0.5) * d.duration / 10
    assert np.all(np.abs(d.frame_times - centres) <= 0.5 / 29.9 + 1e-6)  # nearest frame at ~29.92 fps
    assert d.frames[0].size == (320, 240) and d.frames[0].mode == "RGB"
    n = d.audio.shape[0]
    assert abs(n - d.duration * V.SAMPLE_RATE) < 0.05 * V.SAMPLE_RATE
    assert d.chunks.shape == (10, n // 10) and d.chunks.dtype == np.float32
    assert np.array_equal(d.chunks[3], d.audio[round(3 * n / 10) : round(3 * n / 10) + n // 10])
    q = d.audio * 32767.0  # int16 round trip: every sample is a multiple of 1/32767
    assert np.allclose(q, np.round(q), atol=1e-2) and np.abs(d.audio).max() <= 1.0
    assert V.decode_video(SAMPLE, segments=4).chunks.shape == (4, n // 4)


def test_chunk_audio_follows_valor_rule():
    audio = np.arange(103, dtype=np.float32)
    chunks = V.chunk_audio(audio, 10)
    assert chunks.shape == (10, 10)
    assert chunks[:, 0].tolist() == [round(i * 103 / 10) for i in range(10)]


def test_decode_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(UwavError, match="corrupt.mp4"):
        V.decode_video(bad)
    with pytest.raises(UwavError, match="missing.mp4: video file not found"):
        V.decode_video(tmp_path / "missing.mp4")

    import av

    silent = tmp_path / "silent.mp4"
    with av.open(str(silent), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(10):
            out.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24"))
            )
        out.mux(stream.encode(None))
    with pytest.raises(UwavError, match="silent.mp4: no audio stream"):
        V.decode_video(silent)


# ---- encoders ----------------------------------------------------------------------------------


def test_mel_filterbank_is_htk_triangles_without_norm():
    from uwav.extract.clap import melscale_fbanks

    fb = melscale_fbanks(513, 50, 14000, 64, 48000).numpy()  # [freq bins, mels]
    freqs = np.linspace(0, 24000, 513)
    mel = 2595 * np.log10(1 + np.array([50.0, 14000.0]) / 700)
    centres = 700 * (10 ** (np.linspace(mel[0], mel[1], 66)[1:-1] / 2595) - 1)
    assert fb.shape == (513, 64) and fb.min() >= 0 and fb.max() <= 1  # norm=None: peaks of height <= 1
    assert np.all(fb[(freqs < 50) | (freqs > 14000)] == 0)
    peaks = freqs[fb.argmax(axis=0)]
    assert np.all(np.abs(peaks - centres) <= 24000 / 512)  # each triangle peaks at its HTK centre


@needs_sample
def test_encoders_shapes_norms_and_checkpoint_loading(assets, extractor):
    from uwav.extract.clip import load_clip

    d = V.decode_video(SAMPLE)
    clip, clap = extractor.features(d)
    assert clip.shape == (10, 768) and clap.shape == (10, 512)
    assert clip.dtype == clap.dtype == np.float32
    assert np.allclose(np.linalg.norm(clip, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(clap, axis=1), 1, atol=1e-5)
    text_clip, text_clap = extractor.text_embeddings()
    assert text_clip.shape == (25, 768) and text_clap.shape == (25, 512)
    assert np.allclose(np.linalg.norm(text_clap, axis=1), 1, atol=1e-5)
    assert len({r.tobytes() for r in text_clap}) == 25  # distinct prompts, distinct embeddings
    # The checkpoint really is loaded: a fresh random model differs, the saved one reproduces.
    fresh = load_clip(config=assets["config"])
    assert not np.allclose(fresh.encode_images(d.frames[:2]), clip[:2], atol=1e-3)
    again = load_clip(config=assets["config"], pretrained=assets["clip"])
    assert np.allclose(again.encode_images(d.frames[:2]), clip[:2], atol=1e-5)


def test_degenerate_or_missing_tokenizer_is_refused(assets, extractor, tmp_path):
    from uwav.classes import CLAP_PROMPT, LLP_CLASSES, prompts
    from uwav.extract.clap import ClapEncoder

    clap = extractor.clap
    empty = ClapEncoder(
        clap.model,
        clap.audio_cfg,
        str(write_tokenizer(tmp_path / "empty", with_bytes=False)),
        clap.name,
        clap.checkpoint,
        clap.device,
    )
    with pytest.raises(UwavError, match="25 different prompts gave only 1"):
        empty.encode_texts(prompts(LLP_CLASSES, CLAP_PROMPT))
    missing = ClapEncoder(
        clap.model,
        clap.audio_cfg,
        str(tmp_path / "no-such-tokenizer"),
        clap.name,
        clap.checkpoint,
        clap.device,
    )
    with pytest.raises(UwavError, match="cannot load it offline"):
        missing.encode_texts(["This is the sound of dog"])


def test_weights_are_required_unless_random(assets):
    from uwav.extract.run import ExtractOptions, Extractor

    with pytest.raises(UwavError, match="no weights given"):
        Extractor(ExtractOptions(clip_config=assets["config"]))
    with pytest.raises(UwavError, match="not a CLAP checkpoint"):
        from uwav.extract.clap import load_clap

        load_clap(assets["config"], assets["tokenizer"], text_config=TINY_ROBERTA)


# ---- extraction run: layout, manifest, resume ---------------------------------------------------


@needs_sample
def test_extract_layout_manifest_and_resume(assets, extractor, tmp_path):
    from uwav.data.features import load_text_embeddings, load_uwav_segments
    from uwav.extract.run import extract
    from uwav.io import file_sha256

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(SAMPLE, videos / "BjCEufrlXm4.mp4")
    shutil.copy(SAMPLE, videos / "copyOfSampl.mp4")
    out = tmp_path / "feats"
    done: list[str] = []
    opts = make_options(assets, segments=3)  # 3 segments keep CLAP's 10-s padded inputs few
    manifest = extract([videos], out, opts, progress=False, extractor=extractor, on_video=done.append)
    assert sorted(done) == ["BjCEufrlXm4", "copyOfSampl"]
    feats = load_uwav_segments(out, ["BjCEufrlXm4", "copyOfSampl"], length=None)  # the project's reader
    assert feats["clip"].shape == (2, 3, 768) and feats["clap"].shape == (2, 3, 512)
    assert np.allclose(feats["clap"][0], feats["clap"][1], atol=1e-5)  # same video, same features
    text_clip, text_clap = load_text_embeddings(out, 25)
    assert text_clip.shape == (25, 768) and text_clap.shape == (25, 512)

    written = json.loads((out / "manifest.json").read_text())
    assert written["clip"]["sha256"] == file_sha256(assets["clip"])
    assert written["clap"]["sha256"] == file_sha256(assets["clap"])
    assert written["clap"]["library"] == "laion_clap" and written["clip"]["model"] == "uwav-tiny-clip"
    assert written["videos"]["BjCEufrlXm4"]["segments"] == 3 == manifest["videos"]["copyOfSampl"]["segments"]

    done.clear()
    extract([videos], out, opts, progress=False, extractor=extractor, on_video=done.append)
    assert done == []  # everything done: nothing re-extracted
    (out / "feats_CLAP" / "segment_feats" / "copyOfSampl.npy").unlink()
    extract([videos], out, opts, progress=False, extractor=extractor, on_video=done.append)
    assert done == ["copyOfSampl"]

    other = make_options(assets, segments=4)
    with pytest.raises(UwavError, match="other settings .*segments"):
        extract([videos], out, other, progress=False, extractor=extractor)


@needs_sample
def test_extract_reports_failed_videos_and_keeps_the_rest(assets, extractor, tmp_path):
    from uwav.extract.run import extract

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(SAMPLE, videos / "good.mp4")
    (videos / "broken.mp4").write_bytes(b"garbage" * 50)
    out = tmp_path / "feats"
    with pytest.raises(UwavError, match="1 of 2 video.*broken.mp4"):
        extract([videos], out, make_options(assets, segments=2), progress=False, extractor=extractor)
    assert (out / "feats_CLIP" / "segment_feats" / "good.npy").is_file()
    assert "broken" in json.loads((out / "manifest.json").read_text())["failed"]
