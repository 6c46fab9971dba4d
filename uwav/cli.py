"""The `uwav` command line: parse arguments, call the library, print. No training logic lives here.

Every user-caused error (UwavError) is printed as one line and exits with code 2.
Heavy libraries (torch, ray, mlflow) are imported inside the commands so `uwav --help` stays fast.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading

import click

from uwav.errors import Interrupted, UwavError, describe_os_error

# What an interrupted command leaves behind, by command name (every file is written atomically, so none
# is ever half-written).
INTERRUPTED = {
    "train": "a run's last.pt holds its last finished epoch: `uwav train CONFIG --resume` continues it",
    "pretrain": "the generator checkpoint holds the best finished epoch; pre-training restarts from epoch 1",
    "extract": "the videos finished so far are kept: run the same command again to continue",
    "sweep": "continue with `uwav sweep SWEEP_FILE --resume`",
}
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def user_errors(fn):
    """The CLI's error boundary: a UwavError or any OSError is `error: <message>` on stderr, exit code 2;
    SIGINT / SIGTERM end the command with one line and exit code 130 / 143, after every `finally` (temporary
    files) has run. No traceback for any of these."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_interrupted)  # default SIGTERM runs no cleanup
        try:
            return fn(*args, **kwargs)
        except UwavError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except OSError as err:
            click.echo(f"error: {' '.join(describe_os_error(err).split())}", err=True)
            sys.exit(2)
        except (KeyboardInterrupt, Interrupted) as err:
            signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
            ctx = click.get_current_context(silent=True)
            left = INTERRUPTED.get(ctx.info_name if ctx else "", "no file was left half-written")
            click.echo(f"error: interrupted by {signal.Signals(signum).name}; {left}", err=True)
            sys.exit(SIGNAL_EXIT.get(signum, 128 + int(signum)))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uwav")
def main() -> None:
    """UWAV audio-visual video parsing: pre-train, pseudo-label, train, evaluate and sweep."""
    from uwav._env import quiet_library_defaults

    quiet_library_defaults()


@main.group()
def data() -> None:
    """Synthesise and validate datasets in the released on-disk layouts."""


# ---- commands are registered below, one section per library module ---------------------------


# ---- eval (uwav.metrics, uwav.data.llp) --------------------------------------------------------


@main.command("eval")
@click.argument("predictions", type=str)
@click.option("--annotations", required=True, type=str,
              help="Folder with the LLP annotation CSVs (AVE: Annotations.txt and the split files).")
@click.option("--split", type=click.Choice(["val", "test"]), required=True)
@click.option("--dataset", type=click.Choice(["llp", "ave"]), default="llp", show_default=True)
@click.option("--class-order", type=click.Choice(["dataset", "alphabetical"]), default="dataset",
              show_default=True, help="AVE only: the class index order of the predictions' last axis.")
@click.option("--eval-audio", type=str, default=None, help="Dense audio GT CSV (default: HEAD file).")
@click.option("--eval-visual", type=str, default=None, help="Dense visual GT CSV.")
@click.option("--tie-rule", type=click.Choice(["ge", "gt"]), default="ge", show_default=True)
@click.option("--json", "json_out", type=str, default=None,
              help="Write the scores (percent, the README's metric names) and the files scored as JSON.")
