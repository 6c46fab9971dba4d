"""Readers for the three released feature layouts (data-formats.md §3-5), keyed by 11-char video id.

Every loader reads a split ONCE into preallocated contiguous float32 arrays [N, ...] and validates each
file (exists, shape, floating dtype, finite). All problems of a split are collected and raised as one
UwavError that gives the count and the first few (file, found, expected); `scan` returns them instead,
for `uwav data check`.

Layouts, relative to the folder the user names:
  han    feats/vggish/<id>.npy (10, 128), feats/res152/<id>.npy (80, 2048),
         feats/r2plus1d_18/<id>.npy (10, 512)
  valor  CLIP/features/<id>.npy (10, 768), CLAP/features/<id>.npy (64, 768),
         optional {CLIP,CLAP}/segment_pseudo_labels/<id>.npy (10, 25) int 0/1
  uwav   feats_CLIP/segment_feats/<id>.npy (T, 768), feats_CLAP/segment_feats/<id>.npy (T, 512),
         feats_{CLIP,CLAP}/event_feats/all_event_feats.npy (C, 768) / (C, 512)
  ave    the feature set the UWAV paper used for AVE (any dataset can use it): the uwav layout's
         feats_CLIP/segment_feats/<id>.npy (10, 768), feats_CLAP/segment_feats/<id>.npy (10, 512) and
         event_feats (28 rows for AVE, in the config's ave_class_order), plus HAN's
         feats/r2plus1d_18/<id>.npy (10, 512). Parser input: audio = CLAP (512), visual = CLIP ++ R(2+1)D-18
         (768 + 512 = 1280). AVE ids are the 11-char video ids; rows sharing an id share the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uwav.errors import UwavError

LAYOUTS = ("han", "valor", "uwav", "ave")
SEGMENTS = 10
SHOWN_PROBLEMS = 3  # how many problems an error message quotes before "... and N more"


@dataclass(frozen=True)
class Spec:
    """What every `<folder>/<id>.npy` of one feature kind must hold.

    shape: expected array shape; None in a position means any length >= 1 (UnAV native lengths).
    kinds: accepted numpy dtype kinds ("f" floating; "iub" integer/bool 0/1 labels).
    """

    folder: str
    shape: tuple[int | None, ...]
    kinds: str = "f"

    def describe(self) -> str:
        dims = ", ".join("L" if d is None else str(d) for d in self.shape)
        return f"({dims}) {'float' if self.kinds == 'f' else 'int 0/1'}"


SPECS: dict[str, dict[str, Spec]] = {
    "han": {
        "vggish": Spec("feats/vggish", (10, 128)),
        "res152": Spec("feats/res152", (80, 2048)),
        "r2plus1d_18": Spec("feats/r2plus1d_18", (10, 512)),
    },
    "valor": {
        "clip": Spec("CLIP/features", (10, 768)),
        "clap": Spec("CLAP/features", (64, 768)),
    },
    "uwav": {
        "clip": Spec("feats_CLIP/segment_feats", (10, 768)),
        "clap": Spec("feats_CLAP/segment_feats", (10, 512)),
    },
    "ave": {
        "clip": Spec("feats_CLIP/segment_feats", (10, 768)),
        "clap": Spec("feats_CLAP/segment_feats", (10, 512)),
        "r2plus1d_18": Spec("feats/r2plus1d_18", (10, 512)),
    },
}
VALOR_PSEUDO: dict[str, Spec] = {
    "clip_pseudo": Spec("CLIP/segment_pseudo_labels", (10, 25), "iub"),
    "clap_pseudo": Spec("CLAP/segment_pseudo_labels", (10, 25), "iub"),
}
UWAV_TEXT = {
    "clip": ("feats_CLIP/event_feats/all_event_feats.npy", 768),
    "clap": ("feats_CLAP/event_feats/all_event_feats.npy", 512),
}
RES152_FRAMES_PER_SEGMENT = 8


@dataclass(frozen=True)
class Problem:
    file: str
    found: str
    expected: str

    def __str__(self) -> str:
        return f"{self.file}: found {self.found}, expected {self.expected}"


def raise_problems(problems: Sequence[Problem], what: str) -> None:
    """One UwavError for all problems of a split: the count and the first few."""
    if not problems:
        return
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = f"; ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise UwavError(f"{len(problems)} bad {what} file(s): {shown}{more}")


# ---- one file ----------------------------------------------------------------------------------


def _read_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy version {version}")


def _shape_ok(found: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(found) == len(expected) and all(
        f >= 1 if e is None else f == e for f, e in zip(found, expected, strict=True)
    )


def _check_values(arr: np.ndarray, spec: Spec, path: Path) -> Problem | None:
    if spec.kinds == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            return Problem(str(path), f"{int((~finite).sum())} NaN/inf value(s)", "finite values")
    elif not np.isin(arr, (0, 1)).all():
        return Problem(str(path), "values other than 0/1", "0/1 labels")
    return None


def read_into(path: Path, spec: Spec, out: np.ndarray | None) -> tuple[np.ndarray | None, Problem | None]:
    """Read and validate one `.npy`; fill `out` (shape spec.shape) in place when given.

    Returns (array or None, problem or None). With `out`, the array IS `out`; without it (variable
    lengths) a fresh array of the file's dtype cast to float32 (or the int file as is). Never unpickles.
    """
    want = spec.describe()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None, Problem(str(path), "no file", f"a {want} .npy file")
    except OSError as err:
        return None, Problem(str(path), f"unreadable file ({err.strerror})", f"a {want} .npy file")
    with fh:
        try:
            shape, fortran, dtype = _read_header(fh)
        except (ValueError, OSError, SyntaxError) as err:
            return None, Problem(str(path), f"not a valid .npy file ({err})", f"a {want} .npy file")
        if dtype.kind not in spec.kinds or dtype.hasobject:
            return None, Problem(str(path), f"dtype {dtype}", want)
        if not _shape_ok(shape, spec.shape):
            return None, Problem(str(path), f"shape {shape}", want)
        count = int(np.prod(shape))
        if out is not None and dtype == out.dtype and not fortran and out.flags.c_contiguous:
            # Fast path: the file's bytes land directly in the caller's preallocated row.
            got = fh.readinto(memoryview(out).cast("B"))
            data = out if got == out.nbytes else None
        else:
            raw = fh.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                data = None
            else:
                data = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
                if out is not None:
                    out[...] = data
                    data = out
                elif spec.kinds == "f":
                    data = data.astype(np.float32)
                else:
                    data = data.copy()
        if data is None:
            return None, Problem(str(path), "a truncated file", f"{count} values of {dtype}")
    problem = _check_values(data, spec, path)
    return (None, problem) if problem else (data, None)


# ---- one split ---------------------------------------------------------------------------------


def _folder(root: str | os.PathLike, spec: Spec) -> Path:
    folder = Path(root) / spec.folder
    if not folder.is_dir():
        raise UwavError(
            f"{folder}: folder not found; expected {spec.folder}/<id>.npy files holding {spec.describe()}"
        )
    return folder


def _fill(
    root: str | os.PathLike,
    spec: Spec,
    ids: Sequence[str],
    out: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[Problem]:
    """Read `<root>/<spec.folder>/<id>.npy` into out[i] for every id (after `reduce`, if given)."""
    folder = _folder(root, spec)
    problems = []
    direct = reduce is None and out.flags.c_contiguous and out.dtype == np.float32
    scratch = None if direct else np.empty(spec.shape, dtype=np.float32 if spec.kinds == "f" else np.int64)
    for i, vid in enumerate(ids):
        target = out[i] if direct else scratch
        data, problem = read_into(folder / f"{vid}.npy", spec, target)
        if problem is not None:
            problems.append(problem)
        elif not direct:
            out[i] = data if reduce is None else reduce(data)
    return problems


def _stack(root, spec: Spec, ids: Sequence[str], what: str) -> np.ndarray:
    out = np.empty((len(ids), *spec.shape), dtype=np.float32)
    raise_problems(_fill(root, spec, ids, out), what)
    return out


def mean_of_8(res152: np.ndarray) -> np.ndarray:
    """[80, 2048] ResNet frames -> [10, 2048] segment means (method.md §9.1)."""
    return res152.reshape(SEGMENTS, RES152_FRAMES_PER_SEGMENT, -1).mean(axis=1)


def load_uwav_segments(
    root: str | os.PathLike, ids: Sequence[str], length: int | None = 10
) -> dict[str, np.ndarray]:
    """UWAV segment features: clip [N, T, 768], clap [N, T, 512]. T = `length` (10 for LLP).

    length=None takes T from the first clip file and requires every file of both kinds to have it.
    """
    if length is None:
        if not ids:
            raise UwavError("no video ids given; cannot infer the segment count T")
        data, problem = read_into(
            _folder(root, SPECS["uwav"]["clip"]) / f"{ids[0]}.npy",
            Spec(SPECS["uwav"]["clip"].folder, (None, 768)),
            None,
        )
        if problem is not None:
            raise UwavError(str(problem))
        length = data.shape[0]
    out = {}
    for key, spec in SPECS["uwav"].items():
        out[key] = _stack(root, Spec(spec.folder, (length, spec.shape[1])), ids, f"UWAV {key}")
    return out


def load_text_embeddings(root: str | os.PathLike, expected_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """UWAV class text embeddings: (clip [C, 768], clap [C, 512]) float32, rows in class-index order."""
    result = []
    for rel, dim in UWAV_TEXT.values():
        data, problem = read_into(Path(root) / rel, Spec(rel, (expected_classes, dim)), None)
        if problem is not None:
            raise UwavError(f"text embeddings: {problem}")
        result.append(data)
    return result[0], result[1]


def parser_inputs(root: str | os.PathLike, layout: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The parser's (audio [N, 10, Da], visual [N, 10, Dv]) for a layout.

    han:  audio = vggish (128); visual = concat(res152 mean of 8, r2plus1d_18) (2048 + 512 = 2560).
    uwav: audio = CLAP (512); visual = CLIP (768) (the CLIP + CLAP variant, method.md §12.6).
    ave:  audio = CLAP (512); visual = concat(CLIP, R(2+1)D-18) (768 + 512 = 1280), the AVE paper set.
    """
    if layout == "han":
        specs = SPECS["han"]
        audio = _stack(root, specs["vggish"], ids, "vggish")
        # Both visual parts go straight into one preallocated array: no concat copy of the split.
        visual = np.empty((len(ids), SEGMENTS, 2048 + 512), dtype=np.float32)
        raise_problems(_fill(root, specs["res152"], ids, visual[:, :, :2048], mean_of_8), "res152")
        raise_problems(_fill(root, specs["r2plus1d_18"], ids, visual[:, :, 2048:]), "r2plus1d_18")
        return audio, visual
    if layout == "uwav":
        feats = load_uwav_segments(root, ids, SEGMENTS)
        return feats["clap"], feats["clip"]
    if layout == "ave":
        specs = SPECS["ave"]
        audio = _stack(root, specs["clap"], ids, "CLAP")
        visual = np.empty((len(ids), SEGMENTS, 768 + 512), dtype=np.float32)
        raise_problems(_fill(root, specs["clip"], ids, visual[:, :, :768]), "CLIP")
        raise_problems(_fill(root, specs["r2plus1d_18"], ids, visual[:, :, 768:]), "r2plus1d_18")
        return audio, visual
    raise UwavError(
        f"layout {layout!r} has no per-segment parser inputs; expected 'han', 'uwav' or 'ave' "
        "(the valor layout holds VALOR's features and pseudo labels; `uwav data check` validates it)"
    )


