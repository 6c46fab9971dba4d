"""The report of `uwav train --best`: each configuration's mean ± std and its paired comparison with the
reference, as one JSON-able dict, a console table (within 120 columns) and results.md.

Pure: it takes the per-seed scores of the runs (see `Configuration`) and computes nothing but statistics
(uwav.stats). The verdict sentence is given for the sweep's objective; the other nine numbers get the
same statistics in the table, to read as description rather than as nine more tests (see the README).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from uwav.metrics import TITLES
from uwav.stats import (
    ALPHA,
    CONFIDENCE,
    INTERVAL_METHOD,
    TEST_METHOD,
    PairedDifference,
    compare_runs,
    format_p,
    mean_std,
    sentence,
)

SPLITS = ("val", "test")


def metric_label(key: str) -> str:
    """The paper's name of a score ("Segment Type@AV"); AVE's accuracy is "Accuracy" in a sentence."""
    return "Accuracy" if key == "accuracy" else TITLES.get(key, key)

WIDTH = 120  # console columns
VERDICT_WORDS = {"better": "better", "worse": "worse", "indistinguishable": "not distinguishable"}


@dataclass
class Configuration:
    """One trained configuration: its name in the report and its scores per split and seed."""

    key: str  # "rank1", "rank2", ..., "reference"
    title: str  # "rank 1 (trial 6f1a2b3c)", "reference: paper (points_to_evaluate[0])"
    scores: dict[str, dict[int, dict[str, float]]]  # {"val": {seed: {metric: value}}, "test": ...}
    params: dict[str, Any] = field(default_factory=dict)  # the searched values
    trial_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # anything else for results.json (run folders, ...)
    nickname: str = ""  # what the reference is, in a sentence: "the paper's settings"
    same_as: str | None = None  # reference only: the key of the ranked configuration it is identical to

    @property
    def name(self) -> str:
        """How a sentence names it: "rank 1", "the reference (the paper's settings)"."""
        if self.key != "reference":
            return self.key.replace("rank", "rank ")
        return f"the reference ({self.nickname})" if self.nickname else "the reference"

    def seeds(self, split: str) -> list[int]:
        return sorted(self.scores.get(split, {}))


def _metric_order(scores: dict[int, dict[str, float]]) -> list[str]:
    first = next(iter(scores.values()))
    keys = list(first)
    return (["accuracy"] if "accuracy" in keys else []) + [k for k in keys if k != "accuracy"]


def summarise(per_seed: dict[int, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """{metric: {"mean", "std"}} over seeds; std is None for one seed."""
    out = {}
    for m in _metric_order(per_seed):
        mean, std = mean_std([per_seed[s][m] for s in sorted(per_seed)])
        out[m] = {"mean": mean, "std": std}
    return out


def build_report(configurations: list[Configuration], against: Configuration | None, objective: str,
                 **info: Any) -> dict[str, Any]:
    """The results.json body: `configurations` each compared with `against` (the reference runs, or None).

    `info` (sweep folder, seeds, the reference's definition, provenance, warnings, ...) is kept as is.
    """
    reference = against
    report: dict[str, Any] = {**info, "objective": objective, "confidence": CONFIDENCE,
                              "interval": INTERVAL_METHOD, "test": TEST_METHOD, "alpha": ALPHA}
    every = [*configurations, *([reference] if reference is not None else [])]
    report["configurations"] = [_configuration_json(c) for c in every]
    report["comparisons"] = []
    if reference is None:
        return report
    for c in configurations:
        for split in SPLITS:
            if split not in c.scores or split not in reference.scores:
                continue
            if c.key == reference.same_as:  # the winner is the reference: one set of runs, no comparison
                report["comparisons"].append({
                    "configuration": c.key, "against": reference.key, "split": split, "seeds": c.seeds(split),
                    "metrics": {}, "sentence": f"{c.name} is {reference.name} itself (the same configuration, "
                                               f"trained once per seed): nothing to compare on {split}"})
                continue
            diffs = compare_runs(c.scores[split], reference.scores[split], _metric_order(c.scores[split]))
            report["comparisons"].append({
                "configuration": c.key, "against": reference.key, "split": split, "seeds": c.seeds(split),
                "metrics": {m: d.to_json() for m, d in diffs.items()},
                "sentence": sentence(c.name, diffs[objective], split, reference.name,
                                     metric_label(objective)) if objective in diffs else None,
            })
    return report


def _configuration_json(c: Configuration) -> dict[str, Any]:
    out: dict[str, Any] = {"key": c.key, "title": c.title, "trial_id": c.trial_id, "params": c.params}
    for split in SPLITS:
        if split in c.scores:
            out[f"{split}_seeds"] = c.seeds(split)
            out[split] = summarise(c.scores[split])
            out[f"{split}_per_seed"] = {str(s): c.scores[split][s] for s in c.seeds(split)}
    out.update(c.extra)
    return out


# ---- text -------------------------------------------------------------------------------------------------


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _signed_pm(mean: float, std: float | None) -> str:
    text = f"{0.0 if abs(mean) < 0.005 else mean:+.2f}"
    return text if std is None else f"{text} ± {std:.2f}"


def _interval(d: dict) -> str:
    if d["ci_low"] is None:
        return "n/a"
    return f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def _p(d: dict) -> str:
    return "n/a" if d["p_value"] is None else format_p(d["p_value"]).removeprefix("p ").removeprefix("= ")


def _rows(report: dict, split: str) -> list[tuple[str, list[list[str]], list[str]]]:
    """(title, rows, sentences) per compared configuration (or one plain block without a reference)."""
    confs = {c["key"]: c for c in report["configurations"]}
    blocks = []
    comparisons = [c for c in report["comparisons"] if c["split"] == split]
    if not comparisons:  # no reference: mean ± std of each configuration side by side
        keys = [k for k, c in confs.items() if split in c]
        if not keys:
            return []
        head = ["metric", *[confs[k]["title"].split(" (")[0] for k in keys]]
        rows = [[metric_label(m), *[_pm(**confs[k][split][m]) for k in keys]] for m in confs[keys[0]][split]]
        seeds = confs[keys[0]][f"{split}_seeds"]
        return [(f"{split}: mean ± std over {len(seeds)} seeds {seeds}", [head, *rows], [])]
    for comp in comparisons:
        mine, ref = confs[comp["configuration"]], confs[comp["against"]]
        name = mine["title"].split(" (")[0]
        if not comp["metrics"]:
            rows = [["metric", name], *[[metric_label(m), _pm(**v)] for m, v in mine[split].items()]]
            blocks.append((f"{split}: {mine['title']}, {len(comp['seeds'])} seeds {comp['seeds']}", rows,
                           [comp["sentence"]]))
            continue
        head = ["metric", name, "reference", "difference", f"{round(100 * CONFIDENCE)}% interval", "p", "verdict"]
        rows = []
        for m, d in comp["metrics"].items():
            rows.append([metric_label(m), _pm(d["winner_mean"], d["winner_std"]),
                         _pm(d["reference_mean"], d["reference_std"]), _signed_pm(d["diff_mean"], d["diff_std"]),
                         _interval(d), _p(d), VERDICT_WORDS[d["verdict"]]])
        title = (f"{split}: {mine['title']} against {ref['title']}\n{len(comp['seeds'])} seeds {comp['seeds']}; "
                 f"difference = {name} - reference, mean ± std over the seeds")
        blocks.append((title, [head, *rows], [comp["sentence"]] if comp["sentence"] else []))
    return blocks


def _aligned(rows: list[list[str]], words_last: bool) -> list[str]:
    """Columns padded to their widest cell: names left, numbers right (and a verdict column left)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    last = len(widths) - 1

    def cell(i: int, text: str) -> str:
        return text.ljust(widths[i]) if i == 0 or (words_last and i == last) else text.rjust(widths[i])

    return ["  ".join(cell(i, text) for i, text in enumerate(r)).rstrip() for r in rows]


def _wrap(text: str) -> list[str]:
    """Lines of at most WIDTH columns that never split "p = 0.04" or "95% CI" across two lines."""
    glued = text.replace(" = ", "\0=\0").replace("% CI", "%\0CI")
    return [line.replace("\0", " ") for line in textwrap.wrap(glued, WIDTH, subsequent_indent="  ")]


def format_console(report: dict) -> str:
    """The tables (val, then test) and the verdict sentences; test last, so the output ends with it."""
    out = []
    paired = bool(report["comparisons"])
    for split in SPLITS:
        for title, rows, sentences in _rows(report, split):
            out += ["", title, *_aligned(rows, paired and len(rows[0]) > 2)]
            out += [line for s in sentences for line in _wrap(s)]
    if paired:
        out += ["", *_wrap(f"95% interval: {report['interval']}; p: {report['test']}; verdict: "
                           f"p < {report['alpha']:.2f}")]
    return "\n".join(out).lstrip("\n")


def format_markdown(report: dict, preamble: list[str] | tuple[str, ...] = ()) -> str:
    out = ["# Final runs", *(["", *preamble] if preamble else [])]
    for split in SPLITS:
        for title, rows, sentences in _rows(report, split):
            out += ["", f"## {title.replace(chr(10), ' · ')}", ""]
            out += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            out += [""] + [f"**{s}**" for s in sentences]
    if report["comparisons"]:
        out += ["", f"Interval: {report['interval']} ({round(100 * report['confidence'])}%). p: {report['test']}. "
                    f"A verdict other than *not distinguishable* means p < {report['alpha']:.2f}, i.e. the interval "
                    f"excludes 0. With few seeds these are rough: see the README, \"Reading the final table\"."]
    return "\n".join(out).rstrip() + "\n"


def objective_sentences(report: dict) -> list[str]:
    return [c["sentence"] for c in report["comparisons"] if c.get("sentence")]


__all__ = ["Configuration", "PairedDifference", "build_report", "format_console", "format_markdown",
           "objective_sentences", "summarise"]
