"""Sweep driver for the multi-node fault test (tests/test_cluster.py), run as its own process.

    python multinode_driver.py WORK_DIR

A `ray.cluster_utils.Cluster` on 127.0.0.1 mirrors cluster/gpu.yaml: a head with no CPU (the driver and
the data only) and two worker nodes with one CPU each, so the sweep's two concurrent trials land on two
different nodes. The first trial to report epoch 2 parks (after its checkpoint is saved); a thread of this
driver then removes that trial's whole node (raylet, object store, worker processes). Tune restarts the
trial from its epoch-2 checkpoint on the surviving node. Every epoch is logged to WORK_DIR/epochs.log as
`<trial id> <node id> <pid> <epoch>`, and WORK_DIR/outcome.json records the sweep's outcome.

Its own process because Ray reads RAY_AUTH_MODE once per process: the test passes token auth in the
environment, which several raylets on one machine need in Ray 2.60.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PARK_EPOCH = 2
PARK_TIMEOUT_S = 90.0


def parking_trial(params, **kwargs):
    """`sweep_trial`, plus an epoch log; the first trial to report PARK_EPOCH waits there to be killed."""
    import os

    import ray
    from ray import tune

    from uwav import fit as train
    from uwav.sweep.trainable import sweep_trial

    work = Path(os.environ["UWAV_MULTINODE_DIR"])
    node = ray.get_runtime_context().get_node_id()
    trial = tune.get_context().get_trial_id()
    original_epoch, original_report = train.Trainer.run_epoch, tune.report

    def run_epoch(self):
        report = original_epoch(self)
        with open(work / "epochs.log", "a") as fh:
            fh.write(f"{trial} {node} {os.getpid()} {report.epoch}\n")
        return report

    def report(metrics, checkpoint=None):
        original_report(metrics, checkpoint=checkpoint)  # returns once the checkpoint is in storage_path
        if metrics.get("epoch") != PARK_EPOCH:
            return
        try:  # only one trial parks, only once
            fd = os.open(work / "parked.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as fh:
            json.dump({"trial_id": trial, "node_id": node}, fh)
        deadline = time.time() + PARK_TIMEOUT_S
        while time.time() < deadline:  # the node is removed under us; the timeout only bounds a failure
            time.sleep(0.1)

    train.Trainer.run_epoch, tune.report = run_epoch, report
    try:
        sweep_trial(params, **kwargs)
    finally:
        train.Trainer.run_epoch, tune.report = original_epoch, original_report


def kill_parked_node(cluster, work: Path, removed: dict) -> None:
    """Wait for the parked trial, then remove its node once the other node has run an epoch too."""
    deadline = time.time() + PARK_TIMEOUT_S
    parked = work / "parked.json"
    while time.time() < deadline:
        if parked.is_file() and parked.stat().st_size:
            info = json.loads(parked.read_text())
            log = (work / "epochs.log").read_text().split() if (work / "epochs.log").is_file() else []
            if any(n != info["node_id"] for n in log[1::4]):
                node = next(n for n in cluster.worker_nodes if n.node_id == info["node_id"])
                cluster.remove_node(node, allow_graceful=False)
                removed.update(info, removed_at=time.time())
                return
        time.sleep(0.05)


def main(work: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster
    from sweep_fixtures import tiny_data, write_sweep

    from uwav.sweep.spec import load_sweep
    from uwav.sweep.tuner import run_sweep

    store = 100 << 20
    # Fast failure detection: the GCS declares a silent raylet dead after ~1.5 s instead of ~30 s.
    system = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3,
              "health_check_initial_delay_ms": 0}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store,
                                                            "_system_config": system})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=store) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    removed: dict = {}
    try:
        spec = load_sweep(write_sweep(work, num_samples=4, concurrent=2, name="multinode",
                                      scheduler={"type": "fifo"}))
        killer = threading.Thread(target=kill_parked_node, args=(cluster, work, removed), daemon=True)
        killer.start()
        # Ray is already initialised: run_sweep connects to it and leaves it running.
        outcome = run_sweep(spec, address=cluster.address, data=tiny_data(False), trainable=parking_trial,
                            verbose=0)
        killer.join(timeout=1)
        (work / "outcome.json").write_text(json.dumps({
            "finished": outcome.finished, "leaderboard": outcome.leaderboard,
            "tracking_uri": outcome.tracking_uri, "parent_run_id": outcome.parent_run_id,
            "worker_node_ids": [w.node_id for w in workers], "head_node_id": cluster.head_node.node_id,
            "removed": removed, "alive_nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
        }))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