# ---- validation without loading (uwav data check) -----------------------------------------------


@dataclass
class ScanResult:
    spec: Spec
    checked: int
    problems: list[Problem]
    first_shape: tuple[int, ...] | None  # of the first good file, for the summary
    first_dtype: str | None


def scan(root: str | os.PathLike, spec: Spec, ids: Sequence[str]) -> ScanResult:
    """Validate `<root>/<spec.folder>/<id>.npy` for every id, reading one file at a time."""
    folder = Path(root) / spec.folder
    if not folder.is_dir():
        problem = Problem(
            str(folder), "no folder", f"{len(ids)} files {spec.folder}/<id>.npy {spec.describe()}"
        )
        return ScanResult(spec, len(ids), [problem], None, None)
    fixed = all(d is not None for d in spec.shape)
    scratch = np.empty(spec.shape, dtype=np.float32 if spec.kinds == "f" else np.int64) if fixed else None
    problems: list[Problem] = []
    first_shape = first_dtype = None
    for vid in ids:
        path = folder / f"{vid}.npy"
        data, problem = read_into(path, spec, scratch)
        if problem is not None:
            problems.append(problem)
        elif first_shape is None:
            first_shape = data.shape
            with open(path, "rb") as fh:
                first_dtype = str(_read_header(fh)[2])
    return ScanResult(spec, len(ids), problems, first_shape, first_dtype)