@user_errors
def eval_cmd(predictions, annotations, split, dataset, class_order, eval_audio, eval_visual, tie_rule,
             json_out) -> None:
    """Score PREDICTIONS.npz (filename, audio, visual, video) on a split.

    LLP: the ten F-scores. AVE: segment accuracy (evaluation.md §12 rule) plus the F-scores, with
    filenames = the per-row sample keys `<row:04d>_<video id>` and 28 classes in --class-order.
    """
    from uwav.data.llp import load_llp_split, load_predictions
    from uwav.io import check_output_file, write_json
    from uwav.metrics import evaluate_ave, evaluate_probabilities, format_ave, format_table
    from uwav.provenance import audio_gt_identity, describe_audio_gt

    if json_out:
        check_output_file(json_out, "--json file")
    if dataset == "ave":
        from uwav.data.ave import check_prediction_classes, load_ave_split

        if eval_audio or eval_visual:
            raise UwavError("--eval-audio / --eval-visual are LLP options; AVE GT comes from Annotations.txt")
        ave = load_ave_split(annotations, split, class_order=class_order)
        check_prediction_classes(predictions, class_order)
        audio, visual, video = load_predictions(predictions, ave.filenames, ave.weak.shape[1])
        scores = evaluate_ave(audio, visual, video, ave.gt_audio, tie_rule=tie_rule)
        click.echo(format_ave(scores, title=f"AVE {split} ({len(ave)} clips, class order {class_order}, "
                                            f"F tie rule {tie_rule})"))
        if json_out:
            write_json(json_out, {**scores, "dataset": "ave",
                                  "split": split, "class_order": class_order, "tie_rule": tie_rule,
                                  "annotations_file": ave.audio_gt_file})
        return
    llp = load_llp_split(annotations, split, eval_audio=eval_audio, eval_visual=eval_visual)
    audio, visual, video = load_predictions(predictions, llp.filenames)
    scores = evaluate_probabilities(audio, visual, video, llp.gt_audio, llp.gt_visual, tie_rule=tie_rule)
    click.echo(format_table(scores, title=f"LLP {split} ({len(llp)} videos, tie rule {tie_rule})"))
    identity = audio_gt_identity(llp.audio_gt_file)
    click.echo(describe_audio_gt(identity))
    if json_out:
        report = {**scores, "split": split, "tie_rule": tie_rule, "audio_gt_file": llp.audio_gt_file,
                  "audio_gt": identity}
        report["visual_gt_file"] = llp.visual_gt_file
        write_json(json_out, report)


# ---- the method: pretrain / pseudo / train (uwav.pretrain, uwav.pseudo.run, uwav.train) -----------


def _overrides(pairs: tuple[str, ...]) -> dict:
    """`--set loss.W=0.3` pairs -> {"loss.W": 0.3}; values are parsed as YAML (strictly: `[0.3` is refused)."""
    from uwav.io import parse_yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UwavError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set loss.W=0.3")
        if key in out:
            raise UwavError(f"--set {key}: given twice; give each key once")
        out[key] = parse_yaml(value, f"--set {pair!r}", value=True)
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
    from pathlib import Path

    from uwav.config import load_config
    from uwav.io import check_output_dir
    from uwav.pretrain import pretrain as run
    from uwav.pretrain import pretrain_precision

    config = load_config(config_file, _overrides(sets))
    check_output_dir(Path(config.generator_checkpoint).parent, f"generator folder (paths.out of {config_file})")
    pretrain_precision(config, f"{config_file}: pretrain.precision")  # the refusal names the file
    result = run(config)
    click.echo(f"generator: best UnAV-val Seg-av {result.best_seg_av:.2f} at epoch {result.best_epoch} "
               f"({result.precision}) -> {result.checkpoint}")


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
    from pathlib import Path

    from uwav.config import load_config
    from uwav.io import check_output_dir
    from uwav.metrics import METRIC_NAMES, SHORT_TITLES
    from uwav.pseudo.run import run_pseudo

    config = load_config(config_file, _overrides(sets))
    check_output_dir(Path(config.logits_file).parent, f"pseudo-label folder (paths.out of {config_file})")
    report = run_pseudo(config, force=force)
    click.echo(("logits recomputed" if report["regenerated_logits"] else "logits reused (cache matches the "
                "generator checkpoint)") + f": {config.logits_file}")
    names = ("accuracy", *METRIC_NAMES) if config.dataset == "ave" else METRIC_NAMES
    # Short titles so the table fits 120 columns; the legend names them in full (README: metric glossary).
    header = f"{'labels':<10} {'split':<6} " + " ".join(f"{SHORT_TITLES[n]:>8}" for n in names)
    click.echo(header)
    for row in report["rows"]:
        click.echo(f"{row['labels']:<10} {row['split']:<6} " + " ".join(f"{row[n]:8.2f}" for n in names))
    click.echo("Seg/Ev = Segment/Event level; A, V, AV, Type, Event = Audio, Visual, AV, Type@AV, Event@AV (percent)")
    if config.dataset == "ave":
        click.echo(f"AVE class order: {config.ave_class_order}; θ fit: {config.pseudo.threshold_fit}")
    inf = report["infinite_thresholds"]
    if config.pseudo.threshold_fit == "f1":
        click.echo(f"θ cuts: {config.pseudo.threshold_cuts}")
    click.echo(f"θ = −∞ for {inf['audio']} audio and {inf['visual']} visual classes; audio GT: "
               f"{report['audio_gt_file']}")


