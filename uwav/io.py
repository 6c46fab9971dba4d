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
    """Yield a temporary path in the destination folder; rename it onto `path` only on success.

    Whatever stops the write (an error, Ctrl-C, SIGTERM turned into an exception by the CLI) removes the
    temporary file; an OSError without a file name (a full disk) is raised again naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp_path = Path(tmp)
        os.close(fd)
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if err.filename is None or (tmp_path is not None and str(err.filename) == str(tmp_path)):
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> None:
    """UwavError unless `path` is a writable folder or can be created; called before long work starts."""
    from uwav.errors import UwavError

    path = Path(path)
    probe = _nearest_existing(path)
    if not probe.is_dir():
        if probe == path:
            raise UwavError(f"{path}: is a file; the {what} must be a folder")
        raise UwavError(f"{path}: cannot create the {what}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UwavError(f"{path}: cannot write the {what}: {probe} is not writable")


def check_output_file(path: str | os.PathLike, what: str = "output file") -> None:
    """UwavError unless `path` can be written as a file (its folder writable or creatable)."""
    from uwav.errors import UwavError

    path = Path(path)
    if path.is_dir():
        raise UwavError(f"{path}: is a folder; the {what} must be a file path")
    if path.exists() and not path.is_file():
        raise UwavError(f"{path}: not a regular file; the {what} would replace it")
    probe = _nearest_existing(path.parent)
    if not probe.is_dir():
        raise UwavError(f"{path}: cannot write the {what}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UwavError(f"{path}: cannot write the {what}: {probe} is not writable")


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


def _strict_loader():
    """yaml.SafeLoader that refuses a mapping with a repeated key (PyYAML silently keeps the last one)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            first_line: dict = {}
            for key_node, _ in node.value:
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except (TypeError, yaml.YAMLError):
                    continue  # the base class reports unhashable keys with their position
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first_line[key]}, again at line {line})",
                        key_node.start_mark)
                first_line[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_yaml(text: str, where: str, value: bool = False) -> Any:
    """YAML text -> data, strictly (repeated keys refused); any problem is one UwavError `where:line:col: ...`
    (`value`: a one-line value such as a --set item, named without line and column)."""
    import yaml

    from uwav.errors import UwavError

    try:
        data = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
        if _contains_itself(data):
            raise UwavError(f"{where}: invalid YAML: an alias refers to a node that contains it (a cycle)")
        return data
    except yaml.reader.ReaderError as err:  # a control character: binary content
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise UwavError(f"{where}: not YAML text (control character {code:#04x} at offset {err.position}; "
                        "binary?)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None and not value else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        context = f" ({context})" if context else ""
        raise UwavError(f"{where}{at}: invalid YAML{' value' if value else ''}: {problem}{context}") from None
    except RecursionError:
        raise UwavError(f"{where}: invalid YAML: nested too deeply") from None


def _contains_itself(data: Any) -> bool:
    """Whether a loaded YAML structure has a cycle (`a: &x [*x]`), which no config key can hold."""
    done: set[int] = set()
    on_path: set[int] = set()

    def visit(node: Any) -> bool:
        if not isinstance(node, (dict, list)) or id(node) in done:
            return False
        if id(node) in on_path:
            return True
        on_path.add(id(node))
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        found = any(visit(child) for child in children)
        on_path.discard(id(node))
        done.add(id(node))
        return found

    return visit(data)


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """A YAML file read strictly: missing, a folder, not UTF-8, invalid YAML or a repeated key is one
    UwavError naming the file (and line and column where there is one)."""
    path = Path(path)
    return parse_yaml(read_text_file(path, what=what), str(path))


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (checkpoints, annotation files), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_text_file(path: str | os.PathLike, expected: str = "", what: str = "file") -> str:
    """UTF-8 text of a file (a BOM allowed); missing, a folder, binary or unreadable is one UwavError naming
    the file (and what it should hold)."""
    from uwav.errors import UwavError

    path = Path(path)
    hint = f"; expected {expected}" if expected else ""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UwavError(f"{path}: {what} not found{hint}") from None
    except IsADirectoryError:
        raise UwavError(f"{path}: is a folder; expected a {what}{hint}") from None
    except OSError as err:
        raise UwavError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UwavError(f"{path}: not a UTF-8 text {what} (byte 0x{data[err.start]:02x} at offset {err.start}; "
                        f"binary?){hint}") from None
