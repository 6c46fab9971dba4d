"""Issue 15: every user mistake, tried as a new user would, through the real CLI in a subprocess: one
`error:` line, exit code 2 (130 / 143 for SIGINT / SIGTERM), no traceback, nothing half-written.

Categories: YAML everywhere it is read; checkpoints (one weights-only loader; a pickle's code never runs);
prediction value ranges; extraction and parsing with nothing to do or nothing decodable; OS errors and
output locations checked before long work; signals during pretrain, train and extract.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import SHARED, pipeline_config

REPO = Path(__file__).resolve().parents[1]
LLP = SHARED / "llp"
SAMPLE = LLP / "sample_video" / "BjCEufrlXm4.mp4"
ENV = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
HAS_EXTRACT = all(importlib.util.find_spec(m) for m in ("av", "open_clip", "laion_clap")) and SAMPLE.is_file()


UWAV = str(Path(sys.executable).parent / "uwav")  # the console script a user runs


def uwav(*args, cwd: Path | None = None, driver: str | None = None, timeout: float = 300):
    cmd = [sys.executable, driver, *map(str, args)] if driver else [UWAV, *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def one_error(result, *fragments: str, code: int = 2) -> str:
    """The run failed with `code` and said so on exactly one `error:` line holding every fragment."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == code and len(lines) == 1, (result.returncode, result.stderr)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def no_temp_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# ---- YAML, everywhere it is read ---------------------------------------------------------------------

BROKEN_YAML = {
    "duplicate": (b"seed: 1\ntrain:\n  epochs: 3\nseed: 2\ntrain:\n  epochs: 5\n",
                  ("duplicate key 'seed'", "first at line 1, again at line 4")),
    "binary": (bytes(range(256)) * 4, ("not a UTF-8 text",)),
    "nul": (b"seed: 1\x00\n", ("not YAML text", "0x00")),
    "syntax": (b"seed: 1\ntrain: [1, 2\n", (":3:1: invalid YAML", "expected ',' or ']'")),
    "tab": (b"train:\n\tepochs: 3\n", (":2:1: invalid YAML",)),
    "cycle": (b"seed: 1\nloss: &x [*x]\n", ("a cycle",)),
}


@pytest.mark.parametrize("case", sorted(BROKEN_YAML))
@pytest.mark.parametrize("command", ["config", "sweep", "cluster"])
def test_broken_yaml_is_one_line_naming_the_file(tmp_path, case, command):
    data, fragments = BROKEN_YAML[case]
    path = tmp_path / f"{command}.yaml"
    path.write_bytes(data)
    args = {"config": ["config", path], "sweep": ["sweep", path], "cluster": ["cluster", "validate", path]}
    one_error(uwav(*args[command]), str(path), *fragments)
    assert sorted(tmp_path.iterdir()) == [path]


def test_duplicate_key_in_a_sweep_files_base_config(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 1\nloss:\n  W: 0.3\nloss:\n  W: 0.5\n")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: base.yaml\nspace:\n  loss.W: {type: uniform, low: 0.1, high: 0.9}\n")
    one_error(uwav("sweep", sweep), "base.yaml:4:1", "duplicate key 'loss'", "first at line 2")


def test_set_values_are_strict_yaml_and_plain_strings_still_work(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\n")
    one_error(uwav("config", config, "--set", "loss.W=[0.3"), "--set 'loss.W=[0.3'", "invalid YAML value")
    one_error(uwav("config", config, "--set", "loss.W={a: 1, a: 2}"), "duplicate key 'a'")
    one_error(uwav("config", config, "--set", "seed=1", "--set", "seed=2"), "--set seed: given twice")
    ok = uwav("config", config, "--set", "paths.out=runs/my run", "--set", "loss.W=0.25")
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)
    assert resolved["paths"]["out"] == "runs/my run" and resolved["loss"]["W"] == 0.25


# ---- checkpoints -----------------------------------------------------------------------------------


