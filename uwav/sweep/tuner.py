"""Run a sweep (Ray Tune + OptunaSearch + ASHA) or continue it: Ray start-up, the Tuner, `run_sweep`.

`run_sweep` loads train + val once on the driver (never test), shares them with every trial through the
object store, runs the Tuner with the MLflow callback (uwav.sweep.tracker), and writes into the
experiment folder (<storage>/<name>/): sweep.json (settings, MLflow location), best_config.yaml and the
leaderboard (uwav.sweep.results), the Optuna study optuna.db (uwav.sweep.study) and plots/
(uwav.sweep.plots). The console is uwav.sweep.console (Tune's own reporter is off).
`uwav train --best` is uwav.sweep.finish.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from uwav import mlflow_ui, tracking
from uwav._env import quiet_library_defaults
from uwav.config import Config, dump_yaml, flat_dict, with_overrides
from uwav.data.dataset import load_parser_data
from uwav.errors import UwavError
from uwav.fit import training_precision
from uwav.io import read_yaml, write_json, write_text
from uwav.provenance import flat_tags, run_provenance
from uwav.sweep import console, plots, study
from uwav.sweep.records import trial_records
from uwav.sweep.reevaluate import reevaluate, rerank
from uwav.sweep.repair import repair_lost_checkpoints
from uwav.sweep.results import (
    BEST_FILE,
    META_FILE,
    SweepOutcome,
    finished_outcome,
    is_finished,
    leaderboard,
    write_leaderboard,
)
from uwav.sweep.spec import SweepSpec, spec_summary
from uwav.sweep.tracker import SweepTracker
from uwav.sweep.trainable import sweep_trial

PLOTS_DIR = "plots"

# ---- Ray -----------------------------------------------------------------------------------------


def ray_environment(local: bool) -> None:
    """Quiet defaults, and token auth that works with several Ray instances on one machine.

    Ray 2.60 turns token auth on for every new local instance and, when no token exists, writes a fresh
    one to ~/.ray/auth_token; instances started at the same moment (parallel tests, two sweeps on one
    workstation) race on that file and a raylet can end up with another instance's token. A local sweep
    therefore brings its own random token in RAY_AUTH_TOKEN, which Ray prefers over the file and which
    its raylet and workers inherit; Ray itself then switches the mode to token. RAY_AUTH_MODE is left
    alone on purpose: Ray caches it at import, and changing it afterwards makes the driver and the GCS
    disagree. Users' own RAY_AUTH_* settings always win; with --address they must match the cluster's.
    """
    quiet_library_defaults()
    # Tune snapshots its state after every checkpoint when num_to_keep is set; that is what makes
    # --resume exact, so its "snapshotting may become a bottleneck" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Snapshot the (small) experiment state every 2 s instead of Tune's >= 10 s, so a killed driver
    # loses at most that much bookkeeping (a trial completed just before the kill is not resumed).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Tune's newer output engine prints its start box and a TensorBoard hint whatever `verbose` says; the
    # older one prints nothing at verbose=0, and uwav.sweep.console prints the table instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    auth = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    if local and not any(os.environ.get(k) for k in auth):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        if "ray" not in sys.modules:  # safe only before the import; also silences Ray's notice
            os.environ["RAY_AUTH_MODE"] = "token"


def start_ray(address: str | None, num_cpus: int | None = None, data_bytes: int = 0, verbose: bool = False) -> bool:
    """Connect to `address` or start a private local instance; True when this call started Ray.
    Ray's INFO lines ("Started a local Ray instance", ...) only when `verbose`."""
    import logging

    ray_environment(local=address is None)
    import ray

    if ray.is_initialized():
        return False
    level = logging.INFO if verbose else logging.WARNING
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=level)
    else:
        # The store holds the shared data once plus small checkpoints in flight.
        store = max(256 << 20, 2 * data_bytes + (128 << 20))
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=store, log_to_driver=False, logging_level=level)
    return True


def _first_provenance(meta_file: Path, provenance: dict) -> dict | None:
    """The record a resumed sweep started with (kept: its trials ran under it), or None for a new sweep.

    Says so when the code is not the commit the sweep started with, since later trials may then differ.
    """
    if not meta_file.is_file():
        return None
    before = json.loads(meta_file.read_text()).get("provenance")
    if not before:
        return None
    old, new = before.get("code") or {}, provenance["code"]
    if (old.get("git_commit"), old.get("version")) != (new.get("git_commit"), new.get("version")):
        was, now = old.get("git_commit") or old.get("version"), new.get("git_commit") or new.get("version")
        print(f"uwav sweep --resume: warning: the sweep started with code {was}, this run is {now} (the sweep "
              f"keeps its first provenance)", file=sys.stderr)
    return before


@dataclass(frozen=True)
class TargetEpochs:
    """The epochs a full trial with these searched values trains (its train.epochs, at most ASHA's max_t).
    Plain data: the console callback holding it is pickled into Tune's experiment state."""

    base: Config
    max_t: int | None

    def __call__(self, params: dict) -> int:
        epochs = with_overrides(self.base, dict(params), "<sweep trial>").train.epochs
        return min(epochs, self.max_t) if self.max_t else epochs


