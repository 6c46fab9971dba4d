"""What produced a number: code version, library versions, device, config and data identity.

`run_provenance(config, device, data_meta)` returns one JSON-able dict recorded with every run (sweep
parent, trials, final runs, the files `uwav train` writes); `flat_tags` turns it into MLflow tags.

  code          git commit and dirty flag of the checkout uwav runs from, or the installed version when
                uwav is not run from a git checkout (git missing, or an installed wheel)
  versions      python, torch, ray, optuna, mlflow, numpy (from the installed metadata; nothing imported)
  device        what the run trains on (uwav.hardware.device_report once it exists)
  config_sha256 SHA-256 of the resolved config (every key, as canonical JSON)
  annotations   SHA-256 of each file in the annotation folder (plus paths.eval_audio / eval_visual)
  audio_gt      the LLP dense audio GT identified by checksum: "current" (the 2024-fixed upstream
                AVVP_eval_audio.csv), "legacy" (the pre-April-2024 one) or "unknown file"
  features      a fingerprint of each folder under the feature roots that holds files: file count,
                total bytes, a hash of the listing (names and sizes) and of the content of a fixed,
                evenly spaced sample of files
  generator     SHA-256 of the generator checkpoint, and the one the logits cache was computed from

The data part costs one stat per feature file plus a few whole-file hashes; a sweep computes it once on
the driver and gives it to every trial.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from uwav.io import file_sha256

# ---- the LLP audio ground truth, identified by checksum ------------------------------------------

# SHA-256 of the two published versions of AVVP_eval_audio.csv (data-formats.md §2.7): the file in the
# current LLP repository (three lines fixed on 2024-04-16) and the one every pre-April-2024 paper used.
AUDIO_GT_CURRENT_SHA256 = "d5435664668bec6e7eafb39059d2f424ed2682f6b55395262fc3cb691b7d0778"
AUDIO_GT_LEGACY_SHA256 = "249122f65501d8d611c0027a48643798fe622bedee60f7e6224b5a8e3c02f886"
AUDIO_GT_VERSIONS = {AUDIO_GT_CURRENT_SHA256: "current", AUDIO_GT_LEGACY_SHA256: "legacy"}
AUDIO_GT_WORDS = {
    "current": "current upstream LLP audio GT (2024-fixed)",
    "legacy": "legacy LLP audio GT (pre-April-2024, as in papers before then)",
    "unknown file": "unknown file (neither the current nor the legacy LLP audio GT)",
    "not LLP": "not LLP (AVE scores against Annotations.txt, recorded with the annotations)",
}
NOT_LLP = {"file": None, "sha256": None, "version": "not LLP", "exact": False}


def _normalised(data: bytes) -> bytes:
    """CRLF -> LF and exactly one final newline: a copy re-saved on Windows still has the same rows."""
    return data.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n"


def audio_gt_identity(path: str | os.PathLike | None) -> dict[str, Any]:
    """{"file", "sha256", "version": current | legacy | unknown file, "exact"}.

    `exact` is False when only the line endings differ from a published file (the parsed rows, and so
    the scores, are the same). A missing file or a non-LLP dataset gives "unknown file" with sha256 None.
    """
    out: dict[str, Any] = {"file": None if path is None else str(path), "sha256": None, "version": "unknown file",
                           "exact": False}
    if path is None or not Path(path).is_file():
        return out
    data = Path(path).read_bytes()
    out["sha256"] = hashlib.sha256(data).hexdigest()
    if out["sha256"] in AUDIO_GT_VERSIONS:
        out.update(version=AUDIO_GT_VERSIONS[out["sha256"]], exact=True)
        return out
    relaxed = hashlib.sha256(_normalised(data)).hexdigest()
    if relaxed in AUDIO_GT_VERSIONS:  # the published files already are in normal form
        out["version"] = AUDIO_GT_VERSIONS[relaxed]
    return out


def describe_audio_gt(identity: dict[str, Any] | None) -> str:
    """One line for the console: version in words, file, short checksum."""
    if not identity:
        return "audio GT: not recorded"
    words = AUDIO_GT_WORDS.get(identity.get("version"), str(identity.get("version")))
    sha = identity.get("sha256")
    tail = f", sha256 {sha[:12]}…" if sha else ", file not found" if identity.get("file") else ""
    if identity.get("version") in ("current", "legacy") and not identity.get("exact", True):
        tail += ", same rows with different line endings"
    return f"audio GT: {words}: {identity.get('file')}{tail}"


def audio_gt_warning(ours: dict[str, Any] | None, theirs: dict[str, Any] | None, what: str) -> str | None:
    """A warning when a number made with another audio GT file is compared with ours; None when they agree.

    `what` names the other number ("the reference run", "results.json of ..."). Val is identical under
    the two published files; test differs on two videos (at most ~0.04 points, data-formats.md §2.7).
    """
    if (ours or {}).get("version") == "not LLP" and (theirs or {}).get("version") == "not LLP":
        return None
    if not ours or not theirs:
        missing = "this run" if not ours else what
        return f"warning: {missing} records no audio GT identity; cannot check it was scored with the same file"
    same = ours.get("version") == theirs.get("version")
    if same and ours.get("version") != "unknown file":
        return None
    if same and ours.get("sha256") == theirs.get("sha256"):
        return None  # the same unrecognised file (e.g. a synthetic set's) on both sides
    return (f"warning: {what} was scored with the {theirs.get('version')} audio GT ({theirs.get('file')}), this "
            f"run with the {ours.get('version')} one ({ours.get('file')}); test numbers are not comparable to "
            f"the last digit (the published files differ on two test videos, val is identical)")


# ---- hashing --------------------------------------------------------------------------------------------

SAMPLE_FILES = 8  # per folder; evenly spaced in name order, first and last included
WHOLE_FILE_LIMIT = 16 << 20  # larger sampled files are hashed by their first and last MiB and their size
_CHUNK = 1 << 20


def _sample_hash(path: Path) -> str:
    """SHA-256 of a sampled file; a large one by its first and last MiB and its size (cost stays bounded)."""
    size = path.stat().st_size
    if size <= WHOLE_FILE_LIMIT:
        return file_sha256(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(_CHUNK))
        fh.seek(size - _CHUNK)
        digest.update(fh.read(_CHUNK))
    digest.update(str(size).encode())
    return digest.hexdigest()


def _sample(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def folder_fingerprint(folder: str | os.PathLike, sample: int = SAMPLE_FILES) -> dict[str, Any]:
    """{"files", "bytes", "listing_sha256", "sample_sha256", "sampled"} of the files directly in `folder`.

    The listing hash covers every file's name and size; the sample hash covers the content of `sample`
    files at evenly spaced positions of the name order (first and last included), so the cost does not
    grow with the folder (one stat per file). A changed size, an added, removed or renamed file, or a
    changed sampled file changes the fingerprint; a same-size edit of an unsampled file does not.
    """
    folder = Path(folder)
    entries = sorted((e.name, e.stat().st_size) for e in os.scandir(folder) if e.is_file())
    listing = hashlib.sha256()
    for name, size in entries:
        listing.update(f"{name}\t{size}\n".encode())
    picked = [entries[i][0] for i in _sample(len(entries), sample)]
    content = hashlib.sha256()
    for name in picked:
        content.update(f"{name}\t{_sample_hash(folder / name)}\n".encode())
    return {"files": len(entries), "bytes": sum(s for _, s in entries), "listing_sha256": listing.hexdigest(),
            "sample_sha256": content.hexdigest(), "sampled": len(picked)}


def tree_fingerprints(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """{folder relative to root: fingerprint} for every folder under `root` that directly holds files."""
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if files:
            rel = Path(folder).relative_to(root).as_posix()
            out[rel] = folder_fingerprint(folder)
    return out


# ---- code, libraries, device -------------------------------------------------------------------------

LIBRARIES = ("torch", "ray", "optuna", "mlflow", "numpy")


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not take the index lock of a live tree
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, env=env)
    except (OSError, subprocess.SubprocessError):  # git missing, not executable, hung
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"version", "source": git | installed, "git_commit", "git_dirty"} of the uwav code that runs.

    `root` is the folder holding the uwav package (default: where this module was imported from). It
    counts as a checkout only when it is the top of a git work tree: an installed copy inside some other
    repository (a virtualenv in a project) must not report that repository's commit.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    out: dict[str, Any] = {"version": _installed_version("uwav"), "source": "installed", "git_commit": None,
                           "git_dirty": None}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != root.resolve():
        return out
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain")
    if commit is None or status is None:  # e.g. a fresh repository without commits
        return out
    out.update(source="git", git_commit=commit.strip(), git_dirty=bool(status.strip()))
    return out


def library_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **{name: _installed_version(name) for name in LIBRARIES}}


def device_info(device: Any) -> dict[str, Any]:
    """What `device` is: `uwav.hardware.device_report` (issue 19: CPU model and ISA level, bf16 units,
    CUDA capability, torch threads).

    Imported here, not at the top: uwav.hardware imports torch, and `uwav eval` uses this module for the
    audio GT identity only. A device that cannot be inspected from this process (a sweep driver without
    the GPU its trials get) is described from the platform, with the reason.
    """
    from uwav.hardware import device_report

    try:
        return dict(device_report(device))
    except Exception as err:  # detection must never stop a run
        return {**_fallback_device_info(device), "detection_error": f"{type(err).__name__}: {err}"}


def _fallback_device_info(device: Any) -> dict[str, Any]:
    name = str(device) if device is not None else "unknown"
    out: dict[str, Any] = {"device": name, "machine": platform.machine(), "cpu": _cpu_model(),
                           "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # only when the run already imported it
    if name.startswith("cuda") and torch is not None and torch.cuda.is_available():
        index = torch.device(name).index or 0
        out["cuda_device"] = torch.cuda.get_device_name(index)
        out["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---- config and data -----------------------------------------------------------------------------------


def config_sha256(config: Any) -> str:
    """SHA-256 of the resolved config (a Config dataclass or its dict) as canonical JSON."""
    raw = asdict(config) if is_dataclass(config) else config
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def annotation_files(config: Any) -> list[Path]:
    """The annotation files a run may read: every file directly in paths.annotations, plus the GT overrides."""
    paths = config.paths
    files = []
    if paths.annotations and Path(paths.annotations).is_dir():
        files = sorted(p for p in Path(paths.annotations).iterdir() if p.is_file())
    for extra in (getattr(paths, "eval_audio", ""), getattr(paths, "eval_visual", "")):
        if extra and Path(extra).is_file() and Path(extra) not in files:
            files.append(Path(extra))
    return files


def audio_gt_path(config: Any) -> Path | None:
    """The LLP dense audio GT file a config scores with (None for AVE, which has no separate audio GT)."""
    if getattr(config, "dataset", "llp") != "llp":
        return None
    if config.paths.eval_audio:
        return Path(config.paths.eval_audio)
    return Path(config.paths.annotations) / "AVVP_eval_audio.csv" if config.paths.annotations else None


def data_provenance(config: Any, logits_generator_sha256: str | None = None,
                    audio_gt_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Annotation checksums, audio GT identity, feature fingerprints and generator checksum of `config`.

    `audio_gt_file`: the audio GT file the data were actually loaded with (ParserData.meta), when known.
    """
    roots = [config.paths.features]
    if config.paths.generator_features and config.paths.generator_features != config.paths.features:
        roots.append(config.paths.generator_features)
    checkpoint = Path(config.generator_checkpoint)
    gt = audio_gt_file if audio_gt_file is not None else audio_gt_path(config)
    return {
        "annotations": {str(p): file_sha256(p) for p in annotation_files(config)},
        "audio_gt": dict(NOT_LLP) if getattr(config, "dataset", "llp") != "llp" else audio_gt_identity(gt),
        "features": {str(r): tree_fingerprints(r) for r in roots if r},
        "generator": {"checkpoint": str(checkpoint),
                      "sha256": file_sha256(checkpoint) if checkpoint.is_file() else None,
                      "logits_generator_sha256": logits_generator_sha256 or None},
    }


