"""The package's layering: imports only go down, and there is no import cycle.

The rule, bottom to top (a module may import modules of a lower level, and modules of its own package):

    0  errors, _env, allocator              no uwav imports beyond level 0
    1  classes, io, hardware
    2  config, metrics, losses, stats, runtime, cluster
    3  data/, models/, tracking, mlflow_ui, provenance   low layers: never a stage
    4  checkpoints                           every checkpoint file
    5  pretrain, extract/                    stage 1, raw-video features
    6  pseudo/                               stage 2
    7  fit                                   the training loop
    8  train, parse                          stage 3, `uwav parse`
    9  sweep/
   10  cli                                   the edge

Checked twice: statically, over every import statement of every module (function-level ones too, so a
lazy import cannot hide a cycle), and dynamically, by importing each module alone in a fresh process
and looking at which uwav modules came with it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "uwav"

LEVELS = {
    "uwav": 0, "uwav.errors": 0, "uwav._env": 0, "uwav.allocator": 0,
    "uwav.classes": 1, "uwav.io": 1, "uwav.hardware": 1,
    "uwav.config": 2, "uwav.metrics": 2, "uwav.losses": 2, "uwav.stats": 2, "uwav.runtime": 2,
    "uwav.cluster": 2,
    "uwav.data": 3, "uwav.models": 3, "uwav.tracking": 3, "uwav.mlflow_ui": 3, "uwav.provenance": 3,
    "uwav.checkpoints": 4,
    "uwav.pretrain": 5, "uwav.extract": 5,
    "uwav.pseudo": 6,
    "uwav.fit": 7,
    "uwav.train": 8, "uwav.parse": 8,
    "uwav.sweep": 9,
    "uwav.cli": 10,
}
STAGES = ("uwav.pretrain", "uwav.pseudo", "uwav.fit", "uwav.train", "uwav.sweep", "uwav.extract", "uwav.parse")
LOW = ("uwav.data", "uwav.models", "uwav.metrics", "uwav.losses")


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = module_names()


def group(name: str) -> str:
    """The entry of LEVELS a module belongs to (its longest dotted prefix there)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in LEVELS:
            return prefix
    raise KeyError(name)


def level(name: str) -> int:
    return LEVELS[group(name)]


def path_of(name: str) -> Path:
    rel = Path(*name.split("."))
    init = PACKAGE.parent / rel / "__init__.py"
    return init if init.is_file() else (PACKAGE.parent / rel).with_suffix(".py")


def imports_of(name: str) -> set[str]:
    """uwav modules `name` imports anywhere in its source (module, class or function level)."""
    tree = ast.parse(path_of(name).read_text(encoding="utf-8"))
    package = name if path_of(name).name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from uwav import tracking` or `from uwav.pseudo import targets` names a submodule
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_module_has_a_level():
    for name in MODULES:
        assert group(name), name


def test_imports_only_go_down():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            same_package = group(target) == group(name)
            if not same_package and level(target) >= level(name):
                wrong.append(f"{name} (level {level(name)}) imports {target} (level {level(target)})")
    assert not wrong, "\n".join(wrong)


def test_low_layers_never_import_a_stage():
    wrong = [f"{name} imports {target}" for name, targets in GRAPH.items() if name.startswith(LOW)
             for target in targets if target.startswith(STAGES)]
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a path that ends where it starts, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_lazy_imports_and_cycles():
    """The static reader counts an import inside a function (the way cycles used to hide), and the cycle
    search finds one that goes through several modules."""
    assert "uwav.pseudo.run" in GRAPH["uwav.cli"]  # the CLI imports its commands lazily
    assert "uwav.sweep.tuner" in GRAPH["uwav.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# Each module alone in a fresh process: which uwav modules does importing it load? Third-party libraries
# are imported once in the parent (a fork shares them) so the children only pay for uwav itself.
PROBE = r"""
import importlib, json, os, sys
import numpy, torch, yaml  # noqa: F401  (shared by every child)
results = {}
for name in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            loaded = sorted(m for m in sys.modules if m == "uwav" or m.startswith("uwav."))
            out = {"loaded": loaded}
        except Exception as err:  # noqa: BLE001
            out = {"error": f"{type(err).__name__}: {err}"}
        os.write(w, json.dumps(out).encode())
        os.close(w)
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    results[name] = json.loads(b"".join(chunks))
print(json.dumps(results))
"""


def test_each_module_imported_alone_loads_nothing_above_it():
    proc = subprocess.run([sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True, timeout=600,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    wrong = []
    for name, result in results.items():
        if "error" in result:
            wrong.append(f"{name}: import failed: {result['error']}")
            continue
        for loaded in result["loaded"]:
            if loaded == "uwav":  # the package itself, which Python imports first, holds only the version
                continue
            if group(loaded) != group(name) and level(loaded) >= level(name):
                wrong.append(f"importing {name} (level {level(name)}) loads {loaded} (level {level(loaded)})")
    assert not wrong, "\n".join(wrong)


def test_importing_uwav_changes_no_environment_variable():
    probe = "import os; before = dict(os.environ); import uwav; print(before == dict(os.environ))"
    defaults = ("MLFLOW_DISABLE_TELEMETRY", "RAY_USAGE_STATS_ENABLED", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if k not in defaults}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          cwd=PACKAGE.parent)
    assert proc.stdout.strip() == "True", proc.stderr
