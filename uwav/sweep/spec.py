"""Sweep files: YAML -> a validated `SweepSpec`, checked completely before Ray or MLflow start.

A sweep file names a base pipeline config (a path relative to the sweep file) plus optional dotted
overrides, a search space over dotted config keys, the objective, Optuna's TPE settings, the paper's
settings as `points_to_evaluate`, ASHA, per-trial resources, trial counts, storage and MLflow. See
sweeps/llp.yaml for every key with comments. Every error is one line naming the sweep file and the key.

Relative `storage.path` is resolved against the working directory, like the paths inside configs.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uwav.config import Config, check_scalar, field_kind, flat_dict, load_config, with_overrides
from uwav.errors import UwavError
from uwav.io import check_output_dir, check_output_file, read_yaml
from uwav.metrics import AVE_METRIC_NAMES, METRIC_NAMES, OBJECTIVES, canonical_name

PARAM_TYPES = ("uniform", "loguniform", "int", "choice")
TIME_ATTRS = ("epoch", "training_iteration")
TOP_KEYS = ("name", "base", "overrides", "objective", "space", "points_to_evaluate", "search", "scheduler",
            "resources", "trials", "storage", "mlflow", "finish")
REFERENCES = ("paper", "default", "none")  # or a pipeline config file (see FinishSettings.reference)


@dataclass(frozen=True)
class Param:
    """One searched config key. `low`/`high` are inclusive for every numeric type."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    values: tuple = ()
    log: bool = False  # int only: sample on a log scale

    def domain(self):
        """The Ray Tune search domain (OptunaSearch converts it to an Optuna distribution)."""
        from ray import tune

        if self.type == "uniform":
            return tune.uniform(self.low, self.high)
        if self.type == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.type == "int":
            # Tune's integer domains exclude the upper bound; the sweep file's bounds are inclusive.
            return (tune.lograndint if self.log else tune.randint)(self.low, self.high + 1)
        return tune.choice(list(self.values))

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        return self.low <= value <= self.high

    def corners(self) -> tuple:
        """Extreme values used to check that combinations of searched keys stay valid."""
        return tuple(self.values) if self.type == "choice" else (self.low, self.high)

    def describe(self) -> str:
        if self.type == "choice":
            return f"choice{list(self.values)}"
        suffix = " log" if self.log else ""
        return f"{self.type}[{self.low}, {self.high}]{suffix}"


@dataclass(frozen=True)
class SearchSettings:
    seed: int = 0
    n_startup_trials: int = 10
    multivariate: bool = True
    group: bool = False
    constant_liar: bool = True


@dataclass(frozen=True)
class AshaSettings:
    enabled: bool = True
    time_attr: str = "epoch"
    grace_period: int = 10
    max_t: int = 80
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class FinishSettings:
    """The sweep file's `finish:` section: choosing the winner on several seeds, and the reference.

    top_k: after the search, re-train the top_k trials with `seeds` fresh seeds each on val and rank them
        by the mean (uwav.sweep.reevaluate); 0 (the default) keeps the search's single-seed ranking.
    reference: what `uwav train --best` compares the winner with unless --reference says otherwise:
        paper   = the base config with the first points_to_evaluate entry (the paper's settings by the
                  convention of sweeps/*.yaml); the default when the sweep has points_to_evaluate
        default = the base config (with the sweep's overrides) as is: the code's values of every searched
                  key; the default without points_to_evaluate
        none    = no reference
        a path  = a pipeline config file (relative to the sweep file; stored absolute)
    """

    top_k: int = 0
    seeds: int = 3
    reference: str = "paper"


@dataclass(frozen=True)
class SweepSpec:
    path: Path  # the sweep file
    name: str
    base_path: Path
    base: Config  # base config with the sweep's overrides applied
    space: tuple[Param, ...]
    metric: str = "segment_type_at_av"  # one of uwav.metrics.METRIC_NAMES, on val, best-so-far, maximised
    search: SearchSettings = field(default_factory=SearchSettings)
    points_to_evaluate: tuple[dict, ...] = ()
    asha: AshaSettings = field(default_factory=AshaSettings)
    cpu: float = 1.0
    gpu: float = 0.0
    num_samples: int = 16
    max_concurrent: int = 2
    max_failures: int = 2
    storage_path: Path = Path("runs/sweeps")  # absolute after loading
    tracking_uri: str = ""
    experiment: str = ""
    finish: FinishSettings = field(default_factory=FinishSettings)

    @property
    def experiment_dir(self) -> Path:
        """Tune's experiment folder; uwav also writes best_config.yaml and the leaderboard here."""
        return self.storage_path / self.name

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.space)

    def trial_config(self, params: dict[str, Any]) -> Config:
        return with_overrides(self.base, params, f"{self.path}: trial")

    def tune_space(self) -> dict:
        return {p.key: p.domain() for p in self.space}