def environment_provenance(device: Any = None) -> dict[str, Any]:
    return {"code": code_version(), "versions": library_versions(), "device": device_info(device)}


def run_provenance(config: Any, device: Any = None, data_meta: dict | None = None,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole record for one run. `data` reuses a `data_provenance` computed once (a sweep's trials)."""
    if data is None:
        meta = data_meta or {}
        data = data_provenance(config, meta.get("generator_sha256"), meta.get("audio_gt_file"))
    return {**environment_provenance(device), "config_sha256": config_sha256(config), **data}


# ---- MLflow ----------------------------------------------------------------------------------------------

TAG_PREFIX = "uwav.provenance."


def compact(prov: dict[str, Any]) -> dict[str, Any]:
    """The record with per-file annotation checksums and per-folder feature fingerprints summarised as one
    combined hash each (names and contents only, so the same data at another path hash the same): what
    goes on MLflow runs as tags, readable on a run page, and two runs compare by one value."""
    out: dict[str, Any] = {k: dict(prov[k]) for k in ("code", "versions", "device", "audio_gt", "generator")
                           if isinstance(prov.get(k), dict)}
    for k in ("config_sha256", "resources"):
        if k in prov:
            out[k] = prov[k]
    if "annotations" in prov:
        out["annotations_sha256"] = _combined({Path(k).name: v for k, v in prov["annotations"].items()})
    if "features" in prov:
        out["features_sha256"] = _combined(list(prov["features"].values()))
        out["features_files"] = sum(f["files"] for tree in prov["features"].values() for f in tree.values())
    return out


def flat_tags(prov: dict[str, Any]) -> dict[str, str]:
    """`compact(prov)` as MLflow tags: uwav.provenance.code.git_commit, uwav.provenance.config_sha256, ...

    The same names `tracking.log_final_report` gives a nested provenance dict.
    """
    out: dict[str, str] = {}

    def walk(tree: dict[str, Any], prefix: str) -> None:
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                text = json.dumps(v) if isinstance(v, list | dict) else ("" if v is None else str(v))
                out[f"{TAG_PREFIX}{prefix}{k}"] = text

    walk(compact(prov), "")
    return out


def _combined(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
