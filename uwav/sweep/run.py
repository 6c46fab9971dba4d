"""Run a sweep (Ray Tune + OptunaSearch + ASHA), continue it, and finish its best configurations.

`run_sweep` loads train + val once on the driver (never test), shares them with every trial through the
object store, runs the Tuner with the MLflow callback, and writes into the experiment folder
(<storage>/<name>/): sweep.json (settings, MLflow location), best_config.yaml, leaderboard.{json,csv,md}.
`finish_best` retrains the top configurations with several seeds, evaluates each once on test and
reports mean ± std.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uwav.errors import UwavError
from uwav.sweep.repair import repair_lost_checkpoints
from uwav.sweep.spec import SweepSpec, base_config_dict, load_sweep, spec_summary

META_FILE = "sweep.json"
BEST_FILE = "best_config.yaml"
LEADERBOARD = "leaderboard"


@dataclass
class SweepOutcome:
    experiment_dir: Path
    best_trial_id: str
    best_objective: float
    best_params: dict[str, Any]
    best_config_file: Path
    leaderboard: list[dict]
    tracking_uri: str
    parent_run_id: str
    finished: bool  # False when the sweep was interrupted (continue with --resume)


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
    from uwav._env import quiet_library_defaults

    quiet_library_defaults()
    # Tune snapshots its state after every checkpoint when num_to_keep is set; that is what makes
    # --resume exact, so its "snapshotting may become a bottleneck" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Snapshot the (small) experiment state every 2 s instead of Tune's >= 10 s, so a killed driver
    # loses at most that much bookkeeping (a trial completed just before the kill is not resumed).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    auth = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    if local and not any(os.environ.get(k) for k in auth):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        if "ray" not in sys.modules:  # safe only before the import; also silences Ray's notice
            os.environ["RAY_AUTH_MODE"] = "token"


def start_ray(address: str | None, num_cpus: int | None = None, data_bytes: int = 0) -> bool:
    """Connect to `address` or start a private local instance; True when this call started Ray."""
    ray_environment(local=address is None)
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # The store holds the shared data once plus small checkpoints in flight.
        store = max(256 << 20, 2 * data_bytes + (128 << 20))
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=store, log_to_driver=False)
    return True


def _tuner_parts(spec: SweepSpec, data, trainable):
    from ray import tune

    from uwav.sweep.trainable import sweep_trial

    fn = tune.with_parameters(trainable or sweep_trial, data=data, base=base_config_dict(spec),
                              metric=spec.metric, threads=max(1, int(spec.cpu)))
    return tune.with_resources(fn, {"cpu": spec.cpu, "gpu": spec.gpu})


def _new_tuner(spec: SweepSpec, trainable, callback, verbose: int):
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
        name=spec.name, storage_path=str(spec.storage_path), callbacks=[callback],
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Two kept: a driver killed between Ray deleting the oldest and saving its state leaves a state
        # naming a deleted checkpoint (uwav/sweep/repair.py puts it back on --resume from a newer one).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=verbose)
    # reuse_actors: a finished trial's worker process runs the next trial, so Python, torch and the
    # mapped data are set up once per worker rather than once per trial.
    tune_config = tune.TuneConfig(metric="best_objective", mode="max", search_alg=searcher,
                                  scheduler=scheduler, num_samples=spec.num_samples, reuse_actors=True)
    return tune.Tuner(trainable, param_space=spec.tune_space(), tune_config=tune_config, run_config=run_config)


def run_sweep(spec: SweepSpec, address: str | None = None, resume: bool = False, data=None,
              trainable=None, verbose: int = 1, num_cpus: int | None = None) -> SweepOutcome:
    """Run (or with `resume`, continue) the sweep; `data` and `trainable` are for tests and benchmarks."""
    ray_environment(local=address is None)  # before Ray is imported: it reads its settings at import
    from ray import tune

    from uwav import tracking
    from uwav.io import write_json, write_text

    exp_dir = spec.experiment_dir
    restorable = exp_dir.is_dir() and tune.Tuner.can_restore(str(exp_dir))
    if resume and not restorable:
        raise UwavError(f"{spec.path}: nothing to resume in {exp_dir} (no Tune experiment state there)")
    if not resume and restorable:
        raise UwavError(f"{spec.path}: {exp_dir} already holds this sweep; continue it with --resume or "
                        f"change name in the sweep file")
    saved = exp_dir / "sweep.yaml"
    if resume and saved.is_file() and yaml.safe_load(saved.read_text()) != yaml.safe_load(spec.path.read_text()):
        raise UwavError(f"{spec.path}: differs from the file this sweep started with ({saved}); --resume "
                        f"continues the original search, so restore that file or start a sweep with a new name")
    if data is None:
        from uwav.data.dataset import load_parser_data

        data = load_parser_data(spec.base, include_test=False)
    if "test" in data.splits:
        raise UwavError("run_sweep was given data with the test split; sweeps load train and val only")

    started = start_ray(address, num_cpus=num_cpus, data_bytes=data.nbytes())
    exp_dir.mkdir(parents=True, exist_ok=True)
    write_text(exp_dir / "sweep.yaml", spec.path.read_text())
    write_text(exp_dir / "base_config.yaml", _dump(spec.base))
    exp_id, parent = tracking.start_sweep(
        spec.tracking_uri, spec.experiment, exp_dir, spec.name, spec_summary(spec),
        quality_file=Path(spec.base.logits_file).parent / "quality.json",
        files=(exp_dir / "sweep.yaml", exp_dir / "base_config.yaml"))
    write_json(exp_dir / META_FILE, {"name": spec.name, "sweep_file": str(spec.path), "metric": spec.metric,
                                     "tracking_uri": spec.tracking_uri, "experiment": spec.experiment,
                                     "experiment_id": exp_id, "parent_run_id": parent})
    fn = _tuner_parts(spec, data, trainable)
    try:
        if resume:
            for line in repair_lost_checkpoints(exp_dir):
                print(f"uwav sweep --resume: {line}", file=sys.stderr)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=fn, resume_unfinished=True, resume_errored=True)
        else:
            callback = tracking.SweepTracker(spec.tracking_uri, exp_id, parent, base_config_dict(spec), spec.keys)
            tuner = _new_tuner(spec, fn, callback, verbose)
        grid = tuner.fit()
        board = leaderboard(spec, grid)
        finished = len(board) >= spec.num_samples and all(r["status"] != "unfinished" for r in board)
        done = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
        if not done:
            raise UwavError(f"{spec.path}: no trial finished an epoch; see the trial errors in {exp_dir}")
        best = done[0]
        best_file = exp_dir / BEST_FILE
        write_text(best_file, _dump(spec.trial_config(best["params"])))
        files = write_leaderboard(exp_dir, board)
        tracking.drop_lost_trials(spec.tracking_uri, parent, {r["trial_id"] for r in board})
        status = "FINISHED" if finished else "KILLED"
        tracking.finish_sweep(spec.tracking_uri, parent, status,
                              metrics={"best_objective": best["best_objective"], "trials": len(board),
                                       "stopped_early": sum(r["stopped_early"] for r in board)},
                              tags={"best_trial_id": best["trial_id"]}, files=(best_file, *files))
        return SweepOutcome(experiment_dir=exp_dir, best_trial_id=best["trial_id"],
                            best_objective=best["best_objective"], best_params=best["params"],
                            best_config_file=best_file, leaderboard=board, tracking_uri=spec.tracking_uri,
                            parent_run_id=parent, finished=finished)
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        tracking.finish_sweep(spec.tracking_uri, parent, status)
        raise
    finally:
        if started:
            import ray

            ray.shutdown()


def _dump(config) -> str:
    from uwav.config import dump_yaml

    return dump_yaml(config)


# ---- results --------------------------------------------------------------------------------------


def leaderboard(spec: SweepSpec, grid) -> list[dict]:
    """One row per trial, best first: trial id, searched values, best objective, epochs, status.

    status: complete (trained max_t epochs), stopped (ASHA stopped it early), error, or unfinished
    (the sweep was interrupted under it).
    """
    # Trial objects carry Tune's status, which the Result wrappers drop.
    trials = grid._experiment_analysis.trials
    rows = []
    for trial in trials:
        m = trial.last_result or {}
        params = {k: trial.config[k] for k in spec.keys if k in trial.config}
        target = min(spec.trial_config(params).train.epochs, spec.asha.max_t if spec.asha.enabled else 10**9)
        reached = int(m.get("epoch", 0))
        if trial.status == "ERROR":
            status = "error"
        elif trial.status != "TERMINATED":
            status = "unfinished"
        else:
            status = "complete" if reached >= target else "stopped"
        rows.append({
            "trial_id": trial.trial_id,
            "params": params,
            "best_objective": m.get("best_objective"),
            "best_epoch": m.get("best_epoch"),
            "epochs": reached,
            "status": status,
            "stopped_early": status == "stopped",
            "last_val": {k.removeprefix("val_"): v for k, v in m.items() if k.startswith("val_")},
        })
    rows.sort(key=lambda r: (r["best_objective"] is None, -(r["best_objective"] or 0.0)))
    return rows


def write_leaderboard(exp_dir: Path, board: list[dict]) -> tuple[Path, ...]:
    from uwav.io import write_json, write_text

    keys = sorted({k for r in board for k in r["params"]})
    head = ["rank", "trial_id", "best_objective", "best_epoch", "epochs", "status", *keys]
    lines = []
    for i, r in enumerate(board, 1):
        obj = r["best_objective"]
        lines.append([i, r["trial_id"], "" if obj is None else f"{obj:.2f}", r["best_epoch"], r["epochs"],
                      r["status"], *[_fmt(r["params"].get(k)) for k in keys]])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([head, *lines])
    md = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(map(str, line)) + " |" for line in lines]
    paths = (exp_dir / f"{LEADERBOARD}.json", exp_dir / f"{LEADERBOARD}.csv", exp_dir / f"{LEADERBOARD}.md")
    write_json(paths[0], board)
    write_text(paths[1], buf.getvalue())
    write_text(paths[2], "\n".join(md) + "\n")
    return paths


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def format_outcome(outcome: SweepOutcome, metric: str = "seg_type") -> str:
    lines = [f"best trial {outcome.best_trial_id}: val {metric} {outcome.best_objective:.2f} (best-so-far)"]
    lines += [f"  {k} = {_fmt(v)}" for k, v in outcome.best_params.items()]
    lines.append(f"best config: {outcome.best_config_file}")
    stopped = sum(r["stopped_early"] for r in outcome.leaderboard)
    lines.append(f"trials: {len(outcome.leaderboard)} ({stopped} stopped early by ASHA); leaderboard: "
                 f"{outcome.experiment_dir / (LEADERBOARD + '.md')}")
    lines.append(f"MLflow: {outcome.tracking_uri} (parent run {outcome.parent_run_id}); browse with "
                 f"`mlflow ui --backend-store-uri {outcome.tracking_uri}`")
    if not outcome.finished:
        lines.append("the sweep was interrupted: continue it with `uwav sweep FILE --resume`")
    return "\n".join(lines)


# ---- finishing: the best configurations with several seeds, once on test ----------------------------


def sweep_dir_of(source: str | Path) -> tuple[Path, dict]:
    """Experiment folder and its sweep.json from a sweep file or the folder itself."""
    source = Path(source)
    if source.is_file():
        exp_dir = load_sweep(source).experiment_dir
    elif source.is_dir():
        exp_dir = source
    else:
        raise UwavError(f"{source}: neither a sweep file nor a sweep folder")
    meta_file = exp_dir / META_FILE
    board_file = exp_dir / f"{LEADERBOARD}.json"
    if not meta_file.is_file() or not board_file.is_file():
        raise UwavError(f"{exp_dir}: no finished sweep results ({META_FILE}, {board_file.name}); run "
                        f"`uwav sweep` first")
    return exp_dir, json.loads(meta_file.read_text())


def top_configs(exp_dir: Path, top_k: int) -> list[tuple[dict, Any]]:
    """(leaderboard row, full Config) of the `top_k` best trials that trained at least one epoch."""
    from uwav.config import load_config, with_overrides

    board = json.loads((exp_dir / f"{LEADERBOARD}.json").read_text())
    rows = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
    if len(rows) < top_k:
        raise UwavError(f"{exp_dir}: --top-k {top_k} asked but the sweep has {len(rows)} usable trials")
    base = load_config(exp_dir / "base_config.yaml")
    return [(r, with_overrides(base, r["params"], str(exp_dir / f"{LEADERBOARD}.json"))) for r in rows[:top_k]]


def mean_std(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std"}}; std is the sample standard deviation (0 for one seed)."""
    import numpy as np

    out = {}
    for k in per_seed[0]:
        v = np.array([s[k] for s in per_seed], dtype=np.float64)
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def format_mean_std(stats: dict[str, dict[str, float]], title: str) -> str:
    cols = (("a", "Audio"), ("v", "Visual"), ("av", "AV"), ("type", "Type@AV"), ("event", "Event@AV"))
    lines = [title]
    if "accuracy" in stats:  # AVE: segment accuracy first, the F-scores below
        lines.append(f"{'Accuracy':<8}{stats['accuracy']['mean']:>7.2f} ± {stats['accuracy']['std']:.2f}")
    lines.append(f"{'':<8}" + "".join(f"{h:>15}" for _, h in cols))
    for prefix, name in (("seg", "Segment"), ("ev", "Event")):
        cells = [f"{stats[f'{prefix}_{k}']['mean']:.2f} ± {stats[f'{prefix}_{k}']['std']:.2f}" for k, _ in cols]
        lines.append(f"{name:<8}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def finish_best(source: str | Path, seeds: int = 5, top_k: int = 1, data=None, progress: bool = True,
                echo=print) -> dict:
    """Retrain the top-k sweep configurations with `seeds` seeds each (seed = config seed + i) through
    `experiment.run_training`, evaluate each once on test, and report mean ± std of the ten numbers.

    Writes <sweep>/best/rank<k>/seed<s>/ (the runs), <sweep>/best/results.{json,md} and one MLflow run
    per configuration. `data` (with the test split) is for tests.
    """
    from uwav import tracking
    from uwav.config import flat_dict, with_overrides
    from uwav.experiment import run_training
    from uwav.io import write_json, write_text

    if seeds < 1 or top_k < 1:
        raise UwavError(f"--seeds ({seeds}) and --top-k ({top_k}) must be at least 1")
    exp_dir, meta = sweep_dir_of(source)
    out_dir = exp_dir / "best"
    results, texts, loaded = [], [], {}
    for rank, (row, config) in enumerate(top_configs(exp_dir, top_k), 1):
        if data is None:
            key = (config.paths.annotations, config.paths.features, config.paths.layout, config.paths.out)
            if key not in loaded:
                from uwav.data.dataset import load_parser_data

                loaded[key] = load_parser_data(config, include_test=True)
            rank_data = loaded[key]
        else:
            rank_data = data
        per_seed_val, per_seed_test, seed_list = [], [], []
        for i in range(seeds):
            cfg = with_overrides(config, {"seed": config.seed + i}, "--best")
            echo(f"rank {rank} (trial {row['trial_id']}), seed {cfg.seed} ({i + 1}/{seeds})")
            summary = run_training(cfg, rank_data, out_dir / f"rank{rank}" / f"seed{cfg.seed}",
                                   evaluate_test=True, progress=progress)
            per_seed_val.append(summary["val"])
            per_seed_test.append(summary["test"])
            seed_list.append(cfg.seed)
        test_stats, val_stats = mean_std(per_seed_test), mean_std(per_seed_val)
        title = f"rank {rank} (trial {row['trial_id']}), test, mean ± std over {seeds} seeds {seed_list}"
        text = format_mean_std(test_stats, title)
        texts.append(text + "\n" + format_mean_std(val_stats, "val (best epoch of each seed), mean ± std"))
        result = {"rank": rank, "trial_id": row["trial_id"], "params": row["params"], "seeds": seed_list,
                  "test": test_stats, "val": val_stats, "test_per_seed": per_seed_test,
                  "val_per_seed": per_seed_val, "config": flat_dict(config)}
        results.append(result)
        rank_json = out_dir / f"rank{rank}" / "results.json"
        write_json(rank_json, result)
        summary_metrics = {f"test_{k}_{s}": v[s] for k, v in test_stats.items() for s in ("mean", "std")}
        summary_metrics.update({f"val_{k}_{s}": v[s] for k, v in val_stats.items() for s in ("mean", "std")})
        result["mlflow_run_id"] = tracking.log_final(
            meta["tracking_uri"], meta["experiment"], f"{meta['name']}-best-rank{rank}",
            {**flat_dict(config), "seeds": seeds, "rank": rank},
            [{f"test_{k}": v for k, v in s.items()} for s in per_seed_test], summary_metrics,
            files=(rank_json,), tags={"uwav.sweep_parent": meta.get("parent_run_id", ""),
                                      "uwav.trial_id": row["trial_id"]})
    report = {"sweep": str(exp_dir), "seeds": seeds, "top_k": top_k, "results": results,
              "tracking_uri": meta["tracking_uri"]}
    write_json(out_dir / "results.json", report)
    write_text(out_dir / "results.md", "\n\n".join(f"```\n{t}\n```" for t in texts) + "\n")
    report["text"] = "\n\n".join(texts)
    report["files"] = [str(out_dir / "results.json"), str(out_dir / "results.md")]
    return report
