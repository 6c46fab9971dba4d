"""The sweep's Optuna study, persisted beside the Tune experiment (<experiment>/optuna.db, sqlite) so that
`optuna.load_study`, Optuna's own plots and `optuna-dashboard` work after the sweep.

Ray's OptunaSearch keeps its study in memory and pickles it into Tune's searcher state. Handing it an
RDB storage instead would make that storage and Tune's snapshot disagree whenever a driver is killed
between the two (trials asked but never told stay RUNNING in the database, and `--resume` asks again),
and sqlite on a cluster's shared mount is written from one process only if it is written once. So the
study is rebuilt from Tune's records at the end of every `uwav sweep` run (a finished, interrupted or
resumed one): one Optuna trial per Tune trial with the searched values, the same distributions the
searcher used, the per-epoch objective as intermediate values, and the best-so-far objective as the
value — what the searcher itself was told. The database is written to a temporary file and renamed,
so a reader never sees half a study.

States: complete and ASHA-stopped trials are COMPLETE (user attribute `stopped_early`), errors FAIL,
trials the sweep was interrupted under RUNNING, never-started ones are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

from uwav.sweep.records import TrialRecord

STUDY_FILE = "optuna.db"


def storage_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def distributions(space) -> dict:
    """Optuna distributions of the sweep's `Param`s, as Ray's OptunaSearch converts Tune's domains."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in space:
        if p.type == "uniform":
            out[p.key] = FloatDistribution(p.low, p.high)
        elif p.type == "loguniform":
            out[p.key] = FloatDistribution(p.low, p.high, log=True)
        elif p.type == "int":
            out[p.key] = IntDistribution(p.low, p.high, log=p.log)
        else:
            out[p.key] = CategoricalDistribution(list(p.values))
    return out


def _trial(record: TrialRecord, dists: dict, objective: str):
    from optuna.trial import TrialState, create_trial

    if record.status == "error":
        state, value = TrialState.FAIL, None
    elif record.status == "unfinished":
        state, value = TrialState.RUNNING, None
    elif record.best_objective is None:
        state, value = TrialState.FAIL, None
    else:
        state, value = TrialState.COMPLETE, float(record.best_objective)
    params = {k: v for k, v in record.params.items() if k in dists}
    intermediate = {int(h["epoch"]): float(h[objective]) for h in record.history if objective in h}
    attrs = {"tune_trial_id": record.trial_id, "name": record.name, "status": record.status,
             "epochs": record.epochs, "stopped_early": record.stopped_early, "best_epoch": record.best_epoch}
    return create_trial(state=state, value=value, params=params,
                        distributions={k: dists[k] for k in params}, intermediate_values=intermediate,
                        user_attrs=attrs)


def write_study(path: Path, name: str, space, records: list[TrialRecord], objective: str = "objective",
                attrs: dict | None = None) -> Path:
    """(Re)build the study `name` at `path` from `records`, replacing what was there; returns the path."""
    import optuna

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in RDB" on every rebuild
    try:
        storage = optuna.storages.RDBStorage(storage_url(tmp))
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        for k, v in (attrs or {}).items():
            study.set_user_attr(k, v)
        dists = distributions(space)
        for record in sorted(records, key=lambda r: r.number):
            if record.status != "pending":
                study.add_trial(_trial(record, dists, objective))
        storage.engine.dispose()
        os.replace(tmp, path)
    finally:
        optuna.logging.set_verbosity(level)
        tmp.unlink(missing_ok=True)
    return path


def load_study(path: Path, name: str | None = None):
    """The persisted study (the only one in the file when `name` is None)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage_url(path))