@main.command()
@click.argument("config_file", type=str, required=False)
@click.option("--test", "evaluate_test", is_flag=True,
              help="After training, evaluate the best checkpoint once on the test split.")
@click.option("--resume", is_flag=True, help="Continue from <out>/parser/last.pt.")
@click.option("--out", "run_dir", type=str, default=None, help="Run folder (default <paths.out>/parser).")
@click.option("--best", "best_of", type=str, default=None, metavar="SWEEP",
              help="Instead of CONFIG: retrain the best configuration(s) of a finished sweep (its sweep file "
                   "or folder) and a reference with the same fresh seeds, evaluate each run once on test, "
                   "report mean ± std and the paired difference (95% t interval, paired t-test).")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="With --best: seeds per configuration, fresh: the integers after every seed the sweep used "
                   "(trial and re-evaluation seeds), the same for the winner and the reference.")
@click.option("--reference", type=str, default=None, metavar="default|paper|FILE|none",
              help="With --best: the configuration trained beside the winner with the same seeds, for the paired "
                   "comparison. paper: the base config with the sweep's first points_to_evaluate entry (the "
                   "paper's settings in sweeps/*.yaml); default: the base config as is (the code's defaults); "
                   "FILE: a pipeline config; none. [default: the sweep file's finish.reference, else paper]")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --best: how many of the sweep's best configurations to retrain.")
@_SET
@user_errors
def train(config_file, evaluate_test, resume, run_dir, best_of, seeds, reference, top_k, sets) -> None:
    """Train the HAN parser with the UWAV losses (stage 3); select the best epoch on val Seg Type@AV.

    Writes best.pt, last.pt, history.json, metrics.json and, with --test, predictions_test.npz (the
    `uwav eval` format) to the run folder. With --best SWEEP: the paper-table command (see --seeds).
    """
    from pathlib import Path

    from uwav.config import load_config
    from uwav.data.dataset import load_parser_data
    from uwav.fit import training_precision
    from uwav.train import format_summary, resume_state_of, run_training

    if best_of is not None:
        if config_file is not None or sets or resume or run_dir or evaluate_test:
            raise UwavError("uwav train --best SWEEP takes no CONFIG, --set, --resume, --out or --test: the "
                            "configuration comes from the sweep and test is always evaluated once")
        from uwav.sweep.finish import finish_best

        report = finish_best(best_of, seeds=seeds, top_k=top_k, reference=reference, echo=click.echo)
        click.echo(f"files: {', '.join(report['files'])}")
        click.echo(_final_run_link(best_of, report))
        click.echo("")
        click.echo(report["text"])  # last: the paired table is what the command is for
        return
    if reference is not None:
        raise UwavError("--reference is an option of uwav train --best SWEEP")
    if config_file is None:
        raise UwavError("uwav train: give a CONFIG file")
    from uwav.io import check_output_dir

    config = load_config(config_file, _overrides(sets))
    out = Path(run_dir) if run_dir else Path(config.parser_dir)
    check_output_dir(out, "run folder" if run_dir else f"run folder (paths.out of {config_file})")
    training_precision(config, where=f"{config_file}: train.precision")  # refuse slow bf16 before loading data
    state = resume_state_of(out) if resume else None  # a broken last.pt, too, is refused before the data load
    data = load_parser_data(config, include_test=evaluate_test)
    summary = run_training(config, data, out, evaluate_test, resume, resume_state=state)
    click.echo(format_summary(summary))
    click.echo(f"files: {out}")