def target_epochs(spec: SweepSpec) -> TargetEpochs:
    return TargetEpochs(spec.base, spec.asha.max_t if spec.asha.enabled else None)


def sweep_console(spec: SweepSpec) -> console.SweepConsole:
    space = [(p.key, p.type == "loguniform" or p.log) for p in spec.space]
    target = target_epochs(spec)
    return console.SweepConsole(space, target(dict()), spec.num_samples, epochs_of=target)


def constant_params(spec: SweepSpec) -> dict:
    """The base config's values that no trial changes: logged once, on the parent run."""
    return {k: v for k, v in flat_dict(spec.base).items() if k not in spec.keys}


def _tuner_parts(spec: SweepSpec, data, trainable):
    from ray import tune

    fn = tune.with_parameters(trainable or sweep_trial, data=data, base=spec.base,
                              metric=spec.metric, threads=max(1, int(spec.cpu)))
    return tune.with_resources(fn, {"cpu": spec.cpu, "gpu": spec.gpu})


def _new_tuner(spec: SweepSpec, trainable, callbacks: list):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    s = spec.search
    sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                         multivariate=s.multivariate, group=s.group,
                                         constant_liar=s.constant_liar)
    searcher = OptunaSearch(metric="best_objective", mode="max",
                            points_to_evaluate=[dict(p) for p in spec.points_to_evaluate] or None,
                            sampler=sampler)
    searcher = ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent)
    a = spec.asha
    scheduler = (ASHAScheduler(time_attr=a.time_attr, max_t=a.max_t, grace_period=a.grace_period,
                               reduction_factor=a.reduction_factor) if a.enabled else FIFOScheduler())
    run_config = tune.RunConfig(
        name=spec.name, storage_path=str(spec.storage_path), callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Two kept: a driver killed between Ray deleting the oldest and saving its state leaves a state
        # naming a deleted checkpoint (uwav/sweep/repair.py puts it back on --resume from a newer one).
        # verbose=0: Tune's own table and per-result boxes off; uwav.sweep.console prints instead.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=0)
    # reuse_actors: a finished trial's worker process runs the next trial, so Python, torch and the
    # mapped data are set up once per worker rather than once per trial.
    tune_config = tune.TuneConfig(metric="best_objective", mode="max", search_alg=searcher,
                                  scheduler=scheduler, num_samples=spec.num_samples, reuse_actors=True)
    return tune.Tuner(trainable, param_space=spec.tune_space(), tune_config=tune_config, run_config=run_config)


def run_sweep(spec: SweepSpec, address: str | None = None, resume: bool = False, data=None,
              trainable=None, verbose: int = 1, num_cpus: int | None = None, quiet: bool = False,
              stream=None) -> SweepOutcome:
    """Run (or with `resume`, continue) the sweep; `data` and `trainable` are for tests and benchmarks.

    A folder that already holds this sweep is reused when the sweep finished there (nothing runs; the
    outcome says `reused`) and continued when it was interrupted, so `uwav sweep FILE` is idempotent.
    Console (uwav.sweep.console, to `stream`, default stdout): verbose 0 nothing, 1 the compact table
    (`quiet`: one line per finished trial), 2 also the libraries' INFO lines.
    """
    ray_environment(local=address is None)  # before Ray is imported: it reads its settings at import
    from ray import tune

    exp_dir = spec.experiment_dir
    restorable = exp_dir.is_dir() and tune.Tuner.can_restore(str(exp_dir))
    if resume and not restorable:
        raise UwavError(f"{spec.path}: nothing to resume in {exp_dir} (no Tune experiment state there)")
    saved = exp_dir / "sweep.yaml"
    if restorable and saved.is_file() and read_yaml(saved) != read_yaml(spec.path):
        raise UwavError(f"{spec.path}: differs from the file this sweep started with ({saved}); the folder "
                        f"continues the original search, so restore that file or start a sweep with a new name")
    if restorable and not resume:
        done = finished_outcome(spec)
        if done is not None:
            return done
        resume = True  # interrupted before: continue it (what --resume does)
        if verbose:
            print(f"uwav sweep: {exp_dir} holds this sweep, interrupted; continuing it", file=stream or sys.stdout)
    console.configure("off" if verbose == 0 else "quiet" if quiet else None, stream)
    console.library_logging(verbose >= 2)
    if address is None:
        # Trials run on this machine: a bf16 they would refuse is refused now, before the data load. On a
        # cluster the workers' hardware is not this machine's; each trial checks before its first batch.
        training_precision(spec.base, where=f"{spec.base_path}: train.precision")
    if data is None:
        data = load_parser_data(spec.base, include_test=False)
    if "test" in data.splits:
        raise UwavError("run_sweep was given data with the test split; sweeps load train and val only")

    started = start_ray(address, num_cpus=num_cpus, data_bytes=data.nbytes(), verbose=verbose >= 2)
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_text(exp_dir / "sweep.yaml", spec.path.read_text())
    write_text(exp_dir / "base_config.yaml", dump_yaml(spec.base))
    exp_id, parent = tracking.start_sweep(
        spec.tracking_uri, spec.experiment, exp_dir, spec.name, {**spec_summary(spec), **constant_params(spec)},
        quality_file=Path(spec.base.logits_file).parent / "quality.json",
        files=(exp_dir / "sweep.yaml", exp_dir / "base_config.yaml"))
    mlflow_ui.prepare_experiment(tracking.client(spec.tracking_uri), exp_id, mlflow_ui.sweep_view(
        list(spec.keys) + ["epochs_trained", "stopped_early"],
        ["best_objective", f"val_{spec.metric}", "loss_total"], "best_objective",
        f"tags.`{tracking.PARENT_TAG}` = '{parent}' and tags.`uwav.kind` = 'trial'"))
    # Where the sweep's numbers come from; the trials' devices are the workers' (resources below).
    provenance = run_provenance(spec.base, "cuda" if spec.gpu > 0 else "cpu", data.meta)
    provenance["resources"] = {"cpu": spec.cpu, "gpu": spec.gpu}
    first = _first_provenance(exp_dir / META_FILE, provenance) if resume else None
    if first is None:
        tracking.log_provenance(spec.tracking_uri, parent, flat_tags(provenance), provenance)
    else:
        provenance = first
    write_json(exp_dir / META_FILE, {"name": spec.name, "sweep_file": str(spec.path), "metric": spec.metric,
                                     "tracking_uri": spec.tracking_uri, "experiment": spec.experiment,
                                     "experiment_id": exp_id, "parent_run_id": parent,
                                     "points_to_evaluate": [dict(p) for p in spec.points_to_evaluate],
                                     "finish": dataclasses.asdict(spec.finish), "provenance": provenance})
    fn = _tuner_parts(spec, data, trainable)
    try:
        if resume:
            for line in repair_lost_checkpoints(exp_dir):
                print(f"uwav sweep --resume: {line}", file=sys.stderr)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=fn, resume_unfinished=True, resume_errored=True)
        else:
            digits = console.name_digits(spec.num_samples)
            callbacks = [SweepTracker(spec.tracking_uri, exp_id, parent, spec.base, spec.keys, provenance, digits),
                         sweep_console(spec)]
            tuner = _new_tuner(spec, fn, callbacks)
        grid = tuner.fit()
        board = leaderboard(spec, grid)
        pictures = write_study_and_plots(spec, grid._experiment_analysis.trials)
        finished = is_finished(board, spec.num_samples)
        done = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
        if not done:
            raise UwavError(f"{spec.path}: no trial finished an epoch; see the trial errors in {exp_dir}")
        if finished and spec.finish.top_k:
            # The winner on several fresh seeds (val only): after the whole search, never on a partial one.
            summary = reevaluate(spec, board, data, exp_dir, echo=lambda line: print(line, file=sys.stderr))
            board = rerank(board, summary)
            done = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
        best = done[0]
        best_file = exp_dir / BEST_FILE
        write_text(best_file, dump_yaml(spec.trial_config(best["params"])))
        files = write_leaderboard(exp_dir, board)
        tracking.drop_lost_trials(spec.tracking_uri, parent, {r["trial_id"] for r in board})
        tracking.mark_best(spec.tracking_uri, parent, best["trial_id"])
        status = "FINISHED" if finished else "KILLED"
        tracking.finish_sweep(spec.tracking_uri, parent, status,
                              metrics={"best_objective": best["best_objective"], "trials": len(board),
                                       "stopped_early": sum(r["stopped_early"] for r in board)},
                              tags={"best_trial_id": best["trial_id"]}, files=(best_file, *files), plots=pictures)
        return SweepOutcome(experiment_dir=exp_dir, best_trial_id=best["trial_id"],
                            best_objective=best["best_objective"], best_params=best["params"],
                            best_config_file=best_file, leaderboard=board, tracking_uri=spec.tracking_uri,
                            parent_run_id=parent, finished=finished, experiment_id=str(exp_id))
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        tracking.finish_sweep(spec.tracking_uri, parent, status)
        raise
    finally:
        if started:
            import ray

            ray.shutdown()


def write_study_and_plots(spec: SweepSpec, trials) -> tuple[Path, ...]:
    """The Optuna study (<experiment>/optuna.db) and the plots (<experiment>/plots/) from Tune's records."""
    records = trial_records(trials, spec.keys, target_epochs(spec), console.name_digits(spec.num_samples))
    exp_dir = spec.experiment_dir
    study.write_study(exp_dir / study.STUDY_FILE, spec.name, spec.space, records,
                      attrs={"metric": f"val_{spec.metric}", "sweep_file": str(spec.path)})
    loaded = study.load_study(exp_dir / study.STUDY_FILE, spec.name)
    return plots.write_plots(exp_dir / PLOTS_DIR, records, spec.space, loaded, f"val {spec.metric}")
