"""Synthetic datasets: layouts round-trip through `uwav data check`, determinism, label statistics,
zero-shot informativeness, and atomic writing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from uwav.classes import LLP_CLASSES, UNAV_CLASSES
from uwav.cli import main
from uwav.data import synthetic as S
from uwav.data.features import load_text_embeddings, load_uwav_segments
from uwav.data.llp import load_llp_split, parse_filename, read_dense_csv
from uwav.data.unav import read_unav_json
from uwav.errors import UwavError

FEW = {"train": 4, "val": 2, "test": 2, "unav_train": 3, "unav_validation": 2, "unav_test": 1}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    result = CliRunner().invoke(main, ["data", "synth", str(out), "--size", "tiny", "--seed", "7"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("layout", ["han", "valor", "uwav"])
def test_synth_then_check_round_trip(tiny, layout):
    result = CliRunner().invoke(main, ["data", "check", str(tiny / "llp"), "--layout", layout])
    assert result.exit_code == 0, result.output
    assert "train 48 videos" in result.output and "80/80 ok" in result.output
    assert "ok: no problems" in result.output


def test_check_unav_and_ave(tiny):
    result = CliRunner().invoke(
        main, ["data", "check", str(tiny / "unav"), "--layout", "uwav", "--dataset", "unav"]
    )
    assert result.exit_code == 0, result.output
    assert "train      64 videos" in result.output and "(100, 768) ok" in result.output
    result = CliRunner().invoke(
        main, ["data", "check", str(tiny / "llp"), "--layout", "uwav", "--dataset", "ave"]
    )
    # an LLP tree holds no AVE annotation files
    assert result.exit_code == 2 and "Annotations.txt: file not found" in result.output


def test_check_reports_every_problem(tmp_path):
    out = tmp_path / "s"
    S.generate(out, "tiny", seed=1, layouts=("han",), overrides=FEW)
    train = load_llp_split(out / "llp/annotations", "train").ids
    (out / "llp/feats/vggish" / f"{train[0]}.npy").unlink()
    np.save(out / "llp/feats/res152" / f"{train[1]}.npy", np.zeros((10, 2048), np.float32))
    np.save(out / "llp/feats/r2plus1d_18" / f"{train[2]}.npy", np.full((10, 512), np.inf, np.float32))
    result = CliRunner().invoke(main, ["data", "check", str(out / "llp"), "--layout", "han"])
    assert result.exit_code == 2
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 3
    assert f"vggish/{train[0]}.npy: found no file" in problems[0]
    assert f"res152/{train[1]}.npy: found shape (10, 2048)" in problems[1]
    assert "NaN/inf" in problems[2]
    assert "error: 3 problem(s)" in result.output
    # A layout that is not there at all: one problem per missing folder, not one per file.
    result = CliRunner().invoke(main, ["data", "check", str(out / "llp"), "--layout", "uwav"])
    assert result.exit_code == 2 and result.output.count("found no folder") == 2


def test_deterministic_bytes_and_independent_streams(tmp_path):
    S.generate(tmp_path / "a", "tiny", seed=11, overrides=FEW)
    S.generate(tmp_path / "b", "tiny", seed=11, overrides=FEW)
    S.generate(tmp_path / "c", "tiny", seed=12, overrides=FEW)
    S.generate(tmp_path / "d", "tiny", seed=11, layouts=("uwav",), overrides=FEW)
    a, b, c, d = (_digests(tmp_path / x) for x in "abcd")
    assert a == b
    assert len(a) > 90
    changed = [k for k in a if a[k] != c.get(k)]
    assert len(changed) > 0.9 * len(a)
    # Writing fewer layouts changes none of the files both runs write (except the manifest).
    assert {k: v for k, v in d.items() if k != "synthetic.json"} == {
        k: a[k] for k in d if k != "synthetic.json"
    }
    manifest = json.loads((tmp_path / "a/synthetic.json").read_text())
    assert manifest["seed"] == 11 and manifest["generator_version"] == S.GENERATOR_VERSION
    assert manifest["layouts"] == ["han", "valor", "uwav"] and manifest["llp"] == {
        "train": 4,
        "val": 2,
        "test": 2,
    }


def test_refuses_non_empty_out_and_force_replaces(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = CliRunner().invoke(
        main, ["data", "synth", str(out), "--videos-train", "3", "--videos-unav", "2,1,0"]
    )
    assert result.exit_code == 2 and "not empty" in result.output and (out / "keep.txt").exists()
    result = CliRunner().invoke(
        main,
        [
            "data",
            "synth",
            str(out),
            "--force",
            "--videos-train",
            "3",
            "--videos-unav",
            "2,1,0",
            "--layouts",
            "uwav",
        ],
    )
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "llp/feats_CLIP").is_dir()
    assert not (out / "llp/feats").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folders left
    result = CliRunner().invoke(main, ["data", "synth", str(tmp_path / "x"), "--layouts", "han,bogus"])
    assert result.exit_code == 2 and "bogus" in result.output


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise UwavError("disk full (simulated)")

    monkeypatch.setattr(S, "_write_unav", boom)
    with pytest.raises(UwavError, match="simulated"):
        S.generate(tmp_path / "out", "tiny", overrides=FEW)
    assert list(tmp_path.iterdir()) == []


def test_csvs_parse_with_the_real_reader(tiny):
    ann = tiny / "llp/annotations"
    splits = {s: load_llp_split(ann, s) for s in ("train", "val", "test")}
    for split in splits.values():
        assert split.gt_audio is not None and split.gt_visual is not None  # train via synthetic_train_eval
        # Every weak class has an event in at least one modality.
        dense_any = (split.gt_audio | split.gt_visual).any(axis=1)
        assert (dense_any[split.weak > 0]).all()
    all_ids = [i for s in splits.values() for i in s.ids]
    assert len(set(all_ids)) == len(all_ids) and all(len(i) == 11 for i in all_ids)
    for s in splits.values():
        assert any(i.startswith("-") for i in s.ids) and any("_" in i for i in s.ids)
    starts = [parse_filename(f, "x")[1] for f in splits["train"].filenames]
    assert any(x != int(x) for x in starts)
    assert all(parse_filename(f, "x")[2] - parse_filename(f, "x")[1] == 10 for f in splits["train"].filenames)
    full = (ann / "AVVP_dataset_full.csv").read_text().splitlines()
    assert len(full) == 1 + 48 + 16 + 16
    # The quirk rows (a degenerate onset == offset row and an orphan name) are present and harmless.
    audio_rows = [r.split("\t") for r in (ann / "AVVP_eval_audio.csv").read_text().splitlines()[1:]]
    assert any(r[1] == r[2] for r in audio_rows)
    names = set(splits["val"].filenames) | set(splits["test"].filenames)
    assert any(r[0] not in names for r in audio_rows)
    text = (ann / "AVVP_eval_audio.csv").read_bytes()
    assert text.endswith(b"\n") and b"\r" not in text and b'"' not in text


def test_dense_rows_render_to_the_read_ground_truth():
    labels = S.LLPLabels(np.random.default_rng(3), 50, "val")
    names = [f"{i:011d}_0_10" for i in range(50)]
    for modality in ("audio", "visual"):
        lines = "filename\tonset\toffset\tevent_labels\n" + "".join(
            x + "\n" for x in S._dense_lines(names, labels.rows[modality])
        )
        path = Path(f"/tmp/uwav_test_dense_{modality}.csv")
        try:
            path.write_text(lines)
            np.testing.assert_array_equal(read_dense_csv(path, names), labels.gt[modality])
        finally:
            path.unlink(missing_ok=True)


def test_label_statistics_small():
    for split, (lo, hi) in (("train", (1.5, 1.72)), ("val", (1.68, 1.95))):
        labels = S.LLPLabels(S._rng(0, "llp-labels", split), S.SIZES["small"][split] * 4, split)
        count = labels.weak.sum(1)
        assert lo < count.mean() < hi and count.min() >= 1 and count.max() <= 4
        assert 0.44 < labels.weak[:, 0].mean() < 0.56  # Speech in about half the videos
        freq = labels.weak[:, 1:].mean(0)
        assert freq.min() > 0 and np.corrcoef(freq, S.TRAIN_CLASS_COUNTS[1:])[0, 1] > 0.8
        a, v = labels.gt["audio"].any(1), labels.gt["visual"].any(1)
        weak = labels.weak
        for kind in (a & ~v, ~a & v, a & v):  # audio-only, visual-only and audio-visual classes all occur
            assert (kind & weak).sum() > 0.03 * weak.sum()
        lengths = np.concatenate([off - on for _, _, on, off in labels.rows.values()])
        assert set(range(1, 11)) <= set(lengths.tolist())
        assert 0.02 < (~v).all(1).mean() < 0.35  # some videos have nothing visible


def test_touching_rows_exist():
    labels = S.LLPLabels(np.random.default_rng(0), 400, "train")
    vid, cls, on, off = labels.rows["audio"]
    same = (vid[1:] == vid[:-1]) & (cls[1:] == cls[:-1])
    assert (same & (on[1:] == off[:-1])).any()


def test_zero_shot_informative_but_imperfect(tiny):
    root = tiny / "llp"
    clip_text, clap_text = load_text_embeddings(root, len(LLP_CLASSES))
    for split in ("train", "val"):
        data = load_llp_split(root / "annotations", split)
        feats = load_uwav_segments(root, data.ids)
        for feat, text, gt in (
            (feats["clip"], clip_text, data.gt_visual),
            (feats["clap"], clap_text, data.gt_audio),
        ):
            scores = feat @ text.T  # [N, T, C] cosine
            single = gt.sum(-1) == 1
            top1 = gt[single][np.arange(single.sum()), scores[single].argmax(-1)].mean()
            assert 3 / 25 < top1 < 0.97, top1
            assert scores[gt].mean() > scores[~gt].mean() + 0.1


def test_unav_shape_and_shared_concepts(tiny):
    videos = read_unav_json(tiny / "unav/unav100_annotations.json")
    assert [sum(v.subset == s for v in videos.values()) for s in S.UNAV_SUBSETS] == [64, 16, 16]
    durations = [v.duration for v in videos.values()]
    assert 10 <= min(durations) and max(durations) <= 60
    raw = json.loads((tiny / "unav/unav100_annotations.json").read_text())["database"]
    kinds = {type(e["duration"]) for e in raw.values()}
    assert kinds == {int, float}
    assert all(set(e) == {"duration", "annotations", "subset"} and e["annotations"] for e in raw.values())
    vid = next(iter(videos))
    length = np.load(tiny / "unav/feats_CLIP/segment_feats" / f"{vid}.npy").shape[0]
    assert length == max(1, round(videos[vid].duration * S.UNAV_RATE["clip"]))
    assert set(S.LLP_TO_UNAV) == set(LLP_CLASSES) and set(S.LLP_TO_UNAV.values()) <= set(UNAV_CLASSES)
    assert len(set(S.LLP_TO_UNAV.values())) == len(LLP_CLASSES)
    world = S.World(0)
    mapped = [UNAV_CLASSES.index(S.LLP_TO_UNAV[c]) for c in LLP_CLASSES]
    cos = world.concepts["llp"] @ world.concepts["unav"].T
    assert (cos.argmax(1) == mapped).all()  # each LLP concept is closest to its UnAV partner
    i, j = UNAV_CLASSES.index("playing cello"), UNAV_CLASSES.index("playing violin")
    assert (
        cos[LLP_CLASSES.index("Cello"), j] > 0.4
        and world.concepts["unav"][i] @ world.concepts["unav"][j] > 0.4
    )
