"""AVE: the real annotation files (data-formats.md §8), accuracy on hand-built cases, the grid θ fit,
the synthetic AVE set and the pipeline (pretrain / pseudo / train / eval) on it in CI size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from uwav.classes import AVE_CLASSES, AVE_CLASSES_ALPHABETICAL
from uwav.cli import main
from uwav.config import config_from_dict, load_config, with_overrides
from uwav.data import ave as A
from uwav.data.ave import load_ave_split, read_ave_annotations, read_ave_file
from uwav.errors import UwavError
from uwav.metrics import (
    AVE_METRIC_NAMES,
    ave_accuracy,
    ave_segment_labels,
    evaluate_ave,
    segment_labels_from_gt,
)
from uwav.pseudo import fit_thresholds, hard_labels

AVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ave"
BG = len(AVE_CLASSES)


# ---- the real files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    return read_ave_annotations(AVE)


def test_real_rows_splits_and_class_index(real):
    assert len(real.rows) == 4143 and not real.had_header and real.split_source == "txt"
    assert {s: len(r) for s, r in real.split_rows.items()} == {"train": 3339, "val": 402, "test": 402}
    allrows = np.concatenate(list(real.split_rows.values()))
    assert sorted(allrows.tolist()) == list(range(4143))  # disjoint and covering
    first_seen = list(dict.fromkeys(r.category for r in real.rows))
    assert tuple(first_seen) == AVE_CLASSES  # dataset order = first appearance
    assert sum(r.start == 0 and r.end == 10 for r in real.rows) == 2750


def test_real_oddities_are_found_and_reported(real):
    odd = A.ave_oddities(AVE)
    assert odd.zero_length == [(26, "train", "Church bell&VWi2ENBuTbw&good&0&0")]
    assert len(odd.repeated_ids) == 45 and len(odd.cross_split_ids) == 18
    assert sorted(len(v) for v in odd.repeated_ids.values()) == [2] * 44 + [3]
    assert odd.distinct_ids == 4097
    assert odd.background["train"] == pytest.approx(5631 / 33390)
    assert odd.background["val"] == pytest.approx(732 / 4020)
    assert odd.background["test"] == pytest.approx(715 / 4020)
    result = CliRunner().invoke(main, ["data", "check", str(AVE), "--dataset", "ave"])
    assert result.exit_code == 0, result.output
    assert "zero-length row 26 (train) 'Church bell&VWi2ENBuTbw&good&0&0'" in result.output
    assert "45 video ids on more than one row" in result.output and "18 of them in two splits" in result.output
    assert "16.9% background" in result.output and "18.2%" in result.output and "17.8%" in result.output


def test_real_split_arrays_key_samples_by_row(real):
    train = load_ave_split(AVE, "train", annotations=real)
    assert train.weak.shape == (3339, 28) and train.gt_audio.shape == (3339, 10, 28)
    assert (train.weak.sum(axis=1) == 1).all()
    assert len(set(train.filenames)) == 3339 > len(set(train.ids))  # ids repeat inside train, keys do not
    assert np.array_equal(train.gt_audio, train.gt_visual)
    assert np.array_equal(train.segment_labels, segment_labels_from_gt(train.gt_audio))
    i = train.filenames.index("0026_VWi2ENBuTbw")  # the zero-length row: label kept, no event segment
    assert train.weak[i, 0] == 1 and (train.segment_labels[i] == BG).all()
    # a row of the file and its key
    j = int(np.nonzero(train.rows == 1)[0][0])
    assert train.filenames[j] == "0001_MH3m4AwEcRY"  # Church bell&MH3m4AwEcRY&good&6&8
    assert train.segment_labels[j].tolist() == [BG] * 6 + [0] * 2 + [BG] * 2


def test_real_h5_order_matches_txt_and_falls_back_without_h5py(real, monkeypatch):
    pytest.importorskip("h5py")
    via_h5 = read_ave_annotations(AVE, "h5")
    assert via_h5.split_source == "h5"
    for split in ("train", "val", "test"):
        assert np.array_equal(via_h5.split_rows[split], real.split_rows[split])
    monkeypatch.setattr(A, "_h5_available", lambda: False)
    fallback = load_ave_split(AVE, "test", split_source="h5")
    assert fallback.split_source == "txt" and "h5py is not installed" in fallback.notes[0]


def test_alphabetical_class_order_permutes_columns_consistently(real):
    a = load_ave_split(AVE, "val", "dataset", annotations=real)
    b = load_ave_split(AVE, "val", "alphabetical", annotations=real)
    names_a = [AVE_CLASSES[c] for c in a.weak.argmax(1)]
    names_b = [AVE_CLASSES_ALPHABETICAL[c] for c in b.weak.argmax(1)]
    assert names_a == names_b and b.class_order == "alphabetical"
    assert np.array_equal(a.segment_labels == BG, b.segment_labels == BG)
    assert AVE_CLASSES_ALPHABETICAL[0] == "Accordion" and b.weak[:, 0].sum() == 15


# ---- malformed files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Church bell&abc&good&0", "line 2: 4 '&'-separated field(s), expected 5"),
        ("Church bells&abc&good&0&10", "line 2: unknown category 'Church bells'"),
        ("Church bell&abc&good&0&11", "line 2: EndTime '11' is outside 0..10"),
        ("Church bell&abc&good&x&10", "line 2: StartTime 'x' is not an integer"),
        ("Church bell&abc&good&6&2", "line 2: StartTime 6 > EndTime 2"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "Annotations.txt"
    path.write_text(f"Bark&RUhOCu3LNXM&good&0&10\n{line}\n")
    with pytest.raises(UwavError, match=re.escape(message)) as err:
        read_ave_file(path)
    assert str(path) in str(err.value)


def _mini(tmp_path: Path, header: bool = False) -> Path:
    rows = ["Bark&aaaaaaaaaaa&good&0&10", "Cat&bbbbbbbbbbb&good&2&5", "Bark&bbbbbbbbbbb&good&2&5",
            "Goat&ccccccccccc&good&0&0"]
    (tmp_path / "Annotations.txt").write_text((A.HEADER + "\n" if header else "") + "\n".join(rows) + "\n")
    for name, members in (("trainSet.txt", [3, 0]), ("valSet.txt", [1]), ("testSet.txt", [2])):
        (tmp_path / name).write_text("".join(rows[i] + "\n" for i in members))
    return tmp_path


def test_header_is_skipped_and_split_order_kept(tmp_path):
    root = _mini(tmp_path, header=True)
    ann = read_ave_annotations(root)
    assert ann.had_header and len(ann.rows) == 4
    train = load_ave_split(root, "train", annotations=ann)
    assert train.filenames == ("0003_ccccccccccc", "0000_aaaaaaaaaaa")
    assert train.segment_labels.tolist() == [[BG] * 10, [2] * 10]
    val, test = load_ave_split(root, "val"), load_ave_split(root, "test")
    assert val.ids == test.ids == ("bbbbbbbbbbb",) and val.filenames != test.filenames


def test_split_line_not_in_annotations_and_overlapping_splits_are_errors(tmp_path):
    root = _mini(tmp_path)
    (root / "testSet.txt").write_text("Cat&zzzzzzzzzzz&good&2&5\n")
    with pytest.raises(UwavError, match=r"testSet.txt line 1: .* is not a row of Annotations.txt"):
        read_ave_annotations(root)
    (root / "testSet.txt").write_text("Bark&aaaaaaaaaaa&good&0&10\n")
    with pytest.raises(UwavError, match="row 0 .* is in both train and test"):
        read_ave_annotations(root)


# ---- accuracy on hand-built cases ------------------------------------------------------------------


def test_ave_segment_labels_rule():
    # 2 videos, 4 segments, 3 classes; background = 3
    audio = np.zeros((2, 4, 3))
    visual = np.zeros((2, 4, 3))
    video = np.array([[0.1, 0.9, 0.8], [0.4, 0.4, 0.2]])  # video 1: tie -> first index (0)
    audio[0, :, 1] = [0.9, 0.9, 0.5, 0.2]
    visual[0, :, 1] = [0.6, 0.4, 0.5, 0.9]
    audio[0, :, 2] = visual[0, :, 2] = 0.99  # a strong class that is not the video's argmax: ignored
    audio[1, :, 0] = visual[1, :, 0] = [0.7, 0.7, 0.1, 0.7]
    labels = ave_segment_labels(audio, visual, video)
    assert labels.dtype == np.int64
    assert labels.tolist() == [[1, 3, 1, 3], [0, 0, 3, 0]]  # 0.5 counts (>=), audio-only or visual-only not
    assert ave_segment_labels(audio, visual, video, threshold=0.65).tolist() == [[3, 3, 3, 3], [0, 0, 3, 0]]


def test_ave_accuracy_pools_segments_not_videos():
    pred = np.array([[1, 1, 28, 28], [5, 5, 5, 5], [28, 28, 28, 28]])
    gt = np.array([[1, 1, 1, 28], [5, 5, 5, 5], [28, 28, 28, 28]])
    assert ave_accuracy(pred, gt) == pytest.approx(100 * 11 / 12)
    with pytest.raises(UwavError):
        ave_accuracy(pred[:2], gt)


def test_segment_labels_from_gt_and_evaluate_ave():
    gt = np.zeros((2, 10, 28), dtype=bool)
    gt[0, 2:6, 7] = True
    gt[1, :, 27] = True
    labels = segment_labels_from_gt(gt)
    assert labels[0].tolist() == [BG] * 2 + [7] * 4 + [BG] * 4 and (labels[1] == 27).all()
    video = gt.any(axis=1).astype(float)
    scores = evaluate_ave(gt.astype(float), gt.astype(float), video, gt)
    assert tuple(scores) == AVE_METRIC_NAMES and all(v == pytest.approx(100.0) for v in scores.values())
    shifted = np.roll(gt, 1, axis=1).astype(float)  # one segment late: 2 wrong segments in video 0
    assert evaluate_ave(shifted, shifted, video, gt)["accuracy"] == pytest.approx(90.0)
    both = gt.copy()
    both[0, 0, 3] = both[0, 0, 4] = True
    with pytest.raises(UwavError, match="video 0 segment 0 has 2 classes"):
        segment_labels_from_gt(both)


# ---- the grid θ fit ----------------------------------------------------------------------------------


def test_grid_threshold_fit_on_a_hand_case():
    # one class, two videos with it (and one without): logits 0..3 with the top two positive
    z = np.zeros((3, 2, 1), dtype=np.float32)
    z[0, :, 0], z[1, :, 0], z[2, :, 0] = [0.0, 1.0], [2.0, 3.0], [9.0, 9.0]
    weak = np.array([[1.0], [1.0], [0.0]])
    gt = np.zeros((3, 2, 1), dtype=bool)
    gt[1, :, 0] = True
    theta = fit_thresholds(z, weak, gt, method="grid")
    # grid: -inf and 0 + k/100·3; F1 = 1 first at k = 34 (1.02 > 1.0); video 2 is gated by its weak label
    assert theta[0] == pytest.approx(1.02)
    assert np.array_equal(hard_labels(z, theta, weak) > 0, gt)
    assert fit_thresholds(z, weak, np.broadcast_to(weak[:, None, :] > 0, z.shape), method="grid")[0] == -np.inf
    assert fit_thresholds(z, np.zeros_like(weak), gt, method="grid")[0] == -np.inf
    with pytest.raises(UwavError):
        fit_thresholds(z, weak, gt, method="nope")


# ---- synthetic AVE ---------------------------------------------------------------------------------


def test_draw_rows_match_the_real_background_share():
    from uwav.data.synthetic_ave import draw_rows

    rows = draw_rows(np.random.default_rng(0), {"train": 30000, "val": 1, "test": 1})
    background = 1 - (rows["end"] - rows["start"]).mean() / 10
    assert 0.15 < background < 0.19  # real 16.9 / 18.2 / 17.8 %
    assert ((rows["start"] == 0) & (rows["end"] == 10)).mean() == pytest.approx(2750 / 4143, abs=0.01)
    assert ((rows["end"] > rows["start"]) & (rows["end"] <= 10)).all()


NO_UNAV = {"unav_train": 0, "unav_validation": 0, "unav_test": 0}


@pytest.fixture(scope="module")
def synth_ave(tmp_path_factory) -> Path:
    """Tiny AVE set (seed 0, the tiny_dataset world); its UnAV part comes from tiny_dataset."""
    from uwav.data.synthetic_ave import generate_ave

    root = tmp_path_factory.mktemp("synth_ave") / "data"
    generate_ave(root, "tiny", seed=0, overrides=NO_UNAV)
    return root


def test_synthetic_ave_files_quirks_and_check(synth_ave, tmp_path):
    manifest = json.loads((synth_ave / "synthetic.json").read_text())
    assert manifest["ave"] == {"train": 56, "val": 28, "test": 28} and not (synth_ave / "unav").exists()
    ann = synth_ave / "ave" / "annotations"
    assert sorted(p.name for p in ann.iterdir()) == ["Annotations.txt", "testSet.txt", "trainSet.txt",
                                                     "valSet.txt"]
    odd = A.ave_oddities(ann)
    assert [z[0] for z in odd.zero_length] == [manifest["quirk_rows"]["zero_length"]]
    assert len(odd.cross_split_ids) == 1 and odd.counts == manifest["ave"]
    result = CliRunner().invoke(main, ["data", "check", str(synth_ave / "ave"), "--dataset", "ave",
                                       "--layout", "ave"])
    assert result.exit_code == 0, result.output
    assert "(28, 768) ok" in result.output and "r2plus1d_18" in result.output
    # the parser input of the ave layout: CLAP audio, CLIP ++ R(2+1)D visual
    from uwav.data.features import parser_inputs

    split = load_ave_split(ann, "val")
    audio, visual = parser_inputs(synth_ave / "ave", "ave", list(split.ids))
    vid = split.ids[0]
    assert audio.shape == (28, 10, 512) and visual.shape == (28, 10, 1280)
    assert np.array_equal(visual[0, :, :768], np.load(synth_ave / "ave/feats_CLIP/segment_feats" / f"{vid}.npy"))
    assert np.array_equal(visual[0, :, 768:], np.load(synth_ave / "ave/feats/r2plus1d_18" / f"{vid}.npy"))
    # deterministic, and the alphabetical variant only reorders the text embeddings
    from uwav.data.synthetic_ave import generate_ave

    again = tmp_path / "again"
    generate_ave(again, "tiny", seed=0, overrides=NO_UNAV, class_order="alphabetical")
    assert (again / "ave/annotations/Annotations.txt").read_bytes() == (ann / "Annotations.txt").read_bytes()
    text = np.load(synth_ave / "ave/feats_CLAP/event_feats/all_event_feats.npy")
    alpha = np.load(again / "ave/feats_CLAP/event_feats/all_event_feats.npy")
    assert np.array_equal(alpha, text[[AVE_CLASSES.index(n) for n in AVE_CLASSES_ALPHABETICAL]])


def test_synthetic_features_carry_the_event(synth_ave):
    """Zero-shot CLAP similarity is higher on event segments than on background: the truth is in the data."""
    from uwav.data.features import load_text_embeddings, load_uwav_segments

    split = load_ave_split(synth_ave / "ave" / "annotations", "train")
    feats = load_uwav_segments(synth_ave / "ave", list(split.ids))
    _, text_audio = load_text_embeddings(synth_ave / "ave", 28)
    cls = split.weak.argmax(1)
    sim = np.einsum("ntd,nd->nt", feats["clap"], text_audio[cls])
    event = split.segment_labels != BG
    assert sim[event].mean() > sim[~event].mean() + 0.05


def test_synth_cli_writes_ave(tmp_path):
    out = tmp_path / "s"
    result = CliRunner().invoke(main, ["data", "synth", str(out), "--dataset", "ave", "--videos-train", "8",
                                       "--videos-val", "4", "--videos-test", "4", "--videos-unav", "0,0,0"])
    assert result.exit_code == 0, result.output
    assert "AVE 8/4/4 clips" in result.output and (out / "ave/annotations/Annotations.txt").is_file()
    result = CliRunner().invoke(main, ["data", "synth", str(tmp_path / "t"), "--dataset", "ave", "--layouts",
                                       "han"])
    assert result.exit_code == 2 and "LLP option" in result.output


# ---- the pipeline on synthetic AVE -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ave_config(synth_ave, tiny_dataset, tmp_path_factory) -> Path:
    from conftest import TINY_PIPELINE

    out = tmp_path_factory.mktemp("ave_pipeline")
    raw = {
        **TINY_PIPELINE,
        "dataset": "ave",
        "paths": {
            "annotations": str(synth_ave / "ave" / "annotations"),
            "features": str(synth_ave / "ave"),
            "layout": "ave",
            "unav_features": str(tiny_dataset / "unav"),
            "unav_annotations": str(tiny_dataset / "unav" / "unav100_annotations.json"),
            "out": str(out / "run"),
        },
        "pseudo": {"threshold_fit": "grid"},
        "loss": {"mixup_target": "ceil_literal"},
    }
    raw["pretrain"] = {**raw["pretrain"], "epochs": 1}
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    for command in ("pretrain", "pseudo"):
        result = CliRunner().invoke(main, [command, str(path)])
        assert result.exit_code == 0, result.output
    return path


def test_pseudo_on_ave_reports_accuracy_and_class_order(ave_config):
    config = load_config(ave_config)
    report = json.loads((config.logits_file.parent / "quality.json").read_text())
    assert report["dataset"] == "ave" and report["class_order"] == "dataset" and report["threshold_fit"] == "grid"
    assert {(r["labels"], r["split"]) for r in report["rows"]} == {
        (s, x) for s in ("generator", "zero_shot") for x in ("train", "val", "test")}
    assert all(0 <= r["accuracy"] <= 100 for r in report["rows"])
    assert len(report["thresholds"]["generator"]["audio"]) == 28
    names = np.load(config.logits_file)["val_filenames"]
    assert all(n[4] == "_" and n[:4].isdigit() for n in names.tolist())  # per-row keys


def test_train_and_eval_on_ave(ave_config, tmp_path):
    from uwav.fit import objective_name
    from uwav.metrics import OBJECTIVES

    config = load_config(ave_config)
    assert objective_name(config) == "accuracy" and OBJECTIVES["llp"] == "segment_type_at_av"
    assert objective_name(with_overrides(config, {"dataset": "llp"})) == "segment_type_at_av"
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(ave_config), "--test", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "segment accuracy" in result.output and "AVE class order: dataset" in result.output
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["objective"] == "accuracy" and summary["class_order"] == "dataset"
    assert set(AVE_METRIC_NAMES) <= set(summary["val"]) and set(AVE_METRIC_NAMES) <= set(summary["test"])
    history = json.loads((run / "history.json").read_text())
    assert [h["objective"] for h in history] == [h["val"]["accuracy"] for h in history]
    assert summary["val"]["accuracy"] == max(h["val"]["accuracy"] for h in history)
    out = tmp_path / "eval.json"
    args = ["eval", str(run / "predictions_test.npz"), "--dataset", "ave", "--annotations",
            config.paths.annotations, "--split", "test", "--tie-rule", config.eval.tie_rule]
    result = CliRunner().invoke(main, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-4)
    assert scored["segment_type_at_av"] == pytest.approx(summary["test"]["segment_type_at_av"], abs=1e-4)
    assert scored["class_order"] == "dataset"
    result = CliRunner().invoke(main, [*args, "--class-order", "alphabetical"])
    assert result.exit_code == 2 and "holds the dataset order" in result.output


@pytest.mark.parametrize("target", ["soft", "round"])
def test_ave_mixup_target_variants_train(ave_config, target):
    from uwav.data.dataset import load_parser_data
    from uwav.fit import fit

    config = with_overrides(load_config(ave_config), {"loss.mixup_target": target, "train.epochs": 1})
    data = load_parser_data(config, include_test=False)
    assert data.num_classes == 28 and data.meta["class_order"] == "dataset"
    result = fit(config, data, progress=False)
    assert result.history[0].losses["mixup"] > 0 and "accuracy" in result.best_val
    with pytest.raises(UwavError, match="threshold_fit"):
        fit(with_overrides(config, {"pseudo.threshold_fit": "f1"}), data, progress=False)


def test_config_accepts_ave_choices_and_rejects_others():
    config = config_from_dict({"dataset": "ave", "ave_class_order": "alphabetical",
                               "pseudo": {"threshold_fit": "grid"}, "paths": {"layout": "ave"}})
    assert config.dataset == "ave" and config.ave_class_order == "alphabetical"
    with pytest.raises(UwavError, match="ave_class_order must be one of dataset, alphabetical"):
        config_from_dict({"ave_class_order": "index"})


def test_ave_sweep_and_best_report_accuracy(ave_config, tmp_path):
    """`uwav sweep` + `uwav train --best` on the tiny AVE pipeline: objective = val accuracy, and the final
    runs report mean ± std of test accuracy next to the F-scores."""
    sweep = {
        "name": "ave-tiny",
        "base": str(ave_config),
        "overrides": {"train": {"epochs": 2, "warmup_epochs": 1}},
        "space": {"pseudo.offset_audio": {"type": "uniform", "low": -1.0, "high": 1.0},
                  "loss.mixup_target": {"type": "choice", "values": ["ceil_literal", "round", "soft"]}},
        "search": {"seed": 0, "n_startup_trials": 2},
        "scheduler": {"grace_period": 1, "max_t": 2, "reduction_factor": 2},
        "resources": {"cpu": 1},
        "trials": {"num_samples": 3, "max_concurrent": 2},
        "storage": {"path": str(tmp_path / "sweeps")},
    }
    path = tmp_path / "ave_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    from uwav.sweep.spec import load_sweep

    assert load_sweep(path).metric == "accuracy"  # the AVE default objective
    result = CliRunner().invoke(main, ["sweep", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.output
    result = CliRunner().invoke(main, ["train", "--best", str(path), "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert "Accuracy" in result.output
    report = json.loads((tmp_path / "sweeps" / "ave-tiny" / "best" / "results.json").read_text())
    rank1 = report["configurations"][0]
    test = rank1["test"]
    assert 0.0 <= test["accuracy"]["mean"] <= 100.0 and test["accuracy"]["std"] >= 0.0
    assert len(rank1["test_per_seed"]) == 2
    # No points_to_evaluate: the reference is the base config (default), compared on accuracy first.
    assert report["reference"]["choice"] == "default" and report["audio_gt"]["version"] == "not LLP"
    comp = next(c for c in report["comparisons"] if c["split"] == "test")
    assert list(comp["metrics"])[0] == "accuracy" or "itself" in comp["sentence"]
    assert "Accuracy on test" in comp["sentence"] or "itself" in comp["sentence"]
