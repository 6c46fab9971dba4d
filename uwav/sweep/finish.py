"""`uwav train --best`: the sweep's best configuration(s) and a reference, trained with the same fresh
seeds, each run tested once, compared seed by seed.

- Seeds: the next integers after every seed the sweep used, trial and re-evaluation seeds included
  (uwav.sweep.seeds), so no final number comes from the seed a trial won with.
- Reference (`--reference`, else the sweep file's `finish.reference`; `resolve_reference`): paper (the
  base config with the sweep's first points_to_evaluate entry), default (the base config as is), a
  config FILE, or none; trained with the same seeds, so each seed gives one paired difference
  winner - reference (uwav.stats).
- Each run is `uwav.train.run_training` (the same `fit`, metrics.json with provenance), evaluated once
  on test. The report (uwav.sweep.comparison) has every configuration's mean ± std of the ten numbers
  (AVE: accuracy too) on val and test and the paired statistics against the reference.

Writes <sweep>/best/<rank1|...|reference>/seed<s>/ (the runs), <sweep>/best/results.{json,md}, and
the MLflow runs of `tracking.log_final_report` (issue 13: a summary run under the sweep's parent, one
child per configuration and seed), every one tagged with the provenance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uwav import tracking
from uwav.config import Config, flat_dict, load_config, with_overrides
from uwav.data.dataset import load_parser_data
from uwav.errors import UwavError
from uwav.fit import objective_name, training_precision
from uwav.io import check_output_dir, write_json, write_text
from uwav.provenance import (
    audio_gt_warning,
    compact,
    config_sha256,
    data_provenance,
    describe_audio_gt,
    environment_provenance,
)
from uwav.runtime import resolve_device
from uwav.sweep import seeds as seed_rules
from uwav.sweep.comparison import Configuration, build_report, format_console, format_markdown
from uwav.sweep.reevaluate import read_summary
from uwav.sweep.results import LEADERBOARD, sweep_dir_of, top_configs
from uwav.sweep.spec import REFERENCES, load_sweep
from uwav.train import run_training

# The paths that decide which data a run reads; a reference reading other data is not a paired comparison.
DATA_PATHS = ("annotations", "features", "layout", "generator_features", "eval_audio", "eval_visual", "out")


def _points(exp_dir: Path, meta: dict) -> list[dict]:
    """The sweep's points_to_evaluate: from sweep.json, or (older sweeps) from the sweep file it names."""
    if "points_to_evaluate" in meta:
        return meta["points_to_evaluate"]
    source = Path(meta.get("sweep_file", ""))
    return [dict(p) for p in load_sweep(source).points_to_evaluate] if source.is_file() else []


def resolve_reference(choice: str | None, base: Config, exp_dir: Path, meta: dict
                      ) -> tuple[Config | None, dict[str, Any]]:
    """(config or None, description for the report) of the reference `choice` (None: the sweep's default)."""
    points = _points(exp_dir, meta)
    if choice is None:
        choice = (meta.get("finish") or {}).get("reference") or ("paper" if points else "default")
    if choice == "none":
        return None, {"choice": "none"}
    if choice == "paper":
        if not points:
            raise UwavError(f"{exp_dir}: --reference paper is the sweep's first points_to_evaluate entry, but the "
                            f"sweep has none; use --reference default, FILE or none")
        return with_overrides(base, points[0], "--reference paper"), {
            "choice": "paper", "source": "points_to_evaluate[0] of the sweep, applied to its base config",
            "params": points[0], "nickname": "the paper's settings"}
    if choice == "default":
        return base, {"choice": "default", "source": "the sweep's base config (with its overrides) as is",
                      "params": {}, "nickname": "the code's defaults"}
    path = Path(choice)
    if not path.is_file():
        raise UwavError(f"--reference {choice}: neither {', '.join(REFERENCES)} nor a config file")
    return load_config(path), {"choice": "file", "source": str(path.resolve()), "params": {},
                               "nickname": path.name}


def _data_warnings(base: Config, reference: Config) -> list[str]:
    out = []
    for key in DATA_PATHS:
        mine, theirs = getattr(base.paths, key), getattr(reference.paths, key)
        if key == "out":
            if base.logits_file != reference.logits_file:
                out.append(f"warning: the reference reads the logits {reference.logits_file}, the sweep "
                           f"{base.logits_file} (other pseudo labels: not only the settings differ)")
        elif mine != theirs:
            out.append(f"warning: the reference has paths.{key} = {theirs!r}, the sweep {mine!r}; the paired "
                       f"comparison assumes both read the same data")
    if base.dataset != reference.dataset:
        raise UwavError(f"the reference is a {reference.dataset} config, the sweep {base.dataset}")
    return out


def _previous_gt(out_dir: Path) -> dict | None:
    """The audio GT identity an earlier results.json in `out_dir` recorded (it is about to be replaced)."""
    old = out_dir / "results.json"
    if not old.is_file():
        return None
    try:
        return json.loads(old.read_text()).get("audio_gt") or {}
    except (OSError, ValueError):
        return None


