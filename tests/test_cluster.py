"""`uwav cluster validate`: cluster/gpu.yaml passes; broken variants fail with one line naming the key."""

from __future__ import annotations

import copy
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from sweep_fixtures import tiny_data, write_sweep

from uwav import tracking
from uwav.cli import main
from uwav.cluster import validate_cluster
from uwav.errors import UwavError
from uwav.fit import fit
from uwav.sweep.spec import load_sweep

GPU_YAML = Path(__file__).resolve().parents[1] / "cluster" / "gpu.yaml"
GOOD = yaml.safe_load(GPU_YAML.read_text())


def write(tmp_path: Path, change: Callable[[dict], None]) -> Path:
    config = copy.deepcopy(GOOD)
    change(config)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_shipped_cluster_file_is_valid():
    summary = validate_cluster(GPU_YAML)
    assert summary.head_node_type == "head" and summary.provider == "aws"
    assert summary.workers["gpu_spot"] == (0, 8, True) and summary.workers["gpu_ondemand"] == (0, 2, False)
    assert summary.storage_path.startswith(summary.shared_mount + "/")
    result = CliRunner().invoke(main, ["cluster", "validate", str(GPU_YAML)])
    assert result.exit_code == 0 and "valid for Ray" in result.output


def _set(path: str, value):
    """A change that sets a dotted key (list items by index) of the config."""
    def change(config):
        *parents, last = path.split(".")
        node = config
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _drop(path: str):
    def change(config):
        *parents, last = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        del node[last]
    return change


def _edit_commands(name: str, old: str, new: str):
    def change(config):
        config[name] = [c.replace(old, new) for c in config[name]]
        assert any(new in c for c in config[name]), f"{old!r} not in {name}"
    return change


