"""uwav.provenance: audio GT identity of the shared LLP files, fingerprints, code version outside git."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from uwav import provenance
from uwav.config import config_from_dict, with_overrides
from uwav.provenance import (
    audio_gt_identity,
    audio_gt_warning,
    code_version,
    config_sha256,
    describe_audio_gt,
    flat_tags,
    folder_fingerprint,
    run_provenance,
    tree_fingerprints,
)

LLP = Path(__file__).resolve().parents[2] / "shared" / "data" / "llp"
needs_llp = pytest.mark.skipif(not (LLP / "AVVP_eval_audio.csv").is_file(), reason="shared LLP CSVs not found")


@needs_llp
def test_shared_audio_gt_files_are_current_and_legacy():
    current = audio_gt_identity(LLP / "AVVP_eval_audio.csv")
    legacy = audio_gt_identity(LLP / "legacy" / "AVVP_eval_audio.csv")
    assert (current["version"], current["exact"]) == ("current", True)
    assert (legacy["version"], legacy["exact"]) == ("legacy", True)
    assert current["sha256"] == hashlib.sha256((LLP / "AVVP_eval_audio.csv").read_bytes()).hexdigest()
    assert "current upstream" in describe_audio_gt(current) and "legacy" in describe_audio_gt(legacy)
    assert audio_gt_warning(current, dict(current), "the reference") is None
    warning = audio_gt_warning(current, legacy, "the reference run")
    assert warning.startswith("warning: the reference run was scored with the legacy audio GT")
    assert "two test videos" in warning


@needs_llp
def test_edited_or_re_saved_copies(tmp_path):
    rows = (LLP / "legacy" / "AVVP_eval_audio.csv").read_bytes()
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(rows.replace(b"\n", b"\r\n"))
    same_rows = audio_gt_identity(crlf)
    assert (same_rows["version"], same_rows["exact"]) == ("legacy", False)
    assert "different line endings" in describe_audio_gt(same_rows)
    edited = tmp_path / "edited.csv"
    edited.write_bytes(rows.replace(b"Baby_cry_infant_cry", b"JfZEqeLZqWk_30_40", 1))
    assert audio_gt_identity(edited)["version"] == "unknown file"
    missing = audio_gt_identity(tmp_path / "nope.csv")
    assert (missing["version"], missing["sha256"]) == ("unknown file", None)
    assert audio_gt_warning(audio_gt_identity(edited), missing, "x") is not None
    assert "records no audio GT" in audio_gt_warning(missing, None, "results.json")


def _features(root: Path, n: int = 40) -> Path:
    folder = root / "feats" / "vggish"
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"vid{i:05d}.npy").write_bytes(bytes([i % 251]) * (100 + i))
    (root / "feats" / "event.npy").write_bytes(b"x" * 10)
    return folder


def test_folder_fingerprint_is_stable_and_sensitive(tmp_path):
    folder = _features(tmp_path / "a")
    first = folder_fingerprint(folder)
    assert first["files"] == 40 and first["bytes"] == sum(100 + i for i in range(40))
    assert first["sampled"] == provenance.SAMPLE_FILES
    assert folder_fingerprint(folder) == first
    # The same files elsewhere (a copy, other mtimes) give the same fingerprint.
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "a", copy)
    assert folder_fingerprint(copy / "feats" / "vggish") == first

    sampled = folder / "vid00000.npy"  # the first file in name order is always in the sample
    sampled.write_bytes(b"\xff" * 100)  # same size, different content
    changed = folder_fingerprint(folder)
    assert changed["listing_sha256"] == first["listing_sha256"] and changed["sample_sha256"] != first["sample_sha256"]
    (copy / "feats" / "vggish" / "vid00007.npy").write_bytes(b"\x00" * 3)  # a size change anywhere
    assert folder_fingerprint(copy / "feats" / "vggish")["listing_sha256"] != first["listing_sha256"]
    (copy / "feats" / "vggish" / "extra.npy").write_bytes(b"")
    assert folder_fingerprint(copy / "feats" / "vggish")["files"] == 41

    tree = tree_fingerprints(tmp_path / "a")
    assert sorted(tree) == ["feats", "feats/vggish"] and tree["feats"]["files"] == 1
    assert tree_fingerprints(tmp_path / "missing") == {}


def test_code_version_in_and_outside_git(tmp_path, monkeypatch):
    outside = code_version(tmp_path)
    assert outside["source"] == "installed" and outside["git_commit"] is None
    assert outside["version"] == provenance._installed_version("uwav")

    # A checkout whose top is the given folder reports its commit and whether the tree is dirty.
    if shutil.which("git"):
        repo = tmp_path / "repo"
        repo.mkdir()
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        (repo / "f.txt").write_text("1")
        subprocess.run([*git, "add", "f.txt"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        clean = code_version(repo)
        assert (clean["source"], clean["git_commit"], clean["git_dirty"]) == ("git", head, False)
        (repo / "f.txt").write_text("2")
        assert code_version(repo)["git_dirty"] is True
        # A folder inside the checkout is not the checkout (an installed copy inside someone's repository).
        (repo / "sub").mkdir()
        assert code_version(repo / "sub")["source"] == "installed"

    # No git at all: the installed version, no crash.
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert code_version()["source"] == "installed"


def _config(tmp_path: Path, annotations: Path, features: Path):
    return config_from_dict({"paths": {"annotations": str(annotations), "features": str(features),
                                       "out": str(tmp_path / "out")}})


@needs_llp
def test_run_provenance_record(tmp_path):
    features = tmp_path / "features"
    _features(features)
    config = _config(tmp_path, LLP, features)
    prov = run_provenance(config, device="cpu", data_meta={"generator_sha256": "abc"})
    assert set(prov) >= {"code", "versions", "device", "config_sha256", "annotations", "audio_gt", "features",
                         "generator"}
    assert prov["audio_gt"]["version"] == "current"
    assert prov["annotations"][str(LLP / "AVVP_train.csv")] == provenance.file_sha256(LLP / "AVVP_train.csv")
    assert prov["features"][str(features)]["feats/vggish"]["files"] == 40
    assert prov["generator"] == {"checkpoint": str(tmp_path / "out" / "generator" / "best.pt"), "sha256": None,
                                 "logits_generator_sha256": "abc"}
    assert prov["versions"]["torch"] and prov["versions"]["python"]
    assert prov["device"]  # uwav.hardware.device_report (issue 19) or the fallback
    json.dumps(prov)  # a results file can hold it

    legacy = with_overrides(config, {"paths.eval_audio": str(LLP / "legacy" / "AVVP_eval_audio.csv")})
    prov_legacy = run_provenance(legacy, device="cpu")
    assert prov_legacy["audio_gt"]["version"] == "legacy"
    assert prov_legacy["config_sha256"] != prov["config_sha256"]
    assert str(LLP / "legacy" / "AVVP_eval_audio.csv") in prov_legacy["annotations"]

    tags = flat_tags(prov)
    assert tags["uwav.provenance.audio_gt.version"] == "current"
    assert tags["uwav.provenance.config_sha256"] == prov["config_sha256"]
    assert tags["uwav.provenance.features_files"] == "41"
    assert all(isinstance(v, str) and len(v) < 5000 for v in tags.values())


def test_config_hash_is_canonical(tmp_path):
    a = _config(tmp_path, tmp_path, tmp_path)
    assert config_sha256(a) == config_sha256(_config(tmp_path, tmp_path, tmp_path))
    assert config_sha256(a) != config_sha256(with_overrides(a, {"loss.W": 0.3}))
    assert config_sha256(a) == config_sha256(json.loads(json.dumps(provenance.asdict(a))))


def test_device_is_the_hardware_report_and_never_stops_a_run(monkeypatch):
    from uwav import hardware

    assert provenance.device_info("cpu") == hardware.device_report("cpu")

    def broken(device):
        raise RuntimeError("no such device")

    monkeypatch.setattr(hardware, "device_report", broken)
    info = provenance.device_info("cuda:3")
    assert info["device"] == "cuda:3" and info["detection_error"] == "RuntimeError: no such device"
