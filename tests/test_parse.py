"""uwav.parse: the event rule, a parser trained on synthetic UWAV-layout features, the sample clip end to end
(random weights) with its JSON and timeline PNG, and the layout guard."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SHARED

from uwav.checkpoints import save_parser
from uwav.classes import LLP_CLASSES
from uwav.cli import main
from uwav.config import ParserConfig, config_from_dict
from uwav.models.han import HAN
from uwav.parse import events_from_probs, load_uwav_parser, parse_features, plot_timeline

SAMPLE = SHARED / "llp" / "sample_video" / "BjCEufrlXm4.mp4"
TINY_HAN = ParserConfig(d_model=32, layers=1, heads=2, ff=64, dropout=0.0)


def tiny_han() -> HAN:
    return HAN(TINY_HAN, audio_dim=512, visual_dim=768)


def save_ckpt(path: Path, model: HAN, layout: str = "uwav") -> Path:
    """A parser checkpoint as `uwav train` writes it, with a config naming the feature layout."""
    config = config_from_dict({"paths": {"layout": layout}, "eval": {"tie_rule": "ge"}})
    save_parser(path, model, config, 0, {})
    return path


def test_events_from_probs_runs_modalities_and_gate():
    names = ("Speech", "Dog", "Car")
    a = np.zeros((5, 3))
    v = np.zeros((5, 3))
    a[1:4, 0] = 0.9  # Speech heard 1-4 s
    v[2:5, 0] = 0.7  # Speech seen 2-5 s
    a[0, 1] = v[4, 1] = 0.8  # Dog at both ends, but its video probability is below 0.5: gated out
    a[[0, 2], 2] = 0.6  # Car heard in two separate runs
    video = np.array([0.9, 0.3, 0.6])
    events = events_from_probs(a, v, video, np.arange(6.0), names)
    got = {(e["class"], e["modality"], e["onset"], e["offset"]) for e in events}
    assert got == {
        ("Speech", "audio", 1, 4),
        ("Speech", "visual", 2, 5),
        ("Speech", "audio-visual", 2, 4),
        ("Car", "audio", 0, 1),
        ("Car", "audio", 2, 3),
    }
    av = next(e for e in events if e["modality"] == "audio-visual")
    assert av["confidence"] == pytest.approx(0.7)  # mean of min(audio, visual) over the run
    assert [e["onset"] for e in events] == sorted(e["onset"] for e in events)


def synthetic(n: int, rng: np.random.Generator, protos_a, protos_v, classes: int = 4):
    """Videos with 1-2 of the first `classes` classes, each heard and seen over random spans of 10 s."""
    t = 10
    ya = np.zeros((n, t, 25), np.float32)
    yv = np.zeros((n, t, 25), np.float32)
    for i in range(n):
        for c in rng.choice(classes, size=rng.integers(1, 3), replace=False):
            for y in (ya, yv):
                s = rng.integers(0, 7)
                y[i, s : s + rng.integers(2, 11 - s), c] = 1
    clap = ya @ protos_a + 0.3 * rng.standard_normal((n, t, 512)).astype(np.float32)
    clip = yv @ protos_v + 0.3 * rng.standard_normal((n, t, 768)).astype(np.float32)
    return clap.astype(np.float32), clip.astype(np.float32), ya, yv


def test_trained_parser_recovers_synthetic_events(tmp_path):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    protos_a = rng.standard_normal((25, 512)).astype(np.float32)
    protos_v = rng.standard_normal((25, 768)).astype(np.float32)
    clap, clip, ya, yv = synthetic(256, rng, protos_a, protos_v)
    model = tiny_han()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    x_a, x_v, t_a, t_v = map(torch.from_numpy, (clap, clip, ya, yv))
    t_vid = torch.maximum(t_a.amax(1), t_v.amax(1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for _ in range(100):
        idx = torch.randint(0, 256, (32,))
        out = model(x_a[idx], x_v[idx])
        loss = (
            bce(out.seg_logits_a, t_a[idx])
            + bce(out.seg_logits_v, t_v[idx])
            + torch.nn.functional.binary_cross_entropy(out.video_prob.clamp(1e-6, 1 - 1e-6), t_vid[idx])
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = save_ckpt(tmp_path / "parser.pt", model.eval())
    loaded, _ = load_uwav_parser(ckpt)

    clap, clip, ya, yv = synthetic(20, rng, protos_a, protos_v)
    bounds = np.arange(11.0)
    hits = total = 0
    for i in range(20):
        parsed = parse_features(loaded, clap[i], clip[i], bounds, LLP_CLASSES, video=f"v{i}")
        for modality, truth in (("audio", ya[i]), ("visual", yv[i])):
            pred = np.zeros_like(truth)
            for e in parsed.events:
                if e["modality"] == modality:
                    pred[int(e["onset"]) : int(e["offset"]), LLP_CLASSES.index(e["class"])] = 1
            hits += int((pred == truth).all(axis=1).sum())
            total += truth.shape[0]
    assert hits / total >= 0.9  # segments whose predicted class set equals the truth


def test_parser_on_another_layout_is_refused(tmp_path):
    model = tiny_han()
    ckpt = save_ckpt(tmp_path / "han.pt", model, layout="han")
    result = CliRunner().invoke(main, ["parse", str(SAMPLE), "--parser", str(ckpt), "--random-weights"])
    assert result.exit_code == 2
    assert "feature layout" in result.output and "paths.layout: uwav" in result.output


@pytest.mark.skipif(
    not SAMPLE.is_file()
    or importlib.util.find_spec("open_clip") is None
    or importlib.util.find_spec("laion_clap") is None,
    reason="sample clip or extract extra missing",
)
def test_parse_sample_clip_with_random_weights(tmp_path):
    from test_extract import TINY_CLIP, TINY_ROBERTA, write_tokenizer

    from uwav.extract.run import ExtractOptions
    from uwav.parse import parse_videos

    torch.manual_seed(1)
    config = tmp_path / "uwav-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    options = ExtractOptions(
        random_weights=True,
        clip_config=str(config),
        clap_text_config=TINY_ROBERTA,
        clap_tokenizer=str(write_tokenizer(tmp_path / "tok")),
    )
    model = tiny_han()
    with torch.no_grad():  # bias the classifier so that random weights still produce some events
        model.fc_prob.bias[:] = -4.0
        model.fc_prob.bias[[0, 3]] = 4.0
    ckpt = save_ckpt(tmp_path / "parser.pt", model.eval())
    (parsed,) = parse_videos([SAMPLE], ckpt, options)
    report = parsed.to_json()
    assert report["segments"] == 10 and report["duration"] == pytest.approx(10.03, abs=0.01)
    assert report["events"], "the biased classifier must yield events"
    bounds = np.linspace(0, report["duration"], 11)
    for e in report["events"]:
        assert set(e) == {"class", "modality", "onset", "offset", "confidence", "source"}
        assert e["class"] in LLP_CLASSES and e["modality"] in ("audio", "visual", "audio-visual")
        assert 0 <= e["onset"] < e["offset"] <= report["duration"] + 1e-3
        assert np.min(np.abs(bounds - e["onset"])) < 1e-3 and np.min(np.abs(bounds - e["offset"])) < 1e-3
        assert 0 <= e["confidence"] <= 1
    assert {e["class"] for e in report["events"]} <= {"Speech", "Dog"}
    png = plot_timeline(parsed, tmp_path / "timeline.png", note="random weights")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
