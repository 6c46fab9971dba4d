"""Before --resume: put back checkpoints that a killed sweep's saved Tune state names but Ray deleted.

Ray deletes a trial's oldest kept checkpoint the moment it registers a new one, but writes the
experiment state that --resume reads asynchronously (forced only every `num_to_keep` checkpoints). A
driver killed in between leaves a state whose latest checkpoint for some trial is gone, and Tune fails
that trial on restore. Retrying it from scratch (`restart_errored`) is no way out: OptunaSearch forgets
errored trials and raises on their next result.

The newer checkpoints are still on disk, and Ray registers (then deletes the old one) only after a
checkpoint is fully written, so the oldest checkpoint newer than the named one is complete. Copying it
to the named path lets the trial continue from one epoch later than the state says. uwav's trainable
restores its epoch, RNG and best-so-far from the checkpoint contents, ASHA counts that epoch
(`time_attr: epoch`) and the MLflow tracker logs each epoch once, so only Tune's own iteration counter
lags. (Sweep storage is always a local or mounted path: the sweep spec refuses URIs.)
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path


def named_checkpoints(exp_dir: Path) -> dict[str, Path]:
    """Trial folder name -> the latest checkpoint path of that trial in the newest saved Tune state.

    Reads Ray's private layout; any trial it cannot read (another Ray version) is skipped, never guessed.
    """
    states = sorted(exp_dir.glob("experiment_state-*.json"))  # Tune restores from the newest name
    if not states:
        return {}
    try:
        trials = json.loads(states[-1].read_text())["trial_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    named: dict[str, Path] = {}
    for entry in trials:
        try:
            manager = json.loads(entry[1])["checkpoint_manager"]
            latest = pickle.loads(bytes.fromhex(manager["value"]))._latest_checkpoint_result
            if latest is None or latest.checkpoint is None:
                continue
            path = Path(latest.checkpoint.path)
        except Exception:  # noqa: BLE001 - unreadable in this Ray version: leave it to Tune
            continue
        named[path.parent.name] = path
    return named


def repair_lost_checkpoints(exp_dir: Path) -> list[str]:
    """Re-create each missing named checkpoint from the oldest newer one; returns what was done."""
    done = []
    for path in named_checkpoints(exp_dir).values():
        if path.exists() or not path.parent.is_dir():
            continue
        newer = sorted(p for p in path.parent.glob("checkpoint_*") if p.is_dir() and p.name > path.name)
        if not newer:
            continue
        shutil.copytree(newer[0], path)
        done.append(f"{path.parent.name}: {path.name} was deleted by Ray before its state was saved; "
                    f"continuing from {newer[0].name}")
    return done
