"""`uwav train` (stage 3): one parser training run with its files: checkpoints, metrics and test predictions.

`uwav train` calls `run_training`; `uwav train --best` calls it once per seed. Training itself is
`uwav.fit.fit`; this module only adds the side effects around it.

Files under <out>/parser/ (or the run folder given):
  last.pt           resumable state after the latest epoch (written atomically every epoch)
  best.pt           the best epoch's weights (val Seg Type@AV for LLP, val accuracy for AVE; the config's
                    selection rule)
  history.json      per-epoch losses and val metrics
  metrics.json      best epoch, val metrics, the precision trained in, test metrics when --test was asked,
                    the audio GT identity and the run's provenance (uwav.provenance: code, versions, device,
                    config and data)
  predictions_test.npz   the best model's test probabilities in `uwav eval` format (with --test)
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from uwav import metrics
from uwav.checkpoints import load_parser, load_trainer_state, save_parser, save_trainer_state
from uwav.classes import class_names
from uwav.data.dataset import ParserData
from uwav.fit import EpochReport, Trainer, evaluate_split, fit, objective_name, predict
from uwav.io import save_npz, write_json
from uwav.provenance import describe_audio_gt, run_provenance
from uwav.runtime import resolve_device


def resume_state_of(run_dir: Path) -> dict | None:
    """The run folder's last.pt (checked by the one checkpoint loader), or None when there is none yet."""
    last = Path(run_dir) / "last.pt"
    return load_trainer_state(last) if last.is_file() else None


def run_training(config, data: ParserData, run_dir: Path, evaluate_test: bool, resume: bool = False,
                 progress: bool = True, on_epoch=None, data_provenance: dict | None = None,
                 resume_state: dict | None = None) -> dict:
    """Train, keep best/last checkpoints in `run_dir`, evaluate the best model on val (and test).

    `data_provenance`: `uwav.provenance.data_provenance` of `data`, when the caller computed it once for
    several runs (`train --best`); otherwise it is computed here. `resume_state`: `resume_state_of(run_dir)`
    when the caller read it already (the CLI, before loading the data).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if resume and resume_state is None:
        resume_state = resume_state_of(run_dir)

    def checkpoint(report: EpochReport, trainer: Trainer) -> None:
        if report.improved:
            save_parser(best, trainer.model, config, report.epoch, report.val)
        save_trainer_state(last, trainer.state_dict())
        write_json(run_dir / "history.json", [asdict(h) for h in trainer.history])
        if on_epoch is not None:
            on_epoch(report, trainer)

    result = fit(config, data, on_epoch=checkpoint, resume_state=resume_state, keep_best=True, progress=progress)
    device = resolve_device(config.train.device)
    provenance = run_provenance(config, device, data.meta, data_provenance)
    summary = {
        "best_epoch": result.best_epoch,
        "val": result.best_val,
        "audio_gt_file": data.meta.get("audio_gt_file"),
        "tie_rule": config.eval.tie_rule,
        "dataset": config.dataset,
        "objective": objective_name(config),
        "threshold_fit": config.pseudo.threshold_fit,
        "threshold_cuts": config.pseudo.threshold_cuts,
        "seed": config.seed,
        "precision": result.precision,  # what training and evaluation ran in (train.precision resolved)
        "generator_sha256": data.meta.get("generator_sha256", ""),
        "checkpoint": str(best),
    }
    if evaluate_test:
        model, _ = load_parser(best, device)
        test = data.split("test")
        summary["test"] = evaluate_split(model, test, device, config, result.precision)
        probs = predict(model, test, device, config.train.eval_batch_size, result.precision)
        extra = {}
        if config.dataset == "ave":  # the class order, checked by `uwav eval`
            extra["classes"] = np.array(class_names("ave", config.ave_class_order))
        save_npz(run_dir / "predictions_test.npz", filename=np.array(test.filenames),
                 audio=probs["audio"].astype(np.float32), visual=probs["visual"].astype(np.float32),
                 video=probs["video"].astype(np.float32), **extra)
    if config.dataset == "ave":
        summary["class_order"] = config.ave_class_order
    summary["audio_gt"] = provenance["audio_gt"]
    summary["provenance"] = provenance
    write_json(run_dir / "metrics.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    table = metrics.format_ave if "accuracy" in summary["val"] else metrics.format_table
    lines = [table(summary["val"], title=f"val (best epoch {summary['best_epoch']})")]
    if "test" in summary:
        lines.append(table(summary["test"], title="test"))
    if summary.get("class_order"):
        lines.append(f"AVE class order: {summary['class_order']}")
    lines.append(f"tie rule: {summary.get('tie_rule')}   precision: {summary.get('precision', 'fp32')}")
    if (summary.get("audio_gt") or {}).get("version") == "not LLP":
        lines.append(f"annotations: {summary.get('audio_gt_file')}")
    else:
        lines.append(describe_audio_gt(summary.get("audio_gt")))
    return "\n".join(lines)
