"""File I/O at the edges: atomic writes (a reader never sees a half-written file, a failure leaves nothing
behind), YAML and text reads with one-line errors, file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; rename it onto `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """yaml.safe_load of a file; a missing file or invalid YAML is one UwavError naming the file and line."""
    import yaml

    from uwav.errors import UwavError

    path = Path(path)
    if not path.is_file():
        raise UwavError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise UwavError(f"{path}:{line} invalid YAML ({getattr(err, 'problem', err)})") from None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (checkpoints, annotation files), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_text_file(path: str | os.PathLike, expected: str = "") -> str:
    """UTF-8 text of a file; missing or unreadable is one UwavError naming the file (and what it should hold)."""
    from uwav.errors import UwavError

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UwavError(f"{path}: file not found{'; expected ' + expected if expected else ''}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UwavError(f"{path}: cannot read ({err})") from None