def _final_run_link(sweep_source: str, report: dict) -> str:
    """Where the final runs are in MLflow: the store and the summary run's page (nested under the sweep)."""
    from uwav import mlflow_ui
    from uwav.sweep.results import sweep_dir_of

    _, meta = sweep_dir_of(sweep_source)
    uri, summary = report["tracking_uri"], (report.get("mlflow") or {}).get("summary_run_id")
    if not summary or not meta.get("experiment_id"):
        return f"MLflow: {uri}"
    link = mlflow_ui.run_url(mlflow_ui.ui_base(uri), str(meta["experiment_id"]), summary)
    return f"MLflow: {uri}; final run (under the sweep's parent): {link}" + (
        "" if uri.startswith(("http://", "https://")) else f" (after `uwav ui {sweep_source}`)")


# ---- uwav data synth / check (uwav.data.synthetic, uwav.data.check) ---------------------------


def _parse_unav_counts(text: str | None) -> dict[str, int | None]:
    """--videos-unav: 'N' (train) or 'TRAIN,VAL,TEST'."""
    if text is None:
        return {}
    parts = text.split(",")
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        raise UwavError(f"--videos-unav {text!r}; expected N or TRAIN,VAL,TEST integers") from None
    if len(counts) not in (1, 3):
        raise UwavError(f"--videos-unav {text!r}; expected N or TRAIN,VAL,TEST integers")
    return dict(zip(("unav_train", "unav_validation", "unav_test"), counts, strict=False))


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--dataset", type=click.Choice(["llp", "ave"]), default="llp", show_default=True,
              help="llp: OUT/llp + OUT/unav; ave: OUT/ave (AVE format, CLIP/CLAP/R(2+1)D) + OUT/unav.")
@click.option("--size", type=click.Choice(["tiny", "small", "medium", "llp", "ave"]), default="tiny",
              show_default=True,
              help="LLP: tiny 48/16/16 LLP + 64/16/16 UnAV videos; small 400/100/100 + 400/100/0; "
                   "medium 1000/200/200 + 1000/250/0; llp 10000/649/1200 + 6489/2134/0. "
                   "AVE: tiny 56/28/28 + 64/16/16; small 560/140/140 + 400/100/0; medium 1400/200/200 + "
                   "1000/250/0; ave 3339/402/402 + 6489/2134/0.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--layouts", default=None,
              help="LLP only: comma-separated subset of han,valor,uwav [default: all three; uwav only for "
                   "--size llp, whose HAN res152 files alone would be 6.5 GB].")
@click.option("--class-order", type=click.Choice(["dataset", "alphabetical"]), default="dataset",
              show_default=True, help="AVE only: row order of the written text embeddings.")
@click.option("--videos-train", type=click.IntRange(min=1), default=None, help="Override train videos.")
@click.option("--videos-val", type=click.IntRange(min=1), default=None, help="Override val videos.")
@click.option("--videos-test", type=click.IntRange(min=1), default=None, help="Override test videos.")
@click.option("--videos-unav", default=None, help="Override UnAV videos: N (train) or TRAIN,VAL,TEST.")
@click.option("--force", is_flag=True, help="Replace OUT even if it is not empty.")
@click.option("--world-version", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="2: calibrated to the real LLP (bench/calibrate_synthetic.py); 1: the first world, byte for byte.")
@user_errors
def synth(out, dataset, size, seed, layouts, class_order, videos_train, videos_val, videos_test, videos_unav,
          force, world_version) -> None:
    """Write a synthetic LLP (or AVE) + UnAV-100 dataset to OUT in the released layouts."""
    from uwav.io import check_output_dir

    check_output_dir(out, "dataset folder")
    overrides = {"train": videos_train, "val": videos_val, "test": videos_test}
    overrides.update(_parse_unav_counts(videos_unav))
    if dataset == "ave":
        from uwav.data.synthetic_ave import generate_ave

        if layouts is not None:
            raise UwavError("--layouts is an LLP option; AVE is written in the ave layout (CLIP, CLAP, R(2+1)D)")
        manifest = generate_ave(out, size=size, seed=seed, overrides=overrides, class_order=class_order,
                                force=force, world_version=int(world_version))
        ave, unav = manifest["ave"], manifest["unav"]
        click.echo(f"wrote {out}: AVE {ave['train']}/{ave['val']}/{ave['test']} clips in {out}/ave "
                   f"(class order {class_order}, {100 * manifest['background_fraction']:.1f}% background), "
                   f"UnAV {unav['train']}/{unav['validation']}/{unav['test']} in {out}/unav, seed {seed}, "
                   f"world version {world_version}")
        return
    from uwav.data.synthetic import generate

    chosen = None if layouts is None else tuple(x.strip() for x in layouts.split(",") if x.strip())
    manifest = generate(out, size=size, seed=seed, layouts=chosen, overrides=overrides, force=force,
                        progress=True, world_version=int(world_version))
    llp, unav = manifest["llp"], manifest["unav"]
    click.echo(f"wrote {out}: LLP {llp['train']}/{llp['val']}/{llp['test']} videos "
               f"(layouts {','.join(manifest['layouts'])}) in {out}/llp, "
               f"UnAV {unav['train']}/{unav['validation']}/{unav['test']} in {out}/unav, seed {seed}, "
               f"world version {world_version}")