HEAD_START = "head_start_ray_commands"
BROKEN = {
    # Ray's schema (after Ray's defaults are filled in)
    "unknown top-level key": (_set("max_worker", 3), "top level: Additional properties are not allowed ('max_worker'"),
    "unknown node type key": (_set("available_node_types.gpu_spot.min_worker", 1),
                              "available_node_types.gpu_spot: Additional properties are not allowed ('min_worker'"),
    "unknown docker key": (_set("docker.imag", "x"), "docker: Additional properties are not allowed ('imag'"),
    "wrong type": (_set("max_workers", "ten"), "max_workers: 'ten' is not of type 'integer'"),
    "negative resource": (_set("available_node_types.gpu_spot.resources.GPU", -1),
                          "available_node_types.gpu_spot.resources.GPU: -1 is less than the minimum"),
    "min workers above max": (_set("available_node_types.gpu_spot.min_workers", 11), "max_workers"),
    "missing head_node_type": (_drop("head_node_type"), "head_node_type is missing; expected one of head, gpu_spot"),
    "unknown head_node_type": (_set("head_node_type", "cpu_head"), "head_node_type 'cpu_head' is not in"),
    "missing provider": (_drop("provider"), "provider.type is missing"),
    # the head runs no trials
    "head with a GPU": (_set("available_node_types.head.resources", {"CPU": 0, "GPU": 1}),
                        "available_node_types.head.resources.GPU is 1"),
    "head CPUs auto-detected": (_set("available_node_types.head.resources", {}),
                                "available_node_types.head.resources.CPU is absent"),
    "head CPUs for trials": (_set("available_node_types.head.resources", {"CPU": 8}),
                             "available_node_types.head.resources.CPU is 8"),
    "head started with CPUs": (_edit_commands(HEAD_START, "--num-cpus=0", "--num-cpus=8"),
                               "head_start_ray_commands[1]: --num-cpus=8"),
    # storage every node can reach
    "local storage": (_set("metadata.uwav.storage_path", "runs/llp/sweeps"),
                      "metadata.uwav.storage_path 'runs/llp/sweeps' is not under metadata.uwav.shared_mount"),
    "storage without a shared mount": (_drop("metadata.uwav.shared_mount"), "is local to each node"),
    "storage missing": (_drop("metadata.uwav.storage_path"), "metadata.uwav.storage_path is missing"),
    "storage on S3": (_set("metadata.uwav.storage_path", "s3://bucket/uwav/runs"),
                      "metadata.uwav.storage_path 's3://bucket/uwav/runs' is a URI"),
    "storage on GCS": (_set("metadata.uwav.storage_path", "gs://bucket/uwav/runs"), "is a URI"),
    "mount never made": (_set("initialization_commands", ["sudo mkdir -p /mnt/uwav"]),
                         "metadata.uwav.shared_mount '/mnt/uwav' is not mounted"),
    "no project metadata": (_drop("metadata"), "metadata.uwav is missing"),
    # servers not public
    "public MLflow": (_edit_commands(HEAD_START, "--host 127.0.0.1", "--host 0.0.0.0"),
                      "head_start_ray_commands[2]: the MLflow server binds 0.0.0.0"),
    "public MLflow, short flag": (_edit_commands(HEAD_START, "--host 127.0.0.1", "-h=0.0.0.0"),
                                  "the MLflow server binds 0.0.0.0"),
    "public dashboard": (_edit_commands(HEAD_START, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
                         "head_start_ray_commands[1]: Ray's dashboard binds 0.0.0.0"),
    # Ray's default head start command binds the dashboard publicly; leaving ours out must not pass
    "Ray's default start commands": (_drop(HEAD_START), "Ray's dashboard binds 0.0.0.0"),
    # token auth
    "auth disabled": (_edit_commands("worker_start_ray_commands", "RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled"),
                      "worker_start_ray_commands[1]: RAY_AUTH_MODE=disabled"),
    "auth missing": (_edit_commands(HEAD_START, "RAY_AUTH_MODE=token ", ""),
                     "head_start_ray_commands: no RAY_AUTH_MODE=token"),
    # the driver's version on the nodes
    "project unpinned": (_set("setup_commands", ["pip install -q torch==2.13.0", "pip install uwav"]),
                         "setup_commands: no command installs uwav at the driver's version"),
    # no credentials
    "key in provider": (_set("provider.aws_secret_access_key", "abc/def"),
                        "provider.aws_secret_access_key: credentials in the cluster file"),
    "key in a command": (_set("setup_commands.0", "export AWS_SECRET_ACCESS_KEY=abc && pip install x"),
                         "setup_commands[0]: a credential or secret"),
    "key id in node_config": (_set("available_node_types.gpu_spot.node_config.UserData", "AKIAABCDEFGHIJKLMNOP"),
                              "node_config.UserData: a credential or secret in the cluster file (AKIA...)"),
    "ray token in a command": (_edit_commands(HEAD_START, "MODE=token", "MODE=token RAY_AUTH_TOKEN=x"),
                               "head_start_ray_commands[1]: a credential"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_variants_are_rejected_with_the_key(tmp_path, case):
    change, expected = BROKEN[case]
    path = write(tmp_path, change)
    with pytest.raises(UwavError) as err:
        validate_cluster(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message, message


def test_cli_prints_one_line_and_exits_2(tmp_path):
    path = write(tmp_path, _set("available_node_types.head.resources", {"CPU": 0, "GPU": 1}))
    result = CliRunner().invoke(main, ["cluster", "validate", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(f"error: {path}: ")
    for text, expected in (("a: [1, 2", "invalid YAML"), ("- a list", "must be a mapping")):
        (tmp_path / "odd.yaml").write_text(text)
        result = CliRunner().invoke(main, ["cluster", "validate", str(tmp_path / "odd.yaml")])
        assert result.exit_code == 2 and expected in result.output
    result = CliRunner().invoke(main, ["cluster", "validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cluster file not found" in result.output


@pytest.mark.parametrize("change", [
    # an explicit opt-in for servers behind the user's own network controls
    lambda c: (_edit_commands(HEAD_START, "--host 127.0.0.1", "--host 0.0.0.0")(c),
               _set("metadata.uwav.public_servers", True)(c)),
    # a private-interface bind is fine
    _edit_commands(HEAD_START, "--host 127.0.0.1", "--host $(hostname -I | cut -d' ' -f1)"),
    # a custom image that already holds the project
    lambda c: (_set("setup_commands", ["pip install -q torch==2.13.0"])(c),
               _set("metadata.uwav.project_in_image", True)(c)),
    # the token file travels through file_mounts: a path key named auth_token is not a credential
    _set("file_mounts", {"/home/ray/.ray/auth_token": "~/.ray/auth_token"}),
])
def test_accepted_variants(tmp_path, change):
    validate_cluster(write(tmp_path, change))


def test_sweeps_on_the_head_log_to_its_mlflow_server(tmp_path, monkeypatch):
    """gpu.yaml exports MLFLOW_TRACKING_URI before `ray start`; a sweep file that names no tracking_uri
    uses it, one that names a tracking_uri keeps its own."""
    (head_start,) = [c for c in GOOD["head_start_ray_commands"] if "ray start --head" in c]
    assert f"MLFLOW_TRACKING_URI={GOOD['metadata']['uwav']['tracking_uri']}" in head_start
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_sweep(write_sweep(tmp_path)).tracking_uri == "http://127.0.0.1:5000"
    explicit = load_sweep(write_sweep(tmp_path, mlflow={"tracking_uri": "sqlite:////tmp/x.db"}))
    assert explicit.tracking_uri == "sqlite:////tmp/x.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert load_sweep(write_sweep(tmp_path)).tracking_uri == f"sqlite:///{tmp_path / 'sweeps' / 'mlflow.db'}"


# ---- several nodes: a sweep survives losing one -------------------------------------------------------


@pytest.mark.slow
def test_sweep_over_two_nodes_survives_losing_one(tmp_path):
    """Head without CPUs + two one-CPU worker nodes on 127.0.0.1 (tests/multinode_driver.py). A trial is
    parked after its epoch-2 checkpoint and its node removed: every trial still finishes, the parked one
    continues at epoch 3 on the other node, and MLflow holds exactly one finished run per trial."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_", "RAY_ADDRESS", "MLFLOW_TRACKING"))}
    # Several raylets on one machine need one token, fixed before Ray is imported (Ray 2.60 caches the mode).
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), UWAV_MULTINODE_DIR=str(work))
    driver = Path(__file__).resolve().parent / "multinode_driver.py"
    # The driver runs from an unrelated folder: trials must not depend on its working directory.
    proc = subprocess.Popen([sys.executable, str(driver), str(work)], cwd=elsewhere, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the raylets it started
            proc.wait()
    assert proc.returncode == 0, output[-3000:]
    out = json.loads((work / "outcome.json").read_text())
    removed = out["removed"]
    assert removed, "no node was removed"
    survivor = next(n for n in out["worker_node_ids"] if n != removed["node_id"])
    assert removed["node_id"] not in out["alive_nodes"] and survivor in out["alive_nodes"]

    # every trial finished all its epochs
    board = out["leaderboard"]
    assert out["finished"] and len(board) == 4
    assert all(r["status"] == "complete" and r["epochs"] == 4 for r in board), board

    # spread over both worker nodes, never the head; the parked trial resumed at epoch 3 elsewhere
    lines = [line.split() for line in (work / "epochs.log").read_text().splitlines()]
    nodes = {node for _, node, _, _ in lines}
    assert nodes == set(out["worker_node_ids"]), "trials did not use both worker nodes (or used the head)"
    parked = [(node, int(epoch)) for trial, node, _, epoch in lines if trial == removed["trial_id"]]
    assert parked == [(removed["node_id"], 1), (removed["node_id"], 2), (survivor, 3), (survivor, 4)], parked
    for trial in {t for t, _, _, _ in lines} - {removed["trial_id"]}:
        assert [int(e) for t, _, _, e in lines if t == trial] == [1, 2, 3, 4]

    # resuming is exact: the parked trial scores what an uninterrupted fit scores
    spec = load_sweep(work / "sweep.yaml")
    row = next(r for r in board if r["trial_id"] == removed["trial_id"])
    torch.set_num_threads(1)
    reference = fit(spec.trial_config(row["params"]), tiny_data(False), keep_best=False, progress=False)
    assert row["best_objective"] == pytest.approx(reference.best_objective, abs=1e-9)

    # MLflow: one finished run per trial, the restart recorded, each epoch logged once, nothing left running
    children = tracking.child_runs(out["tracking_uri"], out["parent_run_id"])
    trial_ids = [c.data.tags[tracking.TRIAL_TAG] for c in children]
    assert sorted(trial_ids) == sorted(r["trial_id"] for r in board), "duplicate or missing MLflow runs"
    assert {c.info.status for c in children} == {"FINISHED"}
    client = tracking.client(out["tracking_uri"])
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_segment_type_at_av")]
        assert steps == [1, 2, 3, 4], (child.data.tags[tracking.TRIAL_TAG], steps)
        assert ("uwav.restarts" in child.data.tags) == (child.data.tags[tracking.TRIAL_TAG] == removed["trial_id"])
    running = client.search_runs([children[0].info.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert not running, "runs left RUNNING"
    assert client.get_run(out["parent_run_id"]).info.status == "FINISHED"
