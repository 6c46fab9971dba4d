"""`uwav eval`: public test vectors through the CLI, --json output, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from uwav.cli import main
from uwav.data.llp import load_llp_split
from uwav.metrics import METRIC_NAMES

LLP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llp"

# evaluation.md §13, ten numbers in the standard order (Seg A V AV Type Event, Ev A V AV Type Event)
TEST_HEAD_WEAK_ALL = [76.117616, 60.347996, 52.610299, 63.025304, 71.725774,
                      63.027249, 55.752712, 44.692063, 54.490675, 61.601091]  # fmt: skip
TEST_LEGACY_WEAK_ALL = [76.080238, 60.347996, 52.607236, 63.011823, 71.702918,
                        63.027249, 55.752712, 44.692063, 54.490675, 61.603869]  # fmt: skip
VAL_HEAD_EMPTY = [
    0.616333,
    10.785824,
    14.329738,
    8.577298,
    0.0,
    0.616333,
    10.785824,
    14.329738,
    8.577298,
    0.0,
]
VAL_HEAD_WEAK_ALL = [77.074772, 58.654129, 52.072682, 62.600528, 71.533565,
                     63.848656, 53.475432, 44.149118, 53.824402, 61.120711]  # fmt: skip



@pytest.fixture(scope="module")
def splits():
    return {s: load_llp_split(LLP, s) for s in ("val", "test")}


def predictions(llp, scheme: str, order=None) -> dict[str, np.ndarray]:
    """Probabilities that binarise to the scheme: weak_all (audio = visual = video = weak) or empty."""
    weak = llp.weak.astype(np.float32) * (scheme == "weak_all")
    seg = np.repeat(weak[:, None, :], 10, axis=1)
    out = {"filename": np.array(llp.filenames), "audio": seg, "visual": seg.copy(), "video": weak}
    if order is not None:
        out = {k: v[order] for k, v in out.items()}
    return out


def run_eval(tmp_path, arrays: dict, *args: str):
    path = tmp_path / "pred.npz"
    np.savez(path, **arrays)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(
        main, ["eval", str(path), "--annotations", str(LLP), "--json", str(out), *args]
    )
    return result, out


def flat(report: dict) -> list[float]:
    return [report[name] for name in METRIC_NAMES]


@pytest.mark.parametrize(
    ("split", "scheme", "audio", "expected"),
    [
        ("val", "empty", None, VAL_HEAD_EMPTY),
        ("val", "weak_all", None, VAL_HEAD_WEAK_ALL),
        ("test", "weak_all", None, TEST_HEAD_WEAK_ALL),
        ("test", "weak_all", "legacy/AVVP_eval_audio.csv", TEST_LEGACY_WEAK_ALL),
    ],
)
def test_eval_cli_public_vectors_shuffled(tmp_path, splits, split, scheme, audio, expected):
    llp = splits[split]
    order = np.random.default_rng(0).permutation(len(llp))
    extra = ["--eval-audio", str(LLP / audio)] if audio else []
    result, out = run_eval(tmp_path, predictions(llp, scheme, order), "--split", split, *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [round(x, 6) for x in flat(report)] == pytest.approx(expected, abs=1e-9)
    assert report["split"] == split and report["tie_rule"] == "ge"
    assert report["audio_gt_file"] == str(LLP / (audio or "AVVP_eval_audio.csv"))
    assert f"audio GT: {report['audio_gt_file']}" in result.output
    segment_row = next(line for line in result.output.splitlines() if line.startswith("Segment"))
    assert segment_row.split()[1:] == [f"{x:.2f}" for x in expected[:5]]


def test_eval_cli_tie_rule(tmp_path, splits):
    llp = splits["test"]
    arrays = predictions(llp, "weak_all")
    # weak classes at exactly 0.5 everywhere, including the video-level gate
    arrays = {k: (v * 0.5 if k != "filename" else v) for k, v in arrays.items()}
    result, out = run_eval(tmp_path, arrays, "--split", "test", "--tie-rule", "ge")
    assert result.exit_code == 0, result.output
    assert [round(x, 6) for x in flat(json.loads(out.read_text()))] == pytest.approx(TEST_HEAD_WEAK_ALL)
    result, out = run_eval(tmp_path, arrays, "--split", "test", "--tie-rule", "gt")
    report = json.loads(out.read_text())
    assert report["tie_rule"] == "gt"
    assert report["segment_audio"] == pytest.approx(0.5)  # nothing predicted: the empty scheme


def bad_cases(llp):
    good = predictions(llp, "weak_all")
    nan_audio = good["audio"].copy()
    nan_audio[3, 2, 1] = np.nan
    dup = {k: v.copy() for k, v in good.items()}
    dup["filename"][5] = dup["filename"][4]
    return [
        ({k: v for k, v in good.items() if k not in ("video", "visual")}, r"missing key\(s\) visual, video"),
        ({**good, "audio": good["audio"][:, :9]}, r"key audio has shape \(649, 9, 25\)"),
        ({**good, "video": good["video"][:, None]}, r"key video has shape"),
        ({**good, "audio": nan_audio}, r"key audio holds 1 NaN/inf"),
        (dup, r"duplicate '.*' at rows 4 and 5"),
        ({k: v[:-2] for k, v in good.items()}, r"2 missing \(e.g. .*\), 0 extra"),
        (
            {
                k: np.concatenate([v, v[:1]]) if k != "filename" else np.append(v, "AAAAAAAAAAA_0_10")
                for k, v in good.items()
            },  # fmt: skip
            r"0 missing \(e.g. -\), 1 extra \(e.g. AAAAAAAAAAA_0_10\)",
        ),
    ]


@pytest.mark.parametrize("case", range(7))
def test_eval_cli_bad_predictions(tmp_path, splits, case):
    arrays, pattern = bad_cases(splits["val"])[case]
    result, out = run_eval(tmp_path, arrays, "--split", "val")
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message and "pred.npz" in message
    assert re.search(pattern, message), message
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "pred.npz"]


def test_eval_cli_unreadable_file_and_bad_annotations(tmp_path):
    garbage = tmp_path / "pred.npz"
    garbage.write_bytes(b"not a zip")
    out = tmp_path / "s.json"
    runner = CliRunner()
    result = runner.invoke(
        main, ["eval", str(garbage), "--annotations", str(LLP), "--split", "val", "--json", str(out)]
    )
    assert result.exit_code == 2 and "pred.npz: not a readable .npz" in result.output
    result = runner.invoke(
        main, ["eval", str(tmp_path / "none.npz"), "--annotations", str(LLP), "--split", "val"]
    )
    assert result.exit_code == 2 and "none.npz: file not found" in result.output
    result = runner.invoke(main, ["eval", str(garbage), "--annotations", str(tmp_path), "--split", "val"])
    assert result.exit_code == 2 and "AVVP_val_pd.csv: file not found" in result.output
    bad_audio = tmp_path / "audio.csv"
    bad_audio.write_text("filename\tonset\toffset\tevent_labels\nx\t0\t3\tDoggo\n")
    result = runner.invoke(
        main,
        ["eval", str(garbage), "--annotations", str(LLP), "--split", "val", "--eval-audio", str(bad_audio),
         "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2 and "audio.csv line 2: unknown class 'Doggo'" in result.output
    assert not out.exists()