@data.command("check")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--layout", type=click.Choice(["han", "valor", "uwav", "ave"]), default=None,
              help="Feature layout to check (required for llp and unav; AVE without it: annotations only).")
@click.option("--dataset", type=click.Choice(["llp", "unav", "ave"]), default="llp", show_default=True)
@click.option("--annotations", type=click.Path(), default=None,
              help="LLP: the CSV folder [default: ROOT/annotations]; UnAV: the JSON "
                   "[default: ROOT/unav100_annotations.json]; AVE: the folder with Annotations.txt "
                   "[default: ROOT/annotations if present, else ROOT].")
@user_errors
def check(root, layout, dataset, annotations) -> None:
    """Validate a dataset tree: annotations parse, one good feature file per video. Exit 2 on problems."""
    from uwav.data.check import check_tree

    report = check_tree(root, layout, dataset, annotations)
    for line in report.summary:
        click.echo(line)
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.ok:
        click.echo(f"error: {len(report.problems)} problem(s) in {root}", err=True)
        sys.exit(2)
    click.echo("ok: no problems")


# ---- sweep, sweep show, ui (uwav.sweep, uwav.mlflow_ui) -------------------------------------


class _DefaultCommandGroup(click.Group):
    """A group whose first argument may be a file instead of a command name: `uwav sweep FILE ...` means
    `uwav sweep run FILE ...`, while `uwav sweep show X` is the show command."""

    default = "run"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@main.group(cls=_DefaultCommandGroup)
def sweep() -> None:
    """Search a sweep file's space (`uwav sweep FILE`, i.e. `uwav sweep run FILE`) or look at a sweep
    (`uwav sweep show FILE_OR_FOLDER`). `uwav sweep run --help` lists the run options."""


@sweep.command("run")
@click.argument("sweep_file", type=str)
@click.option("--address", type=str, default=None,
              help="Ray cluster to run on (e.g. auto, or ray://head:10001); default: a private local Ray.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted sweep: finished trials are kept, unfinished and errored ones "
                   "continue from their last checkpoint, MLflow runs are reused. Without it an interrupted "
                   "sweep is continued too, and a finished one is reused (nothing runs).")
@click.option("--quiet", is_flag=True, help="One line per finished trial, no live table.")
@click.option("--verbose", is_flag=True, help="Also Ray's, Optuna's and MLflow's INFO lines.")
@user_errors
def sweep_run(sweep_file, address, resume, quiet, verbose) -> None:
    """Search the sweep file's space with Optuna (TPE) inside Ray Tune, early-stop with ASHA, track in MLflow.

    Selects on val only (the test split is never loaded). Writes best_config.yaml, the leaderboard, the
    Optuna study (optuna.db) and plots/ to <storage>/<name>/; finish with `uwav train --best SWEEP_FILE`.
    Run again, it reuses a finished sweep and continues an interrupted one.
    """
    from uwav.sweep.spec import check_sweep_outputs, load_sweep

    spec = load_sweep(sweep_file)
    check_sweep_outputs(spec)
    from uwav.sweep.results import format_outcome  # Ray comes with these: a refused file does not wait for it
    from uwav.sweep.tuner import run_sweep

    outcome = run_sweep(spec, address=address, resume=resume, verbose=2 if verbose else 1, quiet=quiet)
    click.echo(format_outcome(outcome, spec.metric))


