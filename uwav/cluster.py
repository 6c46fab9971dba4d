"""`uwav cluster validate`: check a Ray cluster-launcher YAML offline, before `ray up` spends money.

Two layers:
1. Ray's own check, as `ray up` does it: the config is filled out with the provider's defaults
   (`prepare_config`: defaults.yaml, merged setup commands, per-type min/max workers) and validated
   against the installed Ray's ray-schema.json (`validate_config`). The provider bootstrap that follows
   in `ray up` (boto3 calls: key pairs, subnets, IAM) needs the cloud and is left out.
2. This project's rules, on the prepared config (so Ray's defaults are judged too):
   - the head runs no trials: its node type advertises CPU 0 (every trial asks for cpu > 0) and no GPU;
   - trials resume on any node: `metadata.uwav.storage_path` is a path under `metadata.uwav.shared_mount`
     that the node commands mount (not s3:// or gs://: `uwav sweep` stores to a path, see its
     `storage.path`);
   - servers are not public: no MLflow `--host` and no Ray `--dashboard-host` on 0.0.0.0 / :: unless
     `metadata.uwav.public_servers: true`;
   - Ray's token auth is on in the start commands (Ray 2.60 enables it only for local instances);
   - the project is installed at the driver's version (a wheel, a pinned git commit or uwav==X);
   - no credentials in the file (the nodes use an IAM instance profile).

Every problem is one UwavError line naming the file and the key.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uwav.errors import UwavError
from uwav.io import read_yaml

PUBLIC_HOSTS = {"0.0.0.0", "::", "[::]", "*", "0"}
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands")
START_LISTS = ("head_start_ray_commands", "worker_start_ray_commands")

# Mapping keys that name a secret (identifier-like keys only: file_mounts' keys are paths).
_SECRET_KEY = re.compile(r"(access_key(_id)?|secret(_access_key)?|session_token|password|passwd|api_key|token)$",
                         re.IGNORECASE)
# Secrets inside strings (commands, node_config values): AWS key ids, env assignments, PEM keys.
_SECRET_VALUE = re.compile(
    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\b(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|RAY_AUTH_TOKEN|MLFLOW_TRACKING_PASSWORD"
    r"|MLFLOW_TRACKING_TOKEN|HF_TOKEN|WANDB_API_KEY)\s*="
    r"|aws\s+configure\s+set\s+\S*(secret|key_id|token)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
    re.IGNORECASE)
_MLFLOW = re.compile(r"\bmlflow\s+(server|ui)\b(?P<args>.*)")
_HOST_FLAG = re.compile(r"(?:--host|-h)(?:\s+|=)['\"]?(?P<host>[^\s'\";&|]+)")
_DASHBOARD_HOST = re.compile(r"--dashboard-host(?:\s+|=)['\"]?(?P<host>[^\s'\";&|]+)")
_NUM_FLAG = re.compile(r"--num-(?P<kind>cpus|gpus)(?:\s+|=)['\"]?(?P<n>[0-9.]+)")
_AUTH_MODE = re.compile(r"\bRAY_AUTH_MODE=['\"]?(?P<mode>\w+)")
_PINNED_INSTALL = re.compile(r"pip3?\s+install\b.*(\.whl\b|@[0-9a-f]{7,40}\b|\buwav==\S+)")


@dataclass(frozen=True)
class ClusterSummary:
    """What a valid cluster file declares, for the one-paragraph report of the CLI."""

    path: Path
    ray_version: str
    provider: str
    head_node_type: str
    workers: dict[str, tuple[int, int, bool]]  # node type -> (min_workers, max_workers, spot)
    max_workers: int
    storage_path: str
    shared_mount: str  # every node mounts it; storage_path lies under it

    def describe(self) -> str:
        workers = ", ".join(f"{name} ({'spot' if spot else 'on-demand'}, {lo}-{hi})"
                            for name, (lo, hi, spot) in self.workers.items())
        storage = f"{self.storage_path} (shared mount {self.shared_mount})"
        return (f"{self.path}: valid for Ray {self.ray_version} ({self.provider}); head {self.head_node_type!r} "
                f"runs no trials; workers {workers or 'none'}, at most {self.max_workers}; storage {storage}")


def load_cluster_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    raw = read_yaml(path, "cluster file")
    if not isinstance(raw, dict):
        raise UwavError(f"{path}: a cluster file must be a mapping of Ray cluster keys, found "
                        f"{type(raw).__name__}")
    return raw


def validate_cluster(path: str | Path) -> ClusterSummary:
    """Validate a cluster-launcher YAML offline; raise UwavError on the first problem."""
    path = Path(path)
    where = str(path)
    raw = load_cluster_yaml(path)
    check_no_credentials(where, raw)
    _check_shape(where, raw)
    config = ray_prepared(where, raw)
    uwav = _metadata(where, config)
    head = check_head_runs_no_trials(where, config)
    storage, mount = check_storage(where, config, uwav)
    check_servers_private(where, config, uwav)
    check_token_auth(where, config)
    check_project_pinned(where, config, uwav)

    import ray

    workers = {}
    for name, node in config["available_node_types"].items():
        if name != head:
            spot = (node.get("node_config") or {}).get("InstanceMarketOptions", {}).get("MarketType") == "spot"
            workers[name] = (int(node["min_workers"]), int(node["max_workers"]), spot)
    return ClusterSummary(path=path, ray_version=ray.__version__, provider=config["provider"]["type"],
                          head_node_type=head, workers=workers, max_workers=int(config["max_workers"]),
                          storage_path=storage, shared_mount=mount)


# ---- layer 1: Ray's schema ----------------------------------------------------------------------------


def _check_shape(where: str, raw: dict) -> None:
    """What Ray's own code would trip over with a KeyError or an unclear message."""
    provider = raw.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        raise UwavError(f"{where}: provider.type is missing; expected e.g. `provider: {{type: aws, region: ...}}`")
    types = raw.get("available_node_types")
    if not isinstance(types, dict) or not types:
        raise UwavError(f"{where}: available_node_types is missing; expected a mapping of node types (the head "
                        f"and the GPU workers)")
    if "head_node_type" not in raw:
        raise UwavError(f"{where}: head_node_type is missing; expected one of {', '.join(map(str, types))}")
    if raw["head_node_type"] not in types:
        raise UwavError(f"{where}: head_node_type {raw['head_node_type']!r} is not in available_node_types "
                        f"({', '.join(map(str, types))})")