# ---- loading -------------------------------------------------------------------------------------


class _Section:
    """Reads one mapping of the sweep file, with errors that name the file and the dotted key."""

    def __init__(self, where: str, name: str, raw: Any, allowed: tuple[str, ...]):
        self.where, self.name = where, name
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UwavError(f"{where}: {name} must be a mapping, found {type(raw).__name__}")
        unknown = sorted(set(map(str, raw)) - set(allowed))
        if unknown:
            raise UwavError(f"{where}: unknown key {name}.{unknown[0]}; allowed: {', '.join(allowed)}")
        self.raw = raw

    def key(self, k: str) -> str:
        return f"{self.name}.{k}"

    def get(self, k: str, tp: type, default: Any, lo: float | None = None, lo_open: bool = False,
            hi: float | None = None, choices: tuple | None = None) -> Any:
        value = self.raw.get(k, default)
        return check_scalar(self.where, self.key(k), value, tp, lo=lo, lo_open=lo_open, hi=hi, choices=choices)


def _flatten(where: str, name: str, raw: Any, prefix: str = "") -> dict[str, Any]:
    """Accept `overrides` as dotted keys, nested mappings, or a mix of both."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UwavError(f"{where}: {name} must be a mapping of config keys, found {type(raw).__name__}")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            out.update(_flatten(where, name, v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_key(where: str, section: str, key: Any) -> tuple[type, dataclasses.Field]:
    if not isinstance(key, str):
        raise UwavError(f"{where}: {section} keys must be dotted config keys like loss.W, found {key!r}")
    try:
        return field_kind(key)
    except UwavError as err:
        raise UwavError(f"{where}: {section}.{key}: {err}") from None


def _try_config(where: str, base: Config, values: dict[str, Any], what: str) -> Config:
    try:
        return with_overrides(base, values, where)
    except UwavError as err:
        msg = str(err).removeprefix(f"{where}: ")
        raise UwavError(f"{where}: {what} gives an invalid config: {msg}") from None


# θ is fitted once by `uwav pseudo` and every trial shares the one data load that carries it.
FIXED_BY_THETA = ("pseudo.threshold_fit", "pseudo.threshold_cuts")


def _param(where: str, base: Config, key: str, raw: Any) -> Param:
    tp, _ = _config_key(where, "space", key)
    name = f"space.{key}"
    if key in FIXED_BY_THETA:
        raise UwavError(f"{where}: {name}: θ is fitted once by `uwav pseudo`, so {key} cannot vary per trial; "
                        "set it in the base config and rerun `uwav pseudo`")
    sec = _Section(where, name, raw, ("type", "low", "high", "values", "log"))
    if "type" not in sec.raw:
        raise UwavError(f"{where}: {name}.type is missing; expected one of {', '.join(PARAM_TYPES)}")
    kind = sec.get("type", str, None, choices=PARAM_TYPES)
    if kind == "choice":
        for k in ("low", "high", "log"):
            if k in sec.raw:
                raise UwavError(f"{where}: {name}.{k} is not used by type choice (give values)")
        values = sec.raw.get("values")
        if not isinstance(values, list) or not values:
            raise UwavError(f"{where}: {name}.values must be a non-empty list, found {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise UwavError(f"{where}: {name}.values has duplicates: {values!r}")
        for v in values:
            _try_config(where, base, {key: v}, f"{name} value {v!r}")
        return Param(key=key, type=kind, values=tuple(values))
    if "values" in sec.raw:
        raise UwavError(f"{where}: {name}.values is only for type choice (give low and high)")
    if kind == "int":
        if tp is not int:
            raise UwavError(f"{where}: {name}: type int needs an integer config key; {key} is {tp.__name__}")
        low, high = sec.get("low", int, None), sec.get("high", int, None)
        log = sec.get("log", bool, False)
    else:
        if tp is not float:
            hint = "use type int" if tp is int else "use type choice"
            raise UwavError(f"{where}: {name}: type {kind} needs a float config key; {key} is "
                            f"{tp.__name__} ({hint})")
        if "log" in sec.raw:
            raise UwavError(f"{where}: {name}.log is only for type int (use type loguniform)")
        low, high = sec.get("low", float, None), sec.get("high", float, None)
        log = False
    if low >= high:
        raise UwavError(f"{where}: {name}: low ({low}) must be below high ({high})")
    if (kind == "loguniform" or log) and low <= 0:
        raise UwavError(f"{where}: {name}.low must be > 0 on a log scale; found {low}")
    for bound, v in (("low", low), ("high", high)):
        _try_config(where, base, {key: v}, f"{name}.{bound} = {v!r}")
    return Param(key=key, type=kind, low=low, high=high, log=log)


def _check_combinations(where: str, base: Config, space: tuple[Param, ...]) -> None:
    """Config rules tie at most two fields (lr_min <= lr_max, heads | d_model, warm-up <= epochs), so
    checking the extreme values of every pair finds any sampled combination that would be invalid."""
    for a, b in itertools.combinations(space, 2):
        for va, vb in itertools.product(a.corners(), b.corners()):
            _try_config(where, base, {a.key: va, b.key: vb}, f"space: {a.key} = {va!r} with {b.key} = {vb!r}")


def _points(where: str, base: Config, raw: Any, space: tuple[Param, ...]) -> tuple[dict, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UwavError(f"{where}: points_to_evaluate must be a list of mappings, found {type(raw).__name__}")
    by_key = {p.key: p for p in space}
    flat_base = flat_dict(base)
    points = []
    for i, point in enumerate(raw):
        name = f"points_to_evaluate[{i}]"
        if not isinstance(point, dict):
            raise UwavError(f"{where}: {name} must be a mapping of searched keys, found {point!r}")
        point = _flatten(where, name, point)
        unknown = sorted(set(point) - set(by_key))
        if unknown:
            raise UwavError(f"{where}: {name}.{unknown[0]} is not a searched key; searched: "
                            f"{', '.join(by_key)}")
        # Keys a point leaves out take the base config's value, so "the paper's settings" can list only
        # what differs from the base.
        full = {k: point.get(k, flat_base[k]) for k in by_key}
        for k, v in full.items():
            p = by_key[k]
            if p.type == "uniform" or p.type == "loguniform":
                if isinstance(v, int) and not isinstance(v, bool):
                    v = full[k] = float(v)
            if not p.contains(v):
                source = "" if k in point else " (from the base config)"
                raise UwavError(f"{where}: {name}.{k} = {v!r}{source} is outside the space {p.describe()}")
        _try_config(where, base, full, name)
        points.append(full)
    return tuple(points)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; nothing is started."""
    path = Path(path)
    where = str(path)
    raw = read_yaml(path, "sweep file")
    top = _Section(where, "top level", raw, TOP_KEYS)
    raw = top.raw
    if "base" not in raw:
        raise UwavError(f"{where}: base is missing; give the path of the pipeline config (relative to this file)")
    base_rel = check_scalar(where, "base", raw["base"], str)
    base_path = (path.parent / base_rel).resolve()
    if not base_path.is_file():
        raise UwavError(f"{where}: base: config file {base_path} not found")
    base = load_config(base_path)
    overrides = _flatten(where, "overrides", raw.get("overrides"))
    for key in overrides:
        _config_key(where, "overrides", key)
    base = _try_config(where, base, overrides, "overrides")
    name = check_scalar(where, "name", raw.get("name", path.stem), str)
    if not name or "/" in name or name.startswith("."):
        raise UwavError(f"{where}: name must be a plain folder name, found {name!r}")

    # search space
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise UwavError(f"{where}: space must be a non-empty mapping of dotted config keys to distributions")
    space = tuple(_param(where, base, key, spec) for key, spec in space_raw.items())
    _check_combinations(where, base, space)

    # objective
    # The dataset's own selection metric by default (LLP: segment_type_at_av, AVE: accuracy); any val score it has.
    allowed = AVE_METRIC_NAMES if base.dataset == "ave" else METRIC_NAMES
    obj = _Section(where, "objective", raw.get("objective"), ("metric", "mode"))
    metric = obj.get("metric", str, OBJECTIVES[base.dataset])
    metric = canonical_name(metric.removeprefix("val_"))  # uwav 0.1's short names (seg_type) still read
    if metric not in allowed:
        raise UwavError(f"{where}: objective.metric must be one of {', '.join(allowed)} (val scores of "
                        f"{base.dataset}); found {obj.raw.get('metric')!r}")
    obj.get("mode", str, "max", choices=("max",))

    srch = _Section(where, "search", raw.get("search"),
                    ("algorithm", "seed", "n_startup_trials", "multivariate", "group", "constant_liar"))
    srch.get("algorithm", str, "optuna", choices=("optuna",))
    search = SearchSettings(
        seed=srch.get("seed", int, 0, lo=0),
        n_startup_trials=srch.get("n_startup_trials", int, 10, lo=0),
        multivariate=srch.get("multivariate", bool, True),
        group=srch.get("group", bool, False),
        constant_liar=srch.get("constant_liar", bool, True),
    )
    if search.group and not search.multivariate:
        raise UwavError(f"{where}: search.group needs search.multivariate: true (an Optuna rule)")

    points = _points(where, base, raw.get("points_to_evaluate"), space)

    # ASHA: the reachable epoch counts decide the defaults and the checks
    by_key = {p.key: p for p in space}
    max_epochs = max(by_key["train.epochs"].corners()) if "train.epochs" in by_key else base.train.epochs
    max_warmup = (max(by_key["train.warmup_epochs"].corners()) if "train.warmup_epochs" in by_key
                  else base.train.warmup_epochs)
    sch = _Section(where, "scheduler", raw.get("scheduler"),
                   ("type", "time_attr", "grace_period", "max_t", "reduction_factor"))
    kind = sch.get("type", str, "asha", choices=("asha", "fifo"))
    asha = AshaSettings(
        enabled=kind == "asha",
        time_attr=sch.get("time_attr", str, "epoch", choices=TIME_ATTRS),
        grace_period=sch.get("grace_period", int, max(1, max_warmup), lo=1),
        max_t=sch.get("max_t", int, max_epochs, lo=1),
        reduction_factor=sch.get("reduction_factor", float, 3.0, lo=1.0, lo_open=True),
    )
    if asha.enabled:
        if asha.grace_period < max_warmup:
            raise UwavError(f"{where}: scheduler.grace_period ({asha.grace_period}) must be at least the warm-up "
                            f"({max_warmup} epochs): the learning rate only peaks after it (method.md §14)")
        if asha.max_t > max_epochs:
            raise UwavError(f"{where}: scheduler.max_t ({asha.max_t}) exceeds the most epochs a trial trains "
                            f"({max_epochs})")
        if asha.grace_period > asha.max_t:
            raise UwavError(f"{where}: scheduler.grace_period ({asha.grace_period}) must not exceed "
                            f"scheduler.max_t ({asha.max_t})")

    res = _Section(where, "resources", raw.get("resources"), ("cpu", "gpu"))
    cpu = res.get("cpu", float, 1.0, lo=0.0, lo_open=True)
    # A trial trains on one device (no data parallelism): more than one GPU per trial would sit idle.
    gpu = res.get("gpu", float, 0.0, lo=0.0, hi=1.0)
    device = base.train.device
    if gpu > 0 and device == "cpu":
        raise UwavError(f"{where}: resources.gpu is {gpu:g} but the base config trains on the CPU "
                        "(train.device: cpu); set train.device to auto or cuda, or resources.gpu to 0")
    if gpu == 0 and device == "cuda":
        raise UwavError(f"{where}: train.device is cuda but resources.gpu is 0, and Ray hides every GPU from a "
                        "trial that asks for none; give each trial a share (e.g. resources.gpu: 0.25)")

    tr = _Section(where, "trials", raw.get("trials"), ("num_samples", "max_concurrent", "max_failures"))
    num_samples = tr.get("num_samples", int, 16, lo=1)
    if len(points) > num_samples:
        raise UwavError(f"{where}: points_to_evaluate has {len(points)} points but trials.num_samples is "
                        f"{num_samples}")
    max_concurrent = tr.get("max_concurrent", int, 2, lo=1)
    max_failures = tr.get("max_failures", int, 2, lo=0)

    st = _Section(where, "storage", raw.get("storage"), ("path",))
    storage_raw = st.get("path", str, str(Path(base.paths.out) / "sweeps"))
    if "://" in storage_raw:
        # Path() would turn s3://bucket/x into a local folder named "s3:"; the sweep writes its files by
        # atomic rename, which object stores do not have.
        raise UwavError(f"{where}: storage.path {storage_raw!r} is a URI; sweeps store to a local or mounted "
                        "path (on a cluster, a folder on the shared mount every node sees: cluster/README.md)")
    storage = Path(storage_raw).expanduser().resolve()

    ml = _Section(where, "mlflow", raw.get("mlflow"), ("tracking_uri", "experiment"))
    # Empty: the server in MLFLOW_TRACKING_URI when set (cluster/gpu.yaml exports it for every job on the
    # head), else a sqlite file beside the sweeps.
    tracking_uri = (ml.get("tracking_uri", str, "") or os.environ.get("MLFLOW_TRACKING_URI", "")
                    or f"sqlite:///{storage / 'mlflow.db'}")
    experiment = ml.get("experiment", str, "") or f"uwav-{name}"
    finish = _finish(where, path, raw.get("finish"), points, num_samples)

    return SweepSpec(path=path.resolve(), name=name, base_path=base_path, base=base, space=space,
                     metric=metric, search=search, points_to_evaluate=points, asha=asha, cpu=cpu, gpu=gpu,
                     num_samples=num_samples, max_concurrent=max_concurrent, max_failures=max_failures,
                     storage_path=storage, tracking_uri=tracking_uri, experiment=experiment, finish=finish)