class _Payload:
    """A pickle whose loading would run code: touch a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained(tiny_pipeline, tmp_path_factory):
    """A finished 1-epoch parser run (best.pt, last.pt) of the tiny pipeline, made in-process."""
    from uwav.config import load_config, with_overrides
    from uwav.data.dataset import load_parser_data
    from uwav.train import run_training

    config = with_overrides(load_config(tiny_pipeline), {"train.epochs": 1, "train.warmup_epochs": 0})
    run = tmp_path_factory.mktemp("trained") / "run"
    run_training(config, load_parser_data(config, include_test=False), run, False, progress=False)
    return {"config": tiny_pipeline, "run": run}


def _torch_bytes(obj) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def broken_checkpoints(folder: Path, run: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (a file where last.pt is expected, what the error line must say)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (run / "last.pt").read_bytes()
    files = {
        "truncated": (data[: len(data) // 2], ("truncated or damaged",)),
        "random": (np.random.default_rng(0).bytes(4096), ("not a PyTorch file",)),
        "code_zip": (_torch_bytes({"model": _Payload(folder / "PWNED")}), ("system", "refuses without running")),
        "best": ((run / "best.pt").read_bytes(), ("a uwav parser checkpoint", "not a resumable training state")),
    }
    out = {}
    for name, (content, says) in files.items():
        (folder / name).mkdir()
        (folder / name / "last.pt").write_bytes(content)
        out[name] = (folder / name, says)
    return out


def test_resume_from_broken_last_pt_is_one_line_and_code_never_runs(trained, tmp_path):
    cases = broken_checkpoints(tmp_path, trained["run"])
    for name, (run, says) in cases.items():
        before = sorted(p.name for p in run.iterdir())
        result = uwav("train", trained["config"], "--resume", "--out", run)
        one_error(result, str(run / "last.pt"), *says)
        assert sorted(p.name for p in run.iterdir()) == before, name  # nothing written
    assert not (tmp_path / "PWNED").exists()  # the pickle's payload never ran


def test_resume_into_another_model_shape_names_both_shapes(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    result = uwav("train", trained["config"], "--resume", "--out", run, "--set", "parser.d_model=48",
                  "--set", "parser.ff=64")
    line = one_error(result, str(run / "last.pt"), "made by another model shape", "in the checkpoint vs")
    # the first tensors that differ are the audio MLP's hidden layer, 2·d wide: d 32 in the run, 48 asked
    assert "[64" in line and "[96" in line, line


def test_every_checkpoint_reader_goes_through_the_one_loader(trained, tmp_path):
    """`uwav parse --parser` and the generator reader (`uwav pseudo`) answer like --resume."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"parser": _Payload(marker)}))
    if SAMPLE.is_file():
        one_error(uwav("parse", SAMPLE, "--parser", evil, "--random-weights"), str(evil),
                  "refused by the weights-only reader")
    raw = yaml.safe_load(Path(trained["config"]).read_text())
    raw["paths"]["out"] = str(tmp_path / "out")
    (tmp_path / "out" / "generator").mkdir(parents=True)
    (tmp_path / "out" / "generator" / "best.pt").write_bytes(pickle.dumps(_Payload(marker)))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    one_error(uwav("pseudo", config), "generator/best.pt", "not a uwav generator checkpoint")
    assert not marker.exists()


# ---- prediction files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def val_predictions():
    from uwav.data.llp import load_llp_split

    llp = load_llp_split(LLP, "val")
    weak = llp.weak.astype(np.float32)
    seg = np.repeat(weak[:, None, :], 10, axis=1)
    return {"filename": np.array(llp.filenames), "audio": seg, "visual": seg.copy(), "video": weak}


