"""The MLflow web UI for a sweep: links into it, the experiment settings that make it open on the runs,
a saved view whose charts start from the searched values, and `mlflow ui` started on 127.0.0.1.

What MLflow 3.x does (read from its bundled UI, mlflow/server/js/build, 3.17):
  - the UI routes with a hash: <base>/#/experiments/<id>/runs (runs page),
    <base>/#/experiments/<id>/runs/<run id> (one run), <base>/#/compare-runs?runs=[...]&experiments=[...]
    (the compare view); `compareRunsMode=CHART` on the runs page opens the chart view;
  - which page an experiment opens on follows the UI's global "workflow type" (GenAI / Model training
    switch), taken from the URL's `workflowType` parameter or else the browser's saved choice, GenAI on
    a fresh browser: <base>/#/experiments/<id> then lands on the GenAI overview/Traces page. 3.17 ignores
    the experiment tag `mlflow.experimentKind` for this (a feature flag that is always on), so every link
    uwav prints carries `workflowType=machine_learning`; the tag (`custom_model_development`) is set
    too, for the experiment list and for MLflow versions that read it;
  - a view (chosen columns, charts) can be stored as the experiment tag `mlflow.sharedViewState.<key>`
    holding the view as JSON; `?viewStateShareKey=<key>` on the runs page opens it. This is the format
    behind the UI's own "Share" button, not a documented API: if a later MLflow reads it differently,
    the link still opens the runs page, only without the prepared view.
Metric names with a `/` are grouped by MLflow's chart view into one section per prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

KIND_TAG = "mlflow.experimentKind"
KIND_ML = "custom_model_development"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "uwav-sweep"
WORKFLOW = "workflowType=machine_learning"
HOST = "127.0.0.1"
PORT = 5000


def ui_base(tracking_uri: str, port: int = PORT) -> str:
    """Where the UI for `tracking_uri` is: the tracking server itself, or `uwav ui` on 127.0.0.1."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return f"http://{HOST}:{port}"


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment as MLflow's own links open it (lands on the runs page with the workflow set)."""
    return f"{base}/#/experiments/{experiment_id}?{WORKFLOW}"


def runs_url(base: str, experiment_id: str, view: bool = False, charts: bool = False) -> str:
    """The runs page; `view`: with the sweep's saved view (`sweep_view`), `charts`: its chart view."""
    query = [WORKFLOW]
    if charts:
        query.append("compareRunsMode=CHART")
    if view:
        query.append(f"viewStateShareKey={VIEW_KEY}")
    return f"{base}/#/experiments/{experiment_id}/runs?{'&'.join(query)}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW}"


def compare_url(base: str, experiment_id: str, run_ids: list[str]) -> str:
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")))
    exps = quote(json.dumps([str(experiment_id)], separators=(",", ":")))
    return f"{base}/#/compare-runs?runs={runs}&experiments={exps}&{WORKFLOW}"


def _column(group: str, key: str) -> str:
    return f"{group}.`{key}`"


def sweep_view(searched: list[str], metrics: list[str], objective: str, trial_filter: str = "") -> dict:
    """The runs-page view of a sweep: the trials (`trial_filter`, an MLflow search filter; a filtered
    list shows child runs flat instead of folded under their parent) best first, the searched values and
    the main metrics as table columns, and a chart section with the parallel coordinates of the searched
    values against the objective, the objective per epoch, and a bar chart of the objective.

    Folding, pinning and hiding runs are not part of a shared view in MLflow (it drops them), hence the
    filter rather than an expanded parent."""
    section = "uwav-sweep-section"

    def chart(kind: str, uuid: str, **fields) -> dict:
        return {"uuid": uuid, "type": kind, "runsCountToCompare": 100, "metricSectionId": section,
                "deleted": False, "isGenerated": False, **fields}

    charts = [
        chart("PARALLEL", "uwav-parallel", selectedParams=list(searched), selectedMetrics=[objective],
              showAllRuns=True),
        chart("LINE", "uwav-objective-curve", metricKey=objective, selectedMetricKeys=[objective],
              xAxisKey="step", scaleType="linear", lineSmoothness=0, selectedXAxisMetricKey="",
              displayName=f"{objective} per epoch"),
        chart("BAR", "uwav-objective-bar", metricKey=objective, displayName=objective),
    ]
    return {
        "searchFilter": trial_filter,
        "orderByKey": _column("metrics", objective),
        "orderByAsc": False,
        "selectedColumns": [_column("params", k) for k in searched] + [_column("metrics", m) for m in metrics],
        "compareRunCharts": charts,
        "compareRunSections": [{"uuid": section, "name": "sweep", "display": True, "isReordered": False,
                                "deleted": False, "isGenerated": False}],
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
        "runsHiddenMode": "SHOW_ALL",
    }


def prepare_experiment(mlflow_client, experiment_id: str, view: dict | None = None) -> None:
    """Make the experiment open on its runs page, and store the sweep's view (see the module docstring)."""
    mlflow_client.set_experiment_tag(experiment_id, KIND_TAG, KIND_ML)
    if view is not None:
        mlflow_client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + VIEW_KEY, json.dumps(view))


def free_port(start: int = PORT, tries: int = 50) -> int:
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1} on {HOST}")


def ui_command(tracking_uri: str, port: int, artifact_root: Path | None = None) -> list[str]:
    """`mlflow ui` for the store, bound to 127.0.0.1 (the UI has no login: never on a public address)."""
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    cmd = [exe] if exe else [sys.executable, "-m", "mlflow"]
    cmd += ["ui", "--backend-store-uri", tracking_uri, "--host", HOST, "--port", str(port)]
    if artifact_root is not None:
        cmd += ["--artifacts-destination", Path(artifact_root).resolve().as_uri()]
    return cmd


def start_ui(tracking_uri: str, port: int, artifact_root: Path | None = None, quiet: bool = True):
    """Start `mlflow ui` in the background; returns the Popen (the caller ends it)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(ui_command(tracking_uri, port, artifact_root), env=env, stdout=out, stderr=out,
                            start_new_session=True)


def wait_until_up(base: str, timeout_s: float = 60.0, proc=None) -> bool:
    """True once the UI answers its health check (False after `timeout_s` or when `proc` died)."""
    import time
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False