def ray_prepared(where: str, raw: dict) -> dict:
    """The config as `ray up` sees it after filling in defaults, validated against Ray's schema."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        config = prepare_config(copy.deepcopy(raw))
        validate_config(config)
    except jsonschema.ValidationError as err:
        key = _dotted(err.absolute_path) or "top level"
        message = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        raise UwavError(f"{where}: {key}: {message} (Ray's cluster schema)") from None
    # Ray's own checks raise these for a bad file; NotImplementedError is its answer to an unknown
    # `provider.type` (ray/autoscaler/_private/providers.py), not a stub here.
    except (ValueError, RuntimeError, KeyError, NotImplementedError, AssertionError) as err:
        raise UwavError(f"{where}: rejected by Ray's cluster config check: {err}") from None
    return config


def _dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# ---- layer 2: the project's rules ---------------------------------------------------------------------


def _metadata(where: str, config: dict) -> dict:
    meta = config.get("metadata") or {}
    meta = meta.get("uwav") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        raise UwavError(f"{where}: metadata.uwav is missing; expected at least storage_path (s3://, gs:// or a "
                        f"path under shared_mount), see cluster/gpu.yaml")
    return meta


def check_no_credentials(where: str, raw: Any, key: str = "") -> None:
    """Walk every key and string; secrets belong to the instance profile, never to the file."""
    if isinstance(raw, dict):
        for k, v in raw.items():
            sub = f"{key}.{k}" if key else str(k)
            name = str(k)
            if re.fullmatch(r"[A-Za-z_][\w-]*", name) and _SECRET_KEY.search(name) and v not in (None, ""):
                raise UwavError(f"{where}: {sub}: credentials in the cluster file; give the nodes an IAM "
                                f"instance profile (node_config.IamInstanceProfile) instead")
            check_no_credentials(where, v, sub)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            check_no_credentials(where, v, f"{key}[{i}]")
    elif isinstance(raw, str) and _SECRET_VALUE.search(raw):
        raise UwavError(f"{where}: {key or 'top level'}: a credential or secret in the cluster file "
                        f"({_hint(_SECRET_VALUE.search(raw).group(0))}); use the IAM instance profile, and "
                        f"file_mounts for Ray's token file")


def _hint(secret: str) -> str:
    """Enough of a found secret to locate it, never the secret itself."""
    return secret.split("=")[0] + "=..." if "=" in secret else secret[:4] + "..."


def check_head_runs_no_trials(where: str, config: dict) -> str:
    head = config["head_node_type"]
    resources = config["available_node_types"][head].get("resources") or {}
    key = f"available_node_types.{head}.resources"
    if resources.get("CPU") != 0:
        found = "absent (Ray then advertises every vCPU)" if "CPU" not in resources else resources["CPU"]
        raise UwavError(f"{where}: {key}.CPU is {found}; expected 0 so the head (driver, MLflow, GCS) runs no "
                        f"trials: every trial asks for cpu > 0")
    if resources.get("GPU", 0) != 0:
        raise UwavError(f"{where}: {key}.GPU is {resources['GPU']}; expected 0 or absent: the head runs no "
                        f"trials, GPUs belong to the worker node types")
    for i, cmd in enumerate(_commands(config, "head_start_ray_commands")):
        for m in _NUM_FLAG.finditer(cmd):
            if float(m.group("n")) > 0:
                raise UwavError(f"{where}: head_start_ray_commands[{i}]: --num-{m.group('kind')}="
                                f"{m.group('n')} gives the head resources for trials; expected 0")
    workers = [n for n in config["available_node_types"] if n != head]
    if not workers:
        raise UwavError(f"{where}: available_node_types has only the head {head!r}; expected worker node types "
                        f"that run the trials")
    return head


def check_storage(where: str, config: dict, meta: dict) -> tuple[str, str]:
    storage = meta.get("storage_path")
    if not isinstance(storage, str) or not storage:
        raise UwavError(f"{where}: metadata.uwav.storage_path is missing; expected a path under "
                        f"metadata.uwav.shared_mount (Tune's storage_path: trials resume from it on any node)")
    if "://" in storage:
        raise UwavError(f"{where}: metadata.uwav.storage_path {storage!r} is a URI; `uwav sweep` stores to a path, "
                        f"so expected one under metadata.uwav.shared_mount (a file system every node mounts)")
    mount = meta.get("shared_mount")
    if not isinstance(mount, str) or not mount.startswith("/"):
        raise UwavError(f"{where}: metadata.uwav.storage_path {storage!r} is local to each node; expected a path "
                        f"under an absolute metadata.uwav.shared_mount mounted on every node")
    mount = mount.rstrip("/") or "/"
    if mount == "/" or not (storage == mount or storage.startswith(mount + "/")):
        raise UwavError(f"{where}: metadata.uwav.storage_path {storage!r} is not under metadata.uwav.shared_mount "
                        f"{mount!r}; trials on other nodes would not see its checkpoints")
    if not any(re.search(r"\bmount\b", cmd) and mount in cmd for _, _, cmd in _all_commands(config)):
        raise UwavError(f"{where}: metadata.uwav.shared_mount {mount!r} is not mounted by the node commands; "
                        f"expected a `mount ... {mount}` in initialization_commands or setup_commands")
    return storage, mount


def check_servers_private(where: str, config: dict, meta: dict) -> None:
    if meta.get("public_servers") is True:  # the user's explicit opt-in
        return
    for list_name, i, cmd in _all_commands(config):
        for pattern, what in ((_DASHBOARD_HOST, "Ray's dashboard"), (None, "the MLflow server")):
            if pattern is None:
                m = _MLFLOW.search(cmd)
                m = _HOST_FLAG.search(m.group("args")) if m else None
            else:
                m = pattern.search(cmd)
            if m and m.group("host") in PUBLIC_HOSTS:
                raise UwavError(f"{where}: {list_name}[{i}]: {what} binds {m.group('host')}, reachable by anyone "
                                f"who can reach the node; bind 127.0.0.1 (port-forward to it) or set "
                                f"metadata.uwav.public_servers: true")


def check_token_auth(where: str, config: dict) -> None:
    for list_name in START_LISTS:
        modes = [(i, m.group("mode")) for i, c in enumerate(_commands(config, list_name))
                 for m in _AUTH_MODE.finditer(c)]
        for i, mode in modes:
            if mode.lower() != "token":
                raise UwavError(f"{where}: {list_name}[{i}]: RAY_AUTH_MODE={mode}; expected token (anyone who "
                                f"reaches the cluster could run code on it)")
        if not modes:
            raise UwavError(f"{where}: {list_name}: no RAY_AUTH_MODE=token before `ray start`; Ray 2.60 leaves "
                            f"clusters unauthenticated by default (token file via file_mounts, see cluster/gpu.yaml)")


def check_project_pinned(where: str, config: dict, meta: dict) -> None:
    if meta.get("project_in_image") is True:  # a custom image that already holds the driver's build
        return
    lists = ("setup_commands", "head_setup_commands", "worker_setup_commands")
    if not any(_PINNED_INSTALL.search(c) for name in lists for c in _commands(config, name)):
        raise UwavError(f"{where}: setup_commands: no command installs uwav at the driver's version; expected "
                        f"`pip install` of a wheel from file_mounts, git+...@<commit> or uwav==<version> (or "
                        f"metadata.uwav.project_in_image: true)")


def _commands(config: dict, name: str) -> list[str]:
    return [str(c) for c in (config.get(name) or [])]


def _all_commands(config: dict):
    for name in COMMAND_LISTS:
        for i, cmd in enumerate(_commands(config, name)):
            yield name, i, cmd
    for node_type, node in config["available_node_types"].items():
        for name in ("initialization_commands", "worker_setup_commands"):
            for i, cmd in enumerate(node.get(name) or []):
                yield f"available_node_types.{node_type}.{name}", i, str(cmd)