def _finish(where: str, path: Path, raw: Any, points: tuple[dict, ...], num_samples: int) -> FinishSettings:
    fin = _Section(where, "finish", raw, ("top_k", "seeds", "reference"))
    top_k = fin.get("top_k", int, 0, lo=0)
    if top_k > num_samples:
        raise UwavError(f"{where}: finish.top_k ({top_k}) exceeds trials.num_samples ({num_samples})")
    if "seeds" in fin.raw and top_k == 0:
        raise UwavError(f"{where}: finish.seeds is set but finish.top_k is 0, so nothing is re-evaluated; "
                        f"set finish.top_k (e.g. 3) or drop finish.seeds")
    seeds = fin.get("seeds", int, 3, lo=1)
    reference = fin.get("reference", str, "paper" if points else "default")
    if reference == "paper" and not points:
        raise UwavError(f"{where}: finish.reference is paper, the first points_to_evaluate entry, but the sweep "
                        f"has no points_to_evaluate; give one, or use default, none or a config file")
    if reference not in REFERENCES:
        file = (path.parent / reference).resolve()
        if not file.is_file():
            raise UwavError(f"{where}: finish.reference: {reference!r} is neither {', '.join(REFERENCES)} nor a "
                            f"config file ({file} not found)")
        load_config(file)  # validated now, not after the search
        reference = str(file)
    return FinishSettings(top_k=top_k, seeds=seeds, reference=reference)