@sweep.command("show")
@click.argument("source", type=str, metavar="FILE_OR_FOLDER")
@click.option("--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Leaderboard rows.")
@user_errors
def sweep_show(source, rows) -> None:
    """Trial counts, leaderboard, best configuration and the MLflow runs-page link of a finished or running
    sweep (its sweep file or its folder), read from its files: nothing runs."""
    from uwav.sweep.show import describe_sweep

    click.echo(describe_sweep(source, rows=rows))


@main.command("ui")
@click.argument("source", type=str, metavar="SWEEP_FILE_OR_FOLDER")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True,
              help="First port to try on 127.0.0.1 (the next free one is used).")
@user_errors
def ui_cmd(source, port) -> None:
    """Start `mlflow ui` on 127.0.0.1 for a sweep's tracking store and print the direct runs-page link
    (MLflow 3.x would open the experiment on its GenAI pages). Ctrl-C stops it."""
    import json
    import os
    import signal

    from uwav import mlflow_ui
    from uwav.sweep.results import META_FILE
    from uwav.sweep.show import experiment_folder

    exp_dir = experiment_folder(source)
    meta = json.loads((exp_dir / META_FILE).read_text())
    uri, exp_id = meta["tracking_uri"], str(meta.get("experiment_id", ""))
    if uri.startswith(("http://", "https://")):
        click.echo(f"the sweep tracks to the server {uri}; its runs page: {mlflow_ui.runs_url(uri, exp_id, view=True)}")
        return
    try:
        port = mlflow_ui.free_port(port)
    except OSError as err:
        raise UwavError(f"--port {port}: {err}") from None
    base = mlflow_ui.ui_base(uri, port)
    server = mlflow_ui.start_ui(uri, port, quiet=False)
    try:
        click.echo(f"starting mlflow ui for {uri} on {base} ...")
        if not mlflow_ui.wait_until_up(base, 120, server):
            raise UwavError(f"mlflow ui for {uri} did not come up on {base} (its output is above)")
        click.echo(f"runs page: {mlflow_ui.runs_url(base, exp_id, view=True)}")
        if meta.get("parent_run_id"):
            click.echo(f"sweep parent run: {mlflow_ui.run_url(base, exp_id, meta['parent_run_id'])}")
        click.echo("Ctrl-C stops the server")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
            server.wait(timeout=30)


# ---- raw video: extract / parse (uwav.extract, uwav.parse) -------------------------------------


def _extract_options(fn):
    """The model and decoding options shared by `uwav extract` and `uwav parse`."""
    opts = [
        click.option("--clip-model", default="ViT-L-14", show_default=True,
                     help="open_clip architecture."),
        click.option("--clip-pretrained", default=None,
                     help="CLIP weights: a local checkpoint file or an open_clip tag already in the cache."),
        click.option("--clip-config", default=None,
                     help="open_clip model-config JSON (custom architectures)."),
        click.option("--clap-checkpoint", default=None,
                     help="laion_clap checkpoint file (630k-fusion-best.pt)."),
        click.option("--clap-tokenizer", default="roberta-base", show_default=True,
                     help="Folder with RoBERTa's vocab.json + merges.txt, or a HuggingFace-cache name."),
        click.option("--random-weights", is_flag=True,
                     help="Allow missing weights (random models; smoke tests)."),
        click.option("--classes", default="llp", show_default=True,
                     help="Class vocabulary (llp, unav, ave)."),
        click.option("--segments", type=int, default=None,
                     help="Force T segments (default round(duration))."),
        click.option("--batch-size", type=int, default=64, show_default=True),
        click.option("--device", default="cpu", show_default=True),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _options(workers: int = 1, **kw):
    from uwav.extract.run import ExtractOptions

    return ExtractOptions(workers=workers, **kw)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True,
              help="Output folder (UWAV layout: feats_CLIP/, feats_CLAP/, manifest.json).")
