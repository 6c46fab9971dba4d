"""Feature-store loaders for the HAN, VALOR and UWAV layouts: shapes, contents and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from uwav.data import features as F
from uwav.data.llp import load_llp_split
from uwav.data.synthetic import generate
from uwav.errors import UwavError

SMALL = {"train": 5, "val": 3, "test": 2, "unav_train": 2, "unav_validation": 1, "unav_test": 0}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("feat") / "synth"
    generate(out, "tiny", seed=3, overrides=SMALL)
    root = out / "llp"
    ids = list(load_llp_split(root / "annotations", "train").ids)
    return root, ids


def test_parser_inputs_han_and_uwav(tree):
    root, ids = tree
    audio, visual = F.parser_inputs(root, "han", ids)
    assert audio.shape == (5, 10, 128) and visual.shape == (5, 10, 2560)
    for arr in (audio, visual):
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    raw = np.load(root / "feats/res152" / f"{ids[2]}.npy")
    np.testing.assert_allclose(visual[2, :, :2048], raw.reshape(10, 8, 2048).mean(1), rtol=1e-6)
    np.testing.assert_array_equal(visual[3, :, 2048:], np.load(root / "feats/r2plus1d_18" / f"{ids[3]}.npy"))
    np.testing.assert_array_equal(audio[4], np.load(root / "feats/vggish" / f"{ids[4]}.npy"))
    audio, visual = F.parser_inputs(root, "uwav", ids)
    assert audio.shape == (5, 10, 512) and visual.shape == (5, 10, 768)
    np.testing.assert_array_equal(visual[1], np.load(root / "feats_CLIP/segment_feats" / f"{ids[1]}.npy"))
    with pytest.raises(UwavError, match="valor"):
        F.parser_inputs(root, "valor", ids)


def test_valor_layout_scans_clean_with_its_pseudo_labels(tree):
    root, ids = tree
    for spec in (*F.SPECS["valor"].values(), *F.VALOR_PSEUDO.values()):
        result = F.scan(root, spec, ids)
        assert result.checked == 5 and not result.problems, spec.folder
    assert F.scan(root, F.SPECS["valor"]["clap"], ids).first_shape == (64, 768)
    raw = np.load(root / "CLAP/segment_pseudo_labels" / f"{ids[0]}.npy")
    assert raw.dtype == np.int64 and set(np.unique(raw)) <= {0, 1}


def test_text_embeddings(tree):
    root, _ = tree
    clip, clap = F.load_text_embeddings(root, 25)
    assert clip.shape == (25, 768) and clap.shape == (25, 512)
    np.testing.assert_allclose(np.linalg.norm(clip, axis=1), 1, rtol=1e-5)
    with pytest.raises(UwavError, match=r"all_event_feats.npy.*shape \(25, 768\).*\(100, 768\)"):
        F.load_text_embeddings(root, 100)


# ---- bad input: one UwavError naming the file -------------------------------------------------------


@pytest.fixture
def uwav_tree(tmp_path):
    """A hand-made UWAV layout with three good videos."""
    ids = ["-aaaaaaaaaa", "bb_bbbbbbbb", "ccccccccccc"]
    rng = np.random.default_rng(0)
    for folder, dim in (("feats_CLIP/segment_feats", 768), ("feats_CLAP/segment_feats", 512)):
        (tmp_path / folder).mkdir(parents=True)
        for vid in ids:
            np.save(tmp_path / folder / f"{vid}.npy", rng.standard_normal((10, dim)).astype(np.float32))
    return tmp_path, ids


def _clip(root, vid):
    return root / "feats_CLIP/segment_feats" / f"{vid}.npy"


@pytest.mark.parametrize(
    "damage, found",
    [
        (lambda p: p.unlink(), "found no file"),
        (lambda p: np.save(p, np.zeros((9, 768), np.float32)), r"found shape \(9, 768\)"),
        (lambda p: np.save(p, np.zeros((10, 768), np.int64)), "found dtype int64"),
        (lambda p: np.save(p, np.full((10, 768), np.nan, np.float32)), "found 7680 NaN/inf"),
        (lambda p: np.save(p, np.array([None] * 10, dtype=object), allow_pickle=True), "found dtype object"),
        (lambda p: p.write_bytes(p.read_bytes()[:500]), "truncated"),
        (lambda p: p.write_bytes(b"not numpy at all"), "not a valid .npy"),
    ],
)
def test_bad_file_gives_one_error_naming_it(uwav_tree, damage, found):
    root, ids = uwav_tree
    damage(_clip(root, ids[1]))
    with pytest.raises(UwavError, match=found) as err:
        F.load_uwav_segments(root, ids)
    message = str(err.value)
    assert message.startswith("1 bad UWAV clip file(s)")
    assert f"feats_CLIP/segment_feats/{ids[1]}.npy: found" in message and ", expected " in message
    assert "\n" not in message


def test_all_problems_of_a_split_are_counted(uwav_tree):
    root, ids = uwav_tree
    _clip(root, ids[0]).unlink()
    np.save(_clip(root, ids[2]), np.zeros((10, 700), np.float32))
    with pytest.raises(UwavError, match=r"^2 bad UWAV clip file\(s\)") as err:
        F.load_uwav_segments(root, ids)
    assert ids[0] in str(err.value) and ids[2] in str(err.value)
    result = F.scan(root, F.SPECS["uwav"]["clip"], ids)
    assert [p.file.split("/")[-1] for p in result.problems] == [f"{ids[0]}.npy", f"{ids[2]}.npy"]
    # More problems than shown: the message says how many were left out.
    for i in range(5):
        np.save(root / "feats_CLIP/segment_feats" / f"x{i:010d}.npy", np.zeros(3, np.float32))
    many = ids + [f"x{i:010d}" for i in range(5)]
    with pytest.raises(UwavError, match=r"^7 bad .* and 4 more"):
        F.load_uwav_segments(root, many)


def test_float64_and_fortran_files_are_cast_exactly(uwav_tree):
    root, ids = uwav_tree
    x = np.random.default_rng(1).standard_normal((10, 768))
    np.save(_clip(root, ids[0]), x)  # float64
    np.save(_clip(root, ids[1]), np.asfortranarray(x.astype(np.float32)))
    feats = F.load_uwav_segments(root, ids)
    assert feats["clip"].dtype == np.float32
    np.testing.assert_array_equal(feats["clip"][0], x.astype(np.float32))
    np.testing.assert_array_equal(feats["clip"][1], x.astype(np.float32))


def test_missing_folder_and_length_inference(uwav_tree, tmp_path):
    root, ids = uwav_tree
    with pytest.raises(UwavError, match="feats/vggish: folder not found"):
        F.parser_inputs(root, "han", ids)
    assert F.load_uwav_segments(root, ids, length=None)["clap"].shape == (3, 10, 512)
    with pytest.raises(UwavError, match=r"found shape \(10, 768\), expected \(12, 768\)"):
        F.load_uwav_segments(root, ids, length=12)


def test_pseudo_labels_must_be_binary_ints(tree, tmp_path):
    root, ids = tree
    spec = F.VALOR_PSEUDO["clip_pseudo"]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((10, 25), 2, np.int64))
    assert "0/1" in str(F.read_into(bad, spec, None)[1])
    np.save(bad, np.zeros((10, 25), np.float32))
    assert "dtype float32" in str(F.read_into(bad, spec, None)[1])


def test_data_check_reports_the_text_embedding_norms_it_finds(tree, tmp_path):
    """issue 17 item 6: the generator uses the rows as stored, so `uwav data check` prints their norms."""
    import shutil

    from uwav.data.check import check_tree

    root = tmp_path / "llp"
    shutil.copytree(tree[0], root)
    path = root / F.UWAV_TEXT["clap"][0]
    clap = np.load(path)
    scale = np.linspace(0.5, 2.0, clap.shape[0], dtype=np.float32)[:, None]
    np.save(path, clap / np.linalg.norm(clap, axis=1, keepdims=True) * scale)  # norms 0.5 ... 2.0, mean 1.25
    report = check_tree(root, "uwav", "llp")
    assert report.ok, report.problems
    lines = {name: next(x for x in report.summary if f"{name} text" in x) for name in ("clip", "clap")}
    assert lines["clap"].endswith("row L2 norms min 0.5000 mean 1.2500 max 2.0000")
    assert lines["clip"].endswith("row L2 norms min 1.0000 mean 1.0000 max 1.0000")  # synthetic rows: unit norm
