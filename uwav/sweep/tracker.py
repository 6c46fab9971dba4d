"""The Ray Tune callback that mirrors every trial into an MLflow child run of the sweep's parent run.

It runs on the driver, so trials never talk to MLflow and a cluster only needs the tracking server
reachable from the head node. The MLflow calls themselves are uwav.tracking's.
"""

from __future__ import annotations

from ray.tune import Callback

from uwav import tracking
from uwav.config import Config, with_overrides
from uwav.provenance import config_sha256, flat_tags
from uwav.sweep.console import short_name, trial_number

# Per-epoch report keys not logged as metrics: `objective` is val_<metric> again, `epoch` is the step
# itself, `best_epoch` a derived fact (a param at the end).
_NOT_METRICS = {"objective", "epoch", "best_epoch"}


class SweepTracker(Callback):
    """Tune callback that mirrors trials into MLflow child runs of the sweep's parent run.

    Pickled into Tune's experiment state (Tuner.restore brings it back), so it holds only plain data;
    the MLflow client and the trial -> run map are rebuilt lazily.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, base: Config,
                 searched: tuple[str, ...], provenance: dict | None = None, digits: int = 2):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.base, self.searched, self.digits = base, tuple(searched), int(digits)
        # The sweep's provenance (uwav.provenance.run_provenance on the driver); each trial's run gets it
        # as tags, with its own config hash.
        self.provenance = dict(provenance or {})
        self._client = None
        self._runs: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._last: dict[str, dict] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_client=None, _runs={}, _last_step={}, _last={})
        return state

    @property
    def mlflow(self):
        if self._client is None:
            self._client = tracking.client(self.tracking_uri)
        return self._client

    def trial_config(self, trial) -> Config:
        return with_overrides(self.base, dict(trial.config), "<sweep trial>")

    def run_id(self, trial) -> str:
        """The trial's child run: remembered, found again by its trial id (resume), or created."""
        tid = trial.trial_id
        if tid in self._runs:
            return self._runs[tid]
        run = tracking.find_run(self.mlflow, self.experiment_id,
                                {tracking.TRIAL_TAG: tid, tracking.PARENT_TAG: self.parent_run_id})
        if run is not None:
            tracking.reopen(self.mlflow, run)
            run_id = run.info.run_id
            logged = self.mlflow.get_metric_history(run_id, "best_objective")
            self._last_step[tid] = max((m.step for m in logged), default=0)
        else:
            config = self.trial_config(trial)
            provenance = flat_tags({**self.provenance, "config_sha256": config_sha256(config)})
            # The counter first, so names differ in their first characters (the runs table cuts them).
            name = short_name(trial_number(trial), tid, self.digits)
            run = self.mlflow.create_run(self.experiment_id, run_name=name, tags={
                tracking.PARENT_TAG: self.parent_run_id, tracking.TRIAL_TAG: tid, "uwav.kind": "trial",
                "uwav.searched": ",".join(self.searched), **provenance})
            run_id = run.info.run_id
            # Only what differs between trials; the constants are the parent's params (base_config.yaml).
            tracking.log_params(self.mlflow, run_id, self.searched_values(trial))
            self._last_step[tid] = 0
        self._runs[tid] = run_id
        return run_id

    def searched_values(self, trial) -> dict:
        return {k: trial.config[k] for k in self.searched if k in trial.config}

    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        tracking.reopen(self.mlflow, self.mlflow.get_run(run_id))  # a trial continued after an interruption

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self.run_id(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self._last[trial.trial_id] = dict(result)
        # A trial restarted from its checkpoint re-reports epochs already logged; log each step once.
        if step <= self._last_step.get(trial.trial_id, 0):
            return
        self._last_step[trial.trial_id] = step
        if "precision" in result:  # the resolved train.precision (the params hold the requested one)
            self.mlflow.set_tag(run_id, "uwav.precision", str(result["precision"]))
        values = {k: v for k, v in result.items() if k not in _NOT_METRICS
                  and (k.startswith(tracking.METRIC_PREFIXES) or k in tracking.METRIC_KEYS)}
        pseudo = {k: v for k, v in values.items() if k.startswith("pseudo_")}
        tracking.log_metrics(self.mlflow, run_id, {k: v for k, v in values.items() if k not in pseudo}, step=step)
        if pseudo:
            tracking.log_metrics(self.mlflow, run_id, pseudo, step=0)

    def on_trial_recover(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        self.mlflow.set_tag(run_id, "uwav.restarts", str(getattr(trial, "num_failures", 1)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        last = self._last.get(trial.trial_id) or trial.last_result or {}
        epochs = self.trial_config(trial).train.epochs
        reached = int(last.get("epoch", 0))
        stopped = "true" if reached < epochs else "false"
        self._log_facts(run_id, last, stopped)
        self.mlflow.set_tag(run_id, "stopped_early", stopped)
        self.mlflow.set_terminated(run_id, "FINISHED")

    def _log_facts(self, run_id: str, last: dict, stopped: str | None) -> None:
        """The derived facts as params (a column and a parallel-coordinates axis each); params are
        write-once in MLflow, so ones already there (a trial completed before a resume) are kept."""
        facts = {"epochs_trained": int(last.get("epoch", 0))}
        if last.get("best_epoch") is not None:
            facts["best_epoch"] = int(last["best_epoch"])
        if stopped is not None:
            facts["stopped_early"] = stopped
        have = self.mlflow.get_run(run_id).data.params
        tracking.log_params(self.mlflow, run_id, {k: v for k, v in facts.items() if k not in have})

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        self._log_facts(run_id, self._last.get(trial.trial_id) or trial.last_result or {}, None)
        error_file = getattr(trial, "error_file", None)
        if error_file:
            self.mlflow.set_tag(run_id, "uwav.error_file", str(error_file))
        self.mlflow.set_terminated(run_id, "FAILED")
