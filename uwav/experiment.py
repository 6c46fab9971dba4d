"""One parser training run with its files: checkpoints, the metrics JSON and (on request) test predictions.

`uwav train` calls `run_training`; `uwav train --best` calls it once per seed. Training itself is
`uwav.train.fit`; this module only adds the side effects around it.

Files under <out>/parser/ (or the run folder given):
  last.pt           resumable state after the latest epoch (written atomically every epoch)
  best.pt           the best epoch's weights (val Seg Type@AV for LLP, val accuracy for AVE; the config's
                    selection rule)
  history.json      per-epoch losses and val metrics
  metrics.json      best epoch, val metrics, and test metrics when --test was asked
  predictions_test.npz   the best model's test probabilities in `uwav eval` format (with --test)
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from uwav import metrics
from uwav.config import to_dict
from uwav.data.dataset import ParserData
from uwav.io import atomic_path, load_checkpoint, save_npz, write_json
from uwav.train import EpochReport, Trainer, evaluate_split, fit, objective_name, predict, resolve_device


def save_parser(path: Path, model, config, epoch: int, val: dict[str, float]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"han_config": asdict(model.config), "model": model.state_dict(), "epoch": epoch,
                    "val": dict(val), "config": to_dict(config)}, tmp)


def load_parser(path: str | Path, device: torch.device | str = "cpu"):
    from uwav.models.han import HAN, HANConfig

    ckpt = load_checkpoint(path, "parser", ("han_config", "model"), device=device)
    model = HAN(HANConfig(**ckpt["han_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def run_training(config, data: ParserData, run_dir: Path, evaluate_test: bool, resume: bool = False,
                 progress: bool = True, on_epoch=None) -> dict:
    """Train, keep best/last checkpoints in `run_dir`, evaluate the best model on val (and test)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    resume_state = None
    if resume and last.is_file():
        resume_state = torch.load(last, map_location="cpu", weights_only=True)

    def checkpoint(report: EpochReport, trainer: Trainer) -> None:
        if report.improved:
            save_parser(best, trainer.model, config, report.epoch, report.val)
        with atomic_path(last) as tmp:
            torch.save(trainer.state_dict(), tmp)
        write_json(run_dir / "history.json", [asdict(h) for h in trainer.history])
        if on_epoch is not None:
            on_epoch(report, trainer)

    result = fit(config, data, on_epoch=checkpoint, resume_state=resume_state, keep_best=True, progress=progress)
    device = resolve_device(config.train.device)
    summary = {
        "best_epoch": result.best_epoch,
        "val": result.best_val,
        "audio_gt_file": data.meta.get("audio_gt_file"),
        "tie_rule": config.eval.tie_rule,
        "dataset": config.dataset,
        "objective": objective_name(config),
        "threshold_fit": config.pseudo.threshold_fit,
        "seed": config.seed,
        "generator_sha256": data.meta.get("generator_sha256", ""),
        "checkpoint": str(best),
    }
    if evaluate_test:
        model, _ = load_parser(best, device)
        test = data.split("test")
        summary["test"] = evaluate_split(model, test, device, config)
        probs = predict(model, test, device, config.train.eval_batch_size, config.train.precision)
        extra = {}
        if config.dataset == "ave":
            from uwav.data.dataset import class_names

            extra["classes"] = np.array(class_names(config))  # the class order, checked by `uwav eval`
        save_npz(run_dir / "predictions_test.npz", filename=np.array(test.filenames),
                 audio=probs["audio"].astype(np.float32), visual=probs["visual"].astype(np.float32),
                 video=probs["video"].astype(np.float32), **extra)
    if config.dataset == "ave":
        summary["class_order"] = config.ave_class_order
    write_json(run_dir / "metrics.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    table = metrics.format_ave if "accuracy" in summary["val"] else metrics.format_table
    lines = [table(summary["val"], title=f"val (best epoch {summary['best_epoch']})")]
    if "test" in summary:
        lines.append(table(summary["test"], title="test"))
    if summary.get("class_order"):
        lines.append(f"AVE class order: {summary['class_order']}")
    lines.append(f"audio GT: {summary.get('audio_gt_file')}   tie rule: {summary.get('tie_rule')}")
    return "\n".join(lines)