@click.option("--workers", type=int, default=2, show_default=True, help="Decoding threads.")
@_extract_options
@user_errors
def extract(inputs, out, workers, **kw) -> None:
    """CLIP and CLAP features of videos (files, folders, .txt lists) in the UWAV layout; resumable."""
    from uwav.extract.run import extract as run
    from uwav.io import check_output_dir

    check_output_dir(out, "--out folder")
    manifest = run(inputs, out, _options(workers, **kw))
    click.echo(f"{len(manifest['videos'])} video(s) in {out} (manifest.json: models and checkpoint SHA-256)")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--parser", "parser_ckpt", required=True, help="Parser checkpoint trained on the uwav layout.")
@click.option("--generator", "generator_ckpt", default=None, help="Also show the generator's segment events.")
@click.option("--json", "json_out", default=None, help="Write the events as JSON.")
@click.option("--plot", "plot_out", default=None,
              help="Timeline PNG; with several videos, a folder that gets one <id>.png each.")
@_extract_options
@user_errors
def parse(inputs, parser_ckpt, generator_ckpt, json_out, plot_out, **kw) -> None:
    """Events of videos: class, modality (audio/visual/audio-visual), onset, offset, confidence."""
    from pathlib import Path

    from uwav.io import check_output_dir, check_output_file, write_json
    from uwav.parse import parse_videos, plot_timeline

    if json_out:
        check_output_file(json_out, "--json file")
    if plot_out:
        check_output_dir(Path(plot_out).parent, "folder of --plot")
    results = parse_videos(inputs, parser_ckpt, _options(1, **kw), generator=generator_ckpt)
    for parsed in results:
        click.echo(f"{parsed.video} ({parsed.bounds[-1]:.2f} s)")
        for e in parsed.events:
            click.echo(f"  {e['onset']:6.2f}-{e['offset']:6.2f} s  {e['class']:<24} {e['modality']:<13} "
                       f"{e['confidence']:.2f}  {e['source']}")
        if not parsed.events:
            click.echo("  no events")
    if json_out:
        data = [p.to_json() for p in results]
        write_json(json_out, data[0] if len(data) == 1 else data)
    if plot_out:
        given = kw.get("clip_pretrained") and kw.get("clap_checkpoint")
        note = "random weights" if kw.get("random_weights") and not given else ""
        for parsed in results:
            target = Path(plot_out)
            if len(results) > 1:
                target = target / f"{Path(parsed.video).stem}.png"
            plot_timeline(parsed, target, note=note)


# ---- cluster (uwav.cluster) ---------------------------------------------------------------------


@main.group()
def cluster() -> None:
    """Ray cluster files (cluster/gpu.yaml): check them before `ray up`."""


@cluster.command("validate")
@click.argument("cluster_file", type=str)
@user_errors
def cluster_validate(cluster_file) -> None:
    """Check CLUSTER_FILE offline: the installed Ray's schema (after Ray's own defaults are filled in) and the
    project's rules (the head runs no trials, storage reachable from every node, servers not public, token
    auth, the project pinned to the driver's version, no credentials)."""
    from uwav.cluster import validate_cluster

    click.echo(validate_cluster(cluster_file).describe())


# ---- config (uwav.config) ---------------------------------------------------------------------------


@main.command("config")
@click.argument("config_file", type=str, required=False)
@_SET
@user_errors
def config_cmd(config_file, sets) -> None:
    """Without CONFIG: every config key with its default and what it means (paper vs code values).

    With CONFIG: validate it and print the full resolved config as YAML (with any --set applied).
    """
    from uwav.config import describe, dump_yaml, load_config

    if config_file is None:
        if sets:
            raise UwavError("--set needs a CONFIG file to apply to")
        click.echo(describe())
        return
    click.echo(dump_yaml(load_config(config_file, _overrides(sets))), nl=False)
