"""`uwav train --best`: retrain a finished sweep's best configurations with several seeds, test once each.

Each run is `uwav.train.run_training` (the same `fit`), evaluated once on test; the report gives
mean ± std of the ten numbers (AVE: accuracy too) over seeds, on val and on test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uwav import metrics, tracking
from uwav.config import flat_dict, with_overrides
from uwav.data.dataset import load_parser_data
from uwav.errors import UwavError
from uwav.fit import training_precision
from uwav.io import write_json, write_text
from uwav.sweep.results import sweep_dir_of, top_configs
from uwav.train import run_training


def mean_std(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std"}}; std is the sample standard deviation (0 for one seed)."""
    out = {}
    for k in per_seed[0]:
        v = np.array([s[k] for s in per_seed], dtype=np.float64)
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def format_mean_std(stats: dict[str, dict[str, float]], title: str) -> str:
    lines = [title]
    if "accuracy" in stats:  # AVE: segment accuracy first, the F-scores below
        lines.append(f"{'Accuracy':<8}{stats['accuracy']['mean']:>7.2f} ± {stats['accuracy']['std']:.2f}")
    lines.append(f"{'':<8}" + "".join(f"{h:>15}" for _, h in metrics.COLUMNS))
    for level, name in metrics.LEVELS:
        cells = [f"{stats[f'{level}_{k}']['mean']:.2f} ± {stats[f'{level}_{k}']['std']:.2f}"
                 for k, _ in metrics.COLUMNS]
        lines.append(f"{name:<8}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def finish_best(source: str | Path, seeds: int = 5, top_k: int = 1, data=None, progress: bool = True,
                echo=print) -> dict:
    """Retrain the top-k sweep configurations with `seeds` seeds each (seed = config seed + i) through
    `uwav.train.run_training`, evaluate each once on test, and report mean ± std of the ten numbers.

    Writes <sweep>/best/rank<k>/seed<s>/ (the runs), <sweep>/best/results.{json,md} and one MLflow run
    per configuration. `data` (with the test split) is for tests.
    """
    if seeds < 1 or top_k < 1:
        raise UwavError(f"--seeds ({seeds}) and --top-k ({top_k}) must be at least 1")
    exp_dir, meta = sweep_dir_of(source)
    out_dir = exp_dir / "best"
    results, texts, loaded = [], [], {}
    for rank, (row, config) in enumerate(top_configs(exp_dir, top_k), 1):
        # A refused precision stops here, before the data are loaded (fit would stop before the first batch).
        training_precision(config, where=f"sweep {exp_dir.name}, rank {rank} configuration: train.precision")
        if data is None:
            key = (config.paths.annotations, config.paths.features, config.paths.layout, config.paths.out)
            if key not in loaded:
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
                  "precision": summary["precision"],
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
