"""UnAV-100: JSON reading, the floor/ceil per-second label rule, adaptive pooling, padding and masks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from uwav.classes import UNAV_CLASSES
from uwav.data import unav as U
from uwav.data.synthetic import generate
from uwav.errors import UwavError

REAL_JSON = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "unav100" / "unav100_annotations.json"
)
needs_real = pytest.mark.skipif(not REAL_JSON.exists(), reason="shared/data beside the checkout is missing")


def second_labels(events, duration):
    """One video's per-second labels [T', 100] through the split loader's rule."""
    video = U.UnavVideo("v", duration, "train", tuple(events))
    return U.split_labels([video], video.seconds)[0]


def _seconds(events, duration, cls):
    return np.nonzero(second_labels(events, duration)[:, cls])[0].tolist()


def test_second_labels_hand_cases():
    assert _seconds([(13.01, 15.78, 3)], 47.68, 3) == [13, 14, 15]
    assert _seconds([(0, 10, 1)], 10, 1) == list(range(10))  # integral end is exclusive
    assert _seconds([(0.5, 0.7, 0)], 10, 0) == [0]  # shorter than a second: the second it touches
    assert _seconds([(2, 4, 5), (3.5, 6.2, 5)], 7.5, 5) == [2, 3, 4, 5, 6]  # OR over events
    labels = second_labels([(0, 47.68, 9)], 47.68)
    assert labels.shape == (48, 100) and labels[:, 9].all() and labels.sum() == 48


def test_num_seconds():
    assert [U.num_seconds(d) for d in (47.68, 39, 39.0, 10.01, 60)] == [48, 39, 39, 11, 60]


def test_adaptive_pool_hand_cases_and_torch():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.testing.assert_array_equal(U.adaptive_pool(x, 2), [[1, 2], [5, 6]])
    np.testing.assert_array_equal(U.adaptive_pool(x[:2], 4), [[0, 1], [0, 1], [2, 3], [2, 3]])  # replicate
    # 5 -> 3: bins [0,2), [1,4), [3,5) overlap, as in the adaptive-pool rule.
    y = np.arange(5, dtype=np.float32)[:, None]
    np.testing.assert_allclose(U.adaptive_pool(y, 3)[:, 0], [0.5, 2.0, 3.5])
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for n, t in [(75, 60), (48, 60), (7, 13), (100, 33), (1, 5), (60, 60)]:
        z = rng.standard_normal((n, 6)).astype(np.float32)
        ref = torch.nn.functional.adaptive_avg_pool1d(torch.from_numpy(z.T.copy())[None], t)[0].T.numpy()
        np.testing.assert_allclose(U.adaptive_pool(z, t), ref, rtol=1e-5, atol=1e-6)


@needs_real
def test_real_json_counts_and_examples():
    videos = U.read_unav_json(REAL_JSON)
    assert len(videos) == 10790
    assert Counter(v.subset for v in videos.values()) == {"train": 6489, "validation": 2134, "test": 2167}
    assert sum(len(v.events) for v in videos.values()) == 30059
    v = videos["72f67ednp7w"]
    assert v.duration == 47.68 and v.seconds == 48
    skate = UNAV_CLASSES.index("skateboarding")
    expected = [13, 14, 15, *range(21, 38), 44, 45, 46]
    assert np.nonzero(second_labels(v.events, v.duration)[:, skate])[0].tolist() == expected
    assert videos["8WSesSOfBrE"].seconds == 39
    assert max(v.seconds for v in videos.values() if v.subset == "train") == 60
    assert min(v.seconds for v in videos.values()) == 10


def _write(tmp_path, database):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"version": "unav100", "database": database}))
    return path


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"subset": "train", "annotations": []}, r"video 'abcdefghijk'.*missing key 'duration'"),
        ({"duration": 12, "annotations": []}, r"video 'abcdefghijk'.*missing key 'subset'"),
        ({"duration": 12, "subset": "dev", "annotations": []}, "subset 'dev'"),
        (
            {"duration": 12, "subset": "train", "annotations": [{"segment": [0, 3], "label_id": 0}]},
            r"annotation 0: missing key 'label'",
        ),
        (
            {
                "duration": 12,
                "subset": "train",
                "annotations": [{"segment": [0, 3], "label": "dog barking", "label_id": 0}],
            },
            "expected 'man speaking'",
        ),
        (
            {
                "duration": 12,
                "subset": "train",
                "annotations": [{"segment": [5, 13], "label": "man speaking", "label_id": 0}],
            },
            "expected 0 <= start < end <= 12",
        ),
        ({"duration": "12", "subset": "train", "annotations": []}, "expected a finite number"),
    ],
)
def test_bad_json_names_video_and_key(tmp_path, entry, message):
    with pytest.raises(UwavError, match=message):
        U.read_unav_json(_write(tmp_path, {"abcdefghijk": entry}))


def test_missing_json_and_not_json(tmp_path):
    with pytest.raises(UwavError, match="file not found"):
        U.read_unav_json(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(UwavError, match="not readable JSON"):
        U.read_unav_json(tmp_path / "x.json")


@pytest.fixture(scope="module")
def synth_unav(tmp_path_factory):
    out = tmp_path_factory.mktemp("unav") / "s"
    sizes = {"train": 2, "val": 1, "test": 1, "unav_train": 6, "unav_validation": 3, "unav_test": 0}
    generate(out, "tiny", seed=5, layouts=("uwav",), overrides=sizes)
    return out / "unav"


def test_load_unav_split_pools_pads_and_labels(synth_unav):
    ann = synth_unav / "unav100_annotations.json"
    split = U.load_unav_split(synth_unav, ann, "train")
    videos = [v for v in U.read_unav_json(ann).values() if v.subset == "train"]
    n, tmax = len(videos), max(v.seconds for v in videos)
    assert split.ids == tuple(v.id for v in videos)
    assert split.clip.shape == (n, tmax, 768) and split.clap.shape == (n, tmax, 512)
    assert split.labels.shape == (n, tmax, 100) and split.labels.dtype == bool
    assert split.lengths.tolist() == [v.seconds for v in videos]
    pooled_some = False
    for i, v in enumerate(videos):
        raw = np.load(synth_unav / "feats_CLIP/segment_feats" / f"{v.id}.npy")
        pooled_some |= raw.shape[0] != v.seconds
        np.testing.assert_allclose(split.clip[i, : v.seconds], U.adaptive_pool(raw, v.seconds), rtol=1e-6)
        assert not split.clip[i, v.seconds :].any() and not split.labels[i, v.seconds :].any()
        np.testing.assert_array_equal(split.labels[i, : v.seconds], second_labels(v.events, v.duration))
    assert pooled_some  # the synthetic native rate differs from 1 per second
    assert len(U.load_unav_split(synth_unav, ann, "train", max_videos=2)) == 2


def test_load_unav_split_errors(synth_unav, tmp_path):
    ann = synth_unav / "unav100_annotations.json"
    with pytest.raises(UwavError, match="unknown UnAV subset"):
        U.load_unav_split(synth_unav, ann, "val")
    with pytest.raises(UwavError, match="no videos in subset 'test'"):
        U.load_unav_split(synth_unav, ann, "test")
    with pytest.raises(UwavError, match="feats_CLAP/segment_feats: folder not found"):
        U.load_unav_split(tmp_path, ann, "train")
