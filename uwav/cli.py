"""The `uwav` command line: parse arguments, call the library, print. No training logic lives here.

Every user-caused error (UwavError) is printed as one line and exits with code 2.
Heavy libraries (torch, ray, mlflow) are imported inside the commands so `uwav --help` stays fast.
"""

from __future__ import annotations

import functools
import sys

import click

from uwav.errors import UwavError


def user_errors(fn):
    """Turn UwavError into `error: <message>` on stderr and exit code 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UwavError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uwav")
def main() -> None:
    """UWAV audio-visual video parsing: pre-train, pseudo-label, train, evaluate and sweep."""


@main.group()
def data() -> None:
    """Synthesise and validate datasets in the released on-disk layouts."""


# ---- commands are registered below, one section per library module ---------------------------


# ---- eval (uwav.metrics, uwav.data.llp) --------------------------------------------------------


@main.command("eval")
@click.argument("predictions", type=str)
@click.option("--annotations", required=True, type=str, help="Folder with the LLP annotation CSVs.")
@click.option("--split", type=click.Choice(["val", "test"]), required=True)
@click.option("--eval-audio", type=str, default=None, help="Dense audio GT CSV (default: HEAD file).")
@click.option("--eval-visual", type=str, default=None, help="Dense visual GT CSV.")
@click.option("--tie-rule", type=click.Choice(["ge", "gt"]), default="ge", show_default=True)
@click.option("--json", "json_out", type=str, default=None, help="Write the scores (percent) as JSON.")
@user_errors
def eval_cmd(predictions, annotations, split, eval_audio, eval_visual, tie_rule, json_out) -> None:
    """Score PREDICTIONS.npz (filename, audio, visual, video) on an LLP split: the ten F-scores."""
    from uwav.data.llp import load_llp_split, load_predictions
    from uwav.io import write_json
    from uwav.metrics import evaluate_probabilities, format_table, nested

    llp = load_llp_split(annotations, split, eval_audio=eval_audio, eval_visual=eval_visual)
    audio, visual, video = load_predictions(predictions, llp.filenames)
    scores = evaluate_probabilities(audio, visual, video, llp.gt_audio, llp.gt_visual, tie_rule=tie_rule)
    click.echo(format_table(scores, title=f"LLP {split} ({len(llp)} videos, tie rule {tie_rule})"))
    click.echo(f"audio GT: {llp.audio_gt_file}")
    if json_out:
        report = {**nested(scores), "split": split, "tie_rule": tie_rule, "audio_gt_file": llp.audio_gt_file}
        report["visual_gt_file"] = llp.visual_gt_file
        write_json(json_out, report)


# ---- the method: pretrain / pseudo / train (uwav.pretrain, uwav.generate, uwav.experiment) ------


def _overrides(pairs: tuple[str, ...]) -> dict:
    """`--set loss.W=0.3` pairs -> {"loss.W": 0.3}; values are parsed as YAML scalars."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UwavError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set loss.W=0.3")
        out[key.strip()] = yaml.safe_load(value)
    return out


_SET = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                    help="Override a config value by dotted key (repeatable), e.g. --set train.epochs=5.")


@main.command()
@click.argument("config_file", type=str)
@_SET
@user_errors
def pretrain(config_file, sets) -> None:
    """Pre-train the pseudo-label generator on UnAV-100 (stage 1).

    Writes <paths.out>/generator/best.pt: the epoch with the best UnAV-val Seg-av.
    """
    from uwav.config import load_config
    from uwav.pretrain import pretrain as run

    config = load_config(config_file, _overrides(sets))
    result = run(config)
    click.echo(f"generator: best UnAV-val Seg-av {result.best_seg_av:.2f} at epoch {result.best_epoch} "
               f"-> {result.checkpoint}")


@main.command()
@click.argument("config_file", type=str)
@click.option("--force", is_flag=True, help="Recompute the logits even if the cache matches the checkpoint.")
@_SET
@user_errors
def pseudo(config_file, force, sets) -> None:
    """Generator logits for every LLP split (cached once), θ fitted on val, pseudo-label quality (stage 2).

    Writes <paths.out>/pseudo/: logits.npz, a_/v_classwise_thresholds.npy and quality.json, and prints
    the quality of the generator's labels next to the zero-shot baseline.
    """
    from uwav.config import load_config
    from uwav.generate import run_pseudo
    from uwav.metrics import METRIC_NAMES

    config = load_config(config_file, _overrides(sets))
    report = run_pseudo(config, force=force)
    click.echo(("logits recomputed" if report["regenerated_logits"] else "logits reused (cache matches the "
                "generator checkpoint)") + f": {config.logits_file}")
    header = f"{'labels':<10} {'split':<6} " + " ".join(f"{n:>9}" for n in METRIC_NAMES)
    click.echo(header)
    for row in report["rows"]:
        click.echo(f"{row['labels']:<10} {row['split']:<6} " + " ".join(f"{row[n]:9.2f}" for n in METRIC_NAMES))
    inf = report["infinite_thresholds"]
    click.echo(f"θ = −∞ for {inf['audio']} audio and {inf['visual']} visual classes; audio GT: "
               f"{report['audio_gt_file']}")


@main.command()
@click.argument("config_file", type=str, required=False)
@click.option("--test", "evaluate_test", is_flag=True,
              help="After training, evaluate the best checkpoint once on the test split.")
@click.option("--resume", is_flag=True, help="Continue from <out>/parser/last.pt.")
@click.option("--out", "run_dir", type=str, default=None, help="Run folder (default <paths.out>/parser).")
@_SET
@user_errors
def train(config_file, evaluate_test, resume, run_dir, sets) -> None:
    """Train the HAN parser with the UWAV losses (stage 3); select the best epoch on val Seg Type@AV.

    Writes best.pt, last.pt, history.json, metrics.json and, with --test, predictions_test.npz (the
    `uwav eval` format) to the run folder.
    """
    from pathlib import Path

    from uwav.config import load_config
    from uwav.data.dataset import load_parser_data
    from uwav.experiment import format_summary, run_training

    if config_file is None:
        raise UwavError("uwav train: give a CONFIG file")
    config = load_config(config_file, _overrides(sets))
    data = load_parser_data(config, include_test=evaluate_test)
    summary = run_training(config, data, Path(run_dir) if run_dir else config.parser_dir, evaluate_test, resume)
    click.echo(format_summary(summary))
    click.echo(f"files: {Path(run_dir) if run_dir else config.parser_dir}")