def test_eval_refuses_values_outside_each_keys_range(tmp_path, val_predictions):
    good = val_predictions
    logits = good["audio"] * 8 - 4  # logits passed by mistake
    cases = [
        ({"audio": logits}, ["key audio holds values in [-4, 4], outside [0, 1]"]),
        ({"visual": good["visual"] + 0.5}, ["key visual holds values in [0.5, 1.5], outside [0, 1]"]),
        ({"video": good["video"] - 3}, ["key video holds values in [-3, -2], outside [0, 2]"]),
        ({"audio": np.where(good["audio"] > 0, np.nan, good["audio"]), "video": good["video"] * 5},
         ["key audio holds", "NaN/inf", "key video holds values in [0, 5]"]),  # all problems at once
    ]
    out = tmp_path / "scores.json"
    for change, says in cases:
        path = tmp_path / "pred.npz"
        np.savez(path, **{**good, **change})
        one_error(uwav("eval", path, "--annotations", LLP, "--split", "val", "--json", out), str(path), *says)
        assert not out.exists()
    video_in_range = {**good, "video": good["video"] * 1.9}  # the MMIL output lies in [0, 2]: accepted
    np.savez(tmp_path / "pred.npz", **video_in_range)
    result = uwav("eval", tmp_path / "pred.npz", "--annotations", LLP, "--split", "val", "--json", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["segment_type_at_av"] > 0


# ---- extraction and parsing ------------------------------------------------------------------------

needs_extract = pytest.mark.skipif(not HAS_EXTRACT, reason="extract extra or the sample clip missing")
DRIVER = str(REPO / "tests" / "tiny_extract_cli.py")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from test_extract import TINY_CLIP, write_tokenizer

    root = tmp_path_factory.mktemp("tiny_models")
    (root / "tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    write_tokenizer(root / "tok")
    return ["--random-weights", "--clip-config", root / "tiny-clip.json", "--clap-tokenizer", root / "tok"]


@needs_extract
def test_nothing_to_extract_or_parse_is_an_error_and_writes_nothing(tmp_path, tiny_models, trained):
    empty = tmp_path / "videos"
    empty.mkdir()
    (empty / "notes.txt.bak").write_text("no videos here")
    out = tmp_path / "feats"
    one_error(uwav("extract", empty, "--out", out, *tiny_models), str(empty), "no video files")
    listing = tmp_path / "list.txt"
    listing.write_text("\n\n")
    one_error(uwav("extract", listing, "--out", out, *tiny_models), "video list is empty")
    listing.write_text("a.mp4\nb.mp4\n")
    one_error(uwav("extract", listing, "--out", out, *tiny_models),
              "2 listed video(s) not found", "list.txt:1", "list.txt:2")
    events = tmp_path / "events.json"
    one_error(uwav("parse", empty, "--parser", trained["run"] / "best.pt", "--json", events, *tiny_models),
              "no video files")
    assert not out.exists() and not events.exists()


# ---- the operating system --------------------------------------------------------------------------


def test_output_locations_are_checked_before_any_work(tmp_path, trained, tiny_dataset):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    pred = tmp_path / "pred.npz"
    pred.write_bytes(b"unused: the output is refused first")
    one_error(uwav("eval", pred, "--annotations", LLP, "--split", "val", "--json", blocker / "s.json"),
              str(blocker / "s.json"), f"{blocker} is a file")
    one_error(uwav("data", "synth", blocker / "data"), str(blocker / "data"), "is a file")
    one_error(uwav("train", trained["config"], "--out", blocker / "run"), "cannot create the run folder")
    one_error(uwav("train", trained["config"], "--out", blocker), str(blocker), "must be a folder")
    raw = pipeline_config(tiny_dataset, blocker)  # paths.out is a file: refused before the first epoch
    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump(raw))
    one_error(uwav("pretrain", config), "cannot create the generator folder", f"{blocker} is a file")
    one_error(uwav("extract", SAMPLE, "--out", blocker, "--random-weights"), "--out folder must be a folder")
    one_error(uwav("parse", SAMPLE, "--parser", trained["run"] / "best.pt", "--json", tmp_path),
              "is a folder; the --json file must be a file path")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"base: {trained['config']}\nspace:\n  loss.W: {{type: uniform, low: 0.1, high: 0.9}}\n"
                     f"storage:\n  path: {blocker / 'sweeps'}\n")
    one_error(uwav("sweep", sweep), "cannot create the sweep folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "pred.npz", "pretrain.yaml", "s.yaml"]


def test_any_oserror_at_the_boundary_is_one_line_naming_the_path(tmp_path, monkeypatch, val_predictions):
    """Errors a root-run subprocess cannot be made to hit (permissions, a full disk), raised in-process
    where the OS would raise them; the CLI boundary and the atomic writer turn them into one line."""
    from click.testing import CliRunner

    from uwav.cli import main

    pred = tmp_path / "pred.npz"
    np.savez(pred, **val_predictions)
    out = tmp_path / "scores" / "s.json"
    args = ["eval", str(pred), "--annotations", str(LLP), "--split", "val", "--json", str(out)]

    def full_disk(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")  # what a write() raises: no file name

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", full_disk)
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last == f"error: {out}: No space left on device (free some space and run again)"
    assert list((tmp_path / "scores").iterdir()) == []  # the temporary file is gone

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    with monkeypatch.context() as m:
        m.setattr(os, "replace", denied)
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"error: {out}: Permission denied"
    assert list((tmp_path / "scores").iterdir()) == []


# ---- SIGINT / SIGTERM --------------------------------------------------------------------------------


def interrupt_when(cmd: list, ready, signum: int, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Start `cmd`, wait until `ready()` holds (it has started its long work), send `signum`."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never started its work"
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_train_interrupted_leaves_a_resumable_state(trained, tmp_path):
    """Ctrl-C; SIGTERM (the same path in the CLI boundary) is sent to pretrain below."""
    from uwav.checkpoints import load_trainer_state

    signum, code = signal.SIGINT, 130
    run = tmp_path / "run"
    last = run / "last.pt"
    cmd = [UWAV, "train", trained["config"], "--out", run, "--set", "train.epochs=100000"]
    result = interrupt_when(cmd, last.is_file, signum, tmp_path)
    one_error(result, f"interrupted by {signal.Signals(signum).name}", "--resume", code=code)
    no_temp_files(run)
    epoch = load_trainer_state(last)["epoch"]
    assert epoch >= 1
    # and it does resume: one more epoch, then the run finishes
    done = uwav("train", trained["config"], "--out", run, "--resume", "--set", f"train.epochs={epoch + 1}")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] <= epoch + 1
    assert load_trainer_state(last)["epoch"] == epoch + 1


def test_pretrain_interrupted_by_sigterm(tiny_dataset, tmp_path):
    raw = pipeline_config(tiny_dataset, tmp_path / "out")
    raw["pretrain"].update(epochs=100000)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    best = tmp_path / "out" / "generator" / "best.pt"
    result = interrupt_when([UWAV, "pretrain", config], best.is_file, signal.SIGTERM, tmp_path)
    one_error(result, "interrupted by SIGTERM", code=143)
    no_temp_files(tmp_path)
    from uwav.checkpoints import load_generator

    load_generator(best)  # complete and readable


@needs_extract
def test_extract_nothing_decodable_interrupted_and_partly_failed(tmp_path, tiny_models):
    """All videos broken: nothing left behind. Then good clips beside them: Ctrl-C keeps every finished
    video (the manifest lists them), and the rerun continues, keeps the rest and lists the failures."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken1.mp4").write_bytes(b"garbage" * 50)
    (videos / "broken2.mp4").write_bytes(b"\x00" * 300)
    out = tmp_path / "feats"
    one_error(uwav("extract", videos, "--out", out, "--segments", "2", *tiny_models, driver=DRIVER),
              "none of the 2 video(s) could be decoded", "nothing written", "broken1.mp4", "broken2.mp4")
    assert not out.exists()  # so a rerun with other settings (--segments 1 below) is accepted

    for i in range(6):
        os.symlink(SAMPLE, videos / f"clip{i}.mp4")
    clip, clap = out / "feats_CLIP" / "segment_feats", out / "feats_CLAP" / "segment_feats"
    cmd = [sys.executable, DRIVER, "extract", videos, "--out", out, "--segments", "1", "--workers", "1",
           *tiny_models]
    result = interrupt_when(cmd, lambda: any(clap.glob("*.npy")), signal.SIGINT, tmp_path,
                            env={**ENV, "UWAV_TEST_DECODE_SECONDS": "2"})
    one_error(result, "interrupted by SIGINT", "run the same command again", code=130)
    no_temp_files(out)
    done = {p.stem for p in clap.glob("*.npy")} & {p.stem for p in clip.glob("*.npy")}
    assert set(json.loads((out / "manifest.json").read_text())["videos"]) == done and 1 <= len(done) < 6

    rerun = uwav("extract", videos, "--out", out, "--segments", "1", *tiny_models, driver=DRIVER)
    one_error(rerun, "2 of 8 video(s) failed", "manifest.json", "run again to retry", "broken1.mp4", "broken2.mp4")
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["videos"]) == {f"clip{i}" for i in range(6)}
    assert set(manifest["failed"]) == {"broken1", "broken2"}
    no_temp_files(out)