def _earlier_results(out_dir: Path, seeds: list[int], top_k: int, reference: dict, trial_ids: list[str]
                     ) -> dict | None:
    """The report an earlier `train --best` wrote for exactly these runs (and logged to MLflow), else None:
    running the command twice (`make demo` again) reuses it instead of training and logging it again."""
    path = out_dir / "results.json"
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ranks = [c.get("trial_id") for c in report.get("configurations", []) if str(c.get("key", "")).startswith("rank")]
    same_ref = {k: v for k, v in (report.get("reference") or {}).items() if k in ("choice", "source", "params")} == \
        {k: v for k, v in reference.items() if k in ("choice", "source", "params")}
    if (report.get("seeds") != seeds or report.get("top_k") != top_k or ranks != trial_ids or not same_ref
            or not (report.get("mlflow") or {}).get("summary_run_id")):
        return None
    report["text"] = format_console(report)
    report["files"] = [str(path), str(out_dir / "results.md")]
    report["reused"] = True
    return report


def finish_best(source: str | Path, seeds: int = 5, top_k: int = 1, reference: str | None = None, data=None,
                progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    """Train the top-k configurations and the reference with `seeds` fresh seeds each, test each run once,
    and report mean ± std and the paired comparison. `data` (with the test split) is for tests.
    """
    if seeds < 1 or top_k < 1:
        raise UwavError(f"--seeds ({seeds}) and --top-k ({top_k}) must be at least 1")
    exp_dir, meta = sweep_dir_of(source)
    out_dir = exp_dir / "best"
    check_output_dir(out_dir, "results folder of --best")
    base = load_config(exp_dir / "base_config.yaml")
    board = json.loads((exp_dir / f"{LEADERBOARD}.json").read_text())
    ranked = top_configs(exp_dir, top_k)
    ref_config, ref_info = resolve_reference(reference, base, exp_dir, meta)
    # A refused precision stops here, before any data are loaded (fit would stop before the first batch).
    for rank, (_, config) in enumerate(ranked, 1):
        training_precision(config, where=f"sweep {exp_dir.name}, rank {rank} configuration: train.precision")
    if ref_config is not None:
        training_precision(ref_config, where=f"--reference {ref_info['choice']}: train.precision")

    # Fresh seeds, after every seed the sweep trained with.
    reeval = read_summary(exp_dir)
    used = {"trial seeds": sorted(seed_rules.trial_seeds(base, board)),
            "re-evaluation seeds": sorted((reeval or {}).get("seeds", []))}
    final_seeds = seed_rules.fresh_seeds([s for group in used.values() for s in group], seeds)
    seed_line = seed_rules.describe(final_seeds, used)
    echo(seed_line)

    earlier = _earlier_results(out_dir, final_seeds, top_k, ref_info, [row["trial_id"] for row, _ in ranked])
    if earlier is not None:
        echo(f"reusing the final results in {out_dir / 'results.json'}: the same configurations, reference and "
             f"seeds were trained and tested before (delete {out_dir} to train them again)")
        return earlier

    warnings = _data_warnings(base, ref_config) if ref_config is not None else []
    loaded: dict[tuple, tuple[Any, dict]] = {}

    def data_for(config: Config):
        key = (config.dataset, *(getattr(config.paths, k) for k in DATA_PATHS))
        if key not in loaded:
            d = data if data is not None else load_parser_data(config, include_test=True)
            loaded[key] = (d, data_provenance(config, d.meta.get("generator_sha256"), d.meta.get("audio_gt_file")))
        return loaded[key]

    runs: dict[str, list[dict]] = {}  # per configuration, per seed: what MLflow's seed runs show

    def train_all(key: str, title: str, config: Config) -> dict[str, dict[int, dict[str, float]]]:
        d, prov = data_for(config)
        scores: dict[str, dict[int, dict[str, float]]] = {"val": {}, "test": {}}
        for i, seed in enumerate(final_seeds, 1):
            echo(f"{title}, seed {seed} ({i}/{len(final_seeds)})")
            run_dir = out_dir / key / f"seed{seed}"
            run = with_overrides(config, {"seed": seed}, "--best")
            summary = run_training(run, d, run_dir, evaluate_test=True, progress=progress, data_provenance=prov)
            scores["val"][seed], scores["test"][seed] = dict(summary["val"]), dict(summary["test"])
            history = run_dir / "history.json"
            runs.setdefault(key, []).append({
                "seed": seed, "val": scores["val"][seed], "test": scores["test"][seed],
                "precision": summary.get("precision"),
                "best_epoch": summary.get("best_epoch"), "run_dir": str(run_dir),
                "history": json.loads(history.read_text()) if history.is_file() else []})
        return scores

    configurations, hashes = [], {}
    for rank, (row, config) in enumerate(ranked, 1):
        title = f"rank {rank} (trial {row['trial_id']})"
        again = row.get("reeval")
        extra = {"config": flat_dict(config), "config_sha256": config_sha256(config),
                 "runs": str(out_dir / f"rank{rank}")}
        if again:
            extra["reevaluation"] = again
        configurations.append(Configuration(f"rank{rank}", title, train_all(f"rank{rank}", title, config),
                                            params=row["params"], trial_id=row["trial_id"], extra=extra))
        hashes[config_sha256(config)] = configurations[-1]

    ref = None
    if ref_config is not None:
        what = ref_info["source"] if ref_info["choice"] == "file" else ref_info["nickname"]
        title = f"reference: {ref_info['choice']} ({what})"
        same = hashes.get(config_sha256(ref_config))
        extra = {"config": flat_dict(ref_config), "config_sha256": config_sha256(ref_config), **ref_info}
        if same is not None:  # the winner is the reference: its runs are the reference's runs
            echo(f"{title} is {same.title}: not trained twice")
            scores, extra["runs"] = same.scores, same.extra["runs"]
        else:
            scores, extra["runs"] = train_all("reference", title, ref_config), str(out_dir / "reference")
        ref = Configuration("reference", title, scores, params=ref_info.get("params", {}), extra=extra,
                            nickname=ref_info.get("nickname", ""), same_as=same.key if same else None)

    for conf in [*configurations, *([ref] if ref is not None and not ref.same_as else [])]:
        conf.extra["precision"] = sorted({str(r.get("precision")) for r in runs[conf.key]})  # what each trained in

    # The audio GT the numbers were scored with, and every number they are put beside.
    ranked_prov = data_for(ranked[0][1])[1]
    gt = ranked_prov["audio_gt"]
    if ref_config is not None:
        ref_gt = data_for(ref_config)[1]["audio_gt"]
        warnings.append(audio_gt_warning(gt, ref_gt, "the reference"))
    warnings.append(audio_gt_warning(gt, (meta.get("provenance") or {}).get("audio_gt"), "the sweep's trials"))
    previous = _previous_gt(out_dir)
    if previous is not None:
        warnings.append(audio_gt_warning(gt, previous, f"the earlier {out_dir / 'results.json'} (replaced now)"))
    warnings = [w for w in warnings if w]
    for w in warnings:
        echo(w)

    device = resolve_device(base.train.device)
    provenance = {**environment_provenance(device), **ranked_prov}
    objective = objective_name(base)
    report = build_report(configurations, ref, objective, sweep=str(exp_dir), seeds=final_seeds,
                          seed_rule=seed_line, sweep_seeds=used, top_k=top_k, reference=ref_info,
                          audio_gt=gt, warnings=warnings, tracking_uri=meta["tracking_uri"],
                          provenance=provenance)
    preamble = [seed_line, "", describe_audio_gt(gt), "",
                f"code: {provenance['code'].get('git_commit') or provenance['code'].get('version')}"
                f"{' (uncommitted changes)' if provenance['code'].get('git_dirty') else ''}",
                *[f"\n{w}" for w in warnings]]
    text = format_console(report)
    files = [str(out_dir / "results.json"), str(out_dir / "results.md")]
    write_json(out_dir / "results.json", report)
    write_text(out_dir / "results.md", format_markdown(report, preamble))
    report["mlflow"] = tracking.log_final_report(meta["tracking_uri"], meta, _mlflow_report(
        meta, report, [*configurations, *([ref] if ref and not ref.same_as else [])], runs, text, files),
        provenance=compact(provenance))
    write_json(out_dir / "results.json", report)  # now with the MLflow run ids
    report["text"], report["files"] = text, files
    return report


def _mlflow_report(meta: dict, report: dict, configurations: list[Configuration], runs: dict[str, list[dict]],
                   text: str, files: list[str]) -> dict:
    """The report in the form `tracking.log_final_report` (issue 13) takes: one configuration per rank
    and the reference, each with its seed runs; the paired statistics as "comparison" (numbers become
    summary metrics comparison/<label>_<split>_<metric>_<field>, verdicts and sentences tags)."""
    by_key = {c["key"]: c for c in report["configurations"]}
    confs = []
    for conf in configurations:
        stats = by_key[conf.key]
        summary = {split: {m: {k: v for k, v in ms.items() if v is not None} for m, ms in stats[split].items()}
                   for split in ("val", "test") if split in stats}
        confs.append({"label": conf.key, "title": conf.title, "params": conf.params, "trial_id": conf.trial_id,
                      "summary": summary, "runs": runs[conf.key]})
    comparison: dict[str, Any] = {}
    fields = ("diff_mean", "diff_std", "ci_low", "ci_high", "p_value", "verdict")
    for comp in report["comparisons"]:
        node = comparison.setdefault(comp["configuration"], {}).setdefault(comp["split"], {})
        for m, d in comp["metrics"].items():
            node[m] = {k: d[k] for k in fields if d[k] is not None}
        if comp.get("sentence"):
            node["sentence"] = comp["sentence"]
    return {"name": f"{meta['name']}-final", "objective": meta.get("metric"), "seeds": report["seeds"],
            "configurations": confs, "comparison": comparison, "text": text, "files": files}
