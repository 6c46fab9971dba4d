"""LLP annotation reader: real CSV facts from data-formats.md §2 and the malformed-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uwav.classes import LLP_CLASSES
from uwav.data.llp import (
    SEGMENTS,
    LLPSplit,
    load_llp_split,
    parse_filename,
    read_dense_csv,
    read_weak_csv,
    video_id,
)
from uwav.errors import UwavError

LLP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llp"
HEADER_DENSE = "filename\tonset\toffset\tevent_labels\n"
C = {name: i for i, name in enumerate(LLP_CLASSES)}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def test_split() -> LLPSplit:
    return load_llp_split(LLP, "test")


# ---- filenames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AP0061o0Nvk_101.8_111.8", ("AP0061o0Nvk", 101.8, 111.8)),
        ("-75E9_DMskM_160_170", ("-75E9_DMskM", 160.0, 170.0)),
        ("-7mKTqOQB_E_11_21", ("-7mKTqOQB_E", 11.0, 21.0)),
        ("BjCEufrlXm4_20_30", ("BjCEufrlXm4", 20.0, 30.0)),
    ],
)
def test_parse_filename(name, expected):
    assert parse_filename(name, "x") == expected
    assert video_id(name) == expected[0]


@pytest.mark.parametrize(
    "name",
    ["CSWQ_HzQ_10_20", "19jWnmYnlD8_30", "19jWnmYnlD8-30_40", "19jWnmYnlD8_a_40", "Baby_cry_infant_cry"],
)
def test_parse_filename_rejects(name):
    with pytest.raises(UwavError, match=r"somewhere line 7: bad filename"):
        parse_filename(name, "somewhere line 7")


def test_real_train_csv_decimal_times_and_odd_ids():
    filenames, weak = read_weak_csv(LLP / "AVVP_train.csv")
    assert len(filenames) == 10_000 and weak.shape == (10_000, 25) and weak.dtype == np.float32
    decimal = ["AP0061o0Nvk_101.8_111.8", "AKVyIQoSyBA_131.8_141.8", "ApKgnUPayqU_8.5_18.5",
               "BYEc9L5kGKQ_48.7_58.7", "Br4mum2rWtY_9.3_19.3"]  # fmt: skip
    times = {f: parse_filename(f, "")[1:] for f in filenames}
    assert [f for f in filenames if times[f][0] != int(times[f][0])] == decimal
    assert all(end == start + 10 for start, end in times.values())
    ids = [video_id(f) for f in filenames]
    assert len(set(ids)) == 10_000
    assert sum("_" in i for i in ids) > 1000 and sum(i.startswith("-") for i in ids) > 50
    assert filenames[0] == "BjCEufrlXm4_20_30"
    np.testing.assert_array_equal(np.nonzero(weak[0])[0], [C["Speech"], C["Dog"]])
    # labels per video 1/2/3: 4,032 / 5,879 / 89 (data-formats.md §2.4)
    assert np.bincount(weak.sum(axis=1).astype(int)).tolist() == [0, 4032, 5879, 89]


# ---- real val / test splits --------------------------------------------------------------------


def test_real_split_sizes_and_empty_gt(test_split):
    assert len(test_split) == 1200 and test_split.gt_audio.shape == (1200, SEGMENTS, 25)
    assert test_split.ids[0] == "4YdbENYcIyE" and len(test_split.ids) == 1200
    empty_a = ~test_split.gt_audio.any(axis=(1, 2))
    empty_v = ~test_split.gt_visual.any(axis=(1, 2))
    empty_av = ~(test_split.gt_audio & test_split.gt_visual).any(axis=(1, 2))
    assert (empty_a.sum(), empty_v.sum(), empty_av.sum()) == (6, 121, 174)
    assert {test_split.filenames[i] for i in np.nonzero(empty_a)[0]} == {
        "I8SDFfuMux8_30_40", "DGSV4gjn94I_280_290", "1A6dFiD40qk_30_40",
        "957DUIy6yfE_30_40", "6g2aFcP1a_Q_28_38", "H5WcJwyjxIg_2_12",
    }  # fmt: skip
    val = load_llp_split(LLP, "val")
    assert len(val) == 649
    assert (~val.gt_audio.any(axis=(1, 2))).sum() == 4 and (~val.gt_visual.any(axis=(1, 2))).sum() == 70


def test_real_duplicate_label_and_touching_rows(test_split):
    i = test_split.filenames.index("LcFWKgFphXI_20_30")
    np.testing.assert_array_equal(np.nonzero(test_split.weak[i])[0], [C["Clapping"]])
    j = test_split.filenames.index("McfGMq5A5G8_30_40")
    assert test_split.gt_audio[j, :, C["Singing"]].all()  # 0-2, 2-6, 6-10 merge into one event
    assert test_split.gt_audio[j, :, C["Violin_fiddle"]].tolist() == [False, False] + [True] * 8


def test_legacy_and_head_audio_differ_on_two_test_videos(test_split):
    legacy = load_llp_split(LLP, "test", eval_audio=LLP / "legacy" / "AVVP_eval_audio.csv")
    assert legacy.audio_gt_file.endswith("legacy/AVVP_eval_audio.csv")
    assert test_split.audio_gt_file.endswith("llp/AVVP_eval_audio.csv")
    differ = np.nonzero((legacy.gt_audio != test_split.gt_audio).any(axis=(1, 2)))[0]
    assert sorted(test_split.filenames[i] for i in differ) == ["JfZEqeLZqWk_30_40", "KvIjsmANkxI_10_20"]
    np.testing.assert_array_equal(legacy.gt_visual, test_split.gt_visual)


def test_train_has_no_dense_gt_unless_synthetic(tmp_path):
    write(tmp_path / "AVVP_train.csv", "filename\tevent_labels\nAAAAAAAAAAA_0_10\tDog\n")
    train = load_llp_split(tmp_path, "train", eval_audio=LLP / "AVVP_eval_audio.csv")
    assert train.gt_audio is None and train.gt_visual is None and train.audio_gt_file is None
    write(tmp_path / "synthetic_train_eval_audio.csv", HEADER_DENSE + "AAAAAAAAAAA_0_10\t2\t5\tDog\n")
    with pytest.raises(UwavError, match="synthetic_train_eval_visual.csv: file not found"):
        load_llp_split(tmp_path, "train")
    write(tmp_path / "synthetic_train_eval_visual.csv", HEADER_DENSE)
    train = load_llp_split(tmp_path, "train", eval_audio=LLP / "AVVP_eval_audio.csv")  # val/test only
    assert train.audio_gt_file == str(tmp_path / "synthetic_train_eval_audio.csv")
    assert train.gt_audio[0, :, C["Dog"]].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert not train.gt_visual.any()
    with pytest.raises(UwavError, match="unknown LLP split 'dev'"):
        load_llp_split(tmp_path, "dev")


# ---- dense semantics on small files ------------------------------------------------------------


def test_dense_rows_semantics(tmp_path):
    names = ["AAAAAAAAAAA_0_10", "BBBBBBBBBBB_0_10", "CCCCCCCCCCC_0_10"]
    dense = write(
        tmp_path / "d.csv",
        HEADER_DENSE
        + "AAAAAAAAAAA_0_10\t0\t2\tDog\n"  # touching the next row: one run 0..6
        + "AAAAAAAAAAA_0_10\t2.0\t6\tDog\n"
        + "AAAAAAAAAAA_0_10\t1\t3\tDog\n"  # overlap: OR
        + "AAAAAAAAAAA_0_10\t9\t9\tCat\n"  # degenerate
        + "AAAAAAAAAAA_0_10\t9\t0\tCar\n"  # reversed
        + "AAAAAAAAAAA_0_1\t0\t10\tSpeech\n"  # orphan: prefix of a real name
        + "AAAAAAA_0_10\t0\t10\tSpeech\n"  # orphan with a truncated id
        + "BBBBBBBBBBB_0_10\t8\t10\tSpeech\n",
    )
    gt = read_dense_csv(dense, names)
    assert gt.shape == (3, SEGMENTS, 25) and gt.dtype == bool
    assert gt[0, :, C["Dog"]].tolist() == [1] * 6 + [0] * 4
    assert gt[0].sum() == 6 and not gt[2].any()
    assert gt[1, :, C["Speech"]].tolist() == [0] * 8 + [1, 1] and gt[1].sum() == 2


# ---- malformed input ---------------------------------------------------------------------------

WEAK_HEADER = "filename\tevent_labels\n"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"w.csv: empty file"),
        (WEAK_HEADER, r"w.csv: no data rows"),
        ("filename\tlabels\nAAAAAAAAAAA_0_10\tDog\n", r"w.csv line 1: missing column\(s\) event_labels"),
        (
            WEAK_HEADER + "AAAAAAAAAAA_0_10\tDog\nBBBBBBBBBBB_0_10\tDogs\n",
            r"w.csv line 3: unknown class 'Dogs'",
        ),
        (WEAK_HEADER + "AAAAAAAA_0_10\tDog\n", r"w.csv line 2: bad filename 'AAAAAAAA_0_10'"),
        (WEAK_HEADER + "AAAAAAAAAAA_0_10\tDog\nAAAAAAAAAAA_0_10\tCat\n", r"w.csv line 3: duplicate filename"),
        (WEAK_HEADER + "AAAAAAAAAAA_0_10\tDog\tCat\n", r"w.csv line 2: 3 tab-separated field"),
        (WEAK_HEADER + "AAAAAAAAAAA_0_10\t\n", r"w.csv line 2: empty event_labels"),
    ],
)
def test_read_weak_csv_errors(tmp_path, text, pattern):
    with pytest.raises(UwavError, match=pattern) as err:
        read_weak_csv(write(tmp_path / "w.csv", text))
    assert "\n" not in str(err.value)


def test_read_weak_csv_column_order_and_missing_file(tmp_path):
    names, weak = read_weak_csv(
        write(tmp_path / "w.csv", "event_labels\tfilename\nDog,Cat\tAAAAAAAAAAA_0_10\n")
    )
    assert names == ("AAAAAAAAAAA_0_10",) and weak[0, [C["Dog"], C["Cat"]]].tolist() == [1, 1]
    assert weak.sum() == 2
    with pytest.raises(UwavError, match=r"nope.csv: file not found"):
        read_weak_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("AAAAAAAAAAA_0_10\t0\t2\tdog", r"d.csv line 2: unknown class 'dog'"),
        ("ZZZZZZZZZZZ_0_10\t0\t2\tDog,Cat", r"d.csv line 2: unknown class 'Dog,Cat'"),  # even orphans
        ("AAAAAAAAAAA_0_10\tx\t2\tDog", r"d.csv line 2: onset 'x' is not a number"),
        ("AAAAAAAAAAA_0_10\t0\t\tDog", r"d.csv line 2: offset '' is not a number"),
        ("AAAAAAAAAAA_0_10\t0\t11\tDog", r"d.csv line 2: offset '11' is outside 0..10"),
        ("AAAAAAAAAAA_0_10\t-1\t2\tDog", r"d.csv line 2: onset '-1' is outside 0..10"),
        ("AAAAAAAAAAA_0_10\tnan\t2\tDog", r"d.csv line 2: onset 'nan' is outside 0..10"),
    ],
)
def test_read_dense_csv_errors(tmp_path, row, pattern):
    with pytest.raises(UwavError, match=pattern):
        read_dense_csv(write(tmp_path / "d.csv", HEADER_DENSE + row + "\n"), ["AAAAAAAAAAA_0_10"])


def test_read_dense_csv_missing_column(tmp_path):
    path = write(tmp_path / "d.csv", "filename\tonset\tevent_labels\nAAAAAAAAAAA_0_10\t0\tDog\n")
    with pytest.raises(UwavError, match=r"d.csv line 1: missing column\(s\) offset"):
        read_dense_csv(path, ["AAAAAAAAAAA_0_10"])