def spec_summary(spec: SweepSpec) -> dict[str, Any]:
    """Sweep settings as flat strings: the parent MLflow run's params and the sweep's metadata file."""
    out: dict[str, Any] = {
        "sweep.name": spec.name, "sweep.base": str(spec.base_path), "sweep.objective": f"val_{spec.metric}",
        "sweep.num_samples": spec.num_samples, "sweep.max_concurrent": spec.max_concurrent,
        "sweep.max_failures": spec.max_failures, "sweep.cpu": spec.cpu, "sweep.gpu": spec.gpu,
        "sweep.points_to_evaluate": len(spec.points_to_evaluate),
    }
    out.update({f"search.{k}": v for k, v in dataclasses.asdict(spec.search).items()})
    out.update({f"scheduler.{k}": v for k, v in dataclasses.asdict(spec.asha).items()})
    out.update({f"space.{p.key}": p.describe() for p in spec.space})
    out.update({f"finish.{k}": v for k, v in dataclasses.asdict(spec.finish).items()})
    return out


def check_sweep_outputs(spec: SweepSpec) -> None:
    """The sweep's folder and its MLflow sqlite store must be writable or creatable: refused before Ray starts."""
    check_output_dir(spec.experiment_dir, f"sweep folder (storage.path of {spec.path})")
    if spec.tracking_uri.startswith("sqlite:///"):
        db = Path(spec.tracking_uri.removeprefix("sqlite:///"))
        check_output_file(db, f"MLflow store ({spec.path}: mlflow)")
