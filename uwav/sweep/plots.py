"""Pictures of a sweep (PNG, matplotlib without pyplot), logged as artifacts of the sweep's parent run.

  optimisation_history.png  best-so-far objective against trial-epochs spent (what the search cost),
                            each trial's best marked where it ended, ASHA-stopped ones apart
  param_importance.png      Optuna's fANOVA importance of each searched key over the finished trials
  parallel_coordinates.png  one line per trial through its searched values (log axes for log-uniform
                            keys, the space's bounds as axis ends) coloured by its objective
  learning_curves.png       the per-epoch objective of the top trials, the others in grey

Everything is drawn from plain `TrialRecord`s (uwav/sweep/records.py) and the sweep's `Param`s.
A plot that has too little to show (no finished trial yet) still gets a file that says so.
"""

from __future__ import annotations

import math
from pathlib import Path

from uwav.sweep.records import TrialRecord, spent_epochs_curve

FILES = ("optimisation_history.png", "param_importance.png", "parallel_coordinates.png", "learning_curves.png")
_DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    from uwav.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _empty(path: Path, title: str, reason: str) -> Path:
    fig = _figure(6.4, 3.2)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True)
    return _save(fig, path)


def _scored(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.best_objective is not None and r.status != "error"]


def optimisation_history(records: list[TrialRecord], path: Path, label: str, objective: str = "objective") -> Path:
    title = f"optimisation history: best-so-far {label}"
    curve = spent_epochs_curve(records, objective)
    if not curve:
        return _empty(path, title, "no trial has reported an epoch yet")
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    ax.step(xs, ys, where="post", color="black", lw=1.6, label="best so far")
    # where each trial ended: its best, at the count of trial-epochs spent when it reported its last epoch
    order = {}
    events = sorted((h.get("timestamp", 0.0), r.number, h["epoch"], r.name) for r in records for h in r.history)
    for spent, (_, _, _, name) in enumerate(events, 1):
        order[name] = spent
    styles = {"complete": ("tab:blue", "o", "trained to the end"), "stopped": ("tab:orange", "v", "stopped by ASHA"),
              "unfinished": ("tab:gray", "s", "unfinished")}
    for status, (color, marker, text) in styles.items():
        pts = [(order[r.name], r.best_objective) for r in _scored(records) if r.status == status and r.name in order]
        if pts:
            ax.scatter(*zip(*pts, strict=True), color=color, marker=marker, s=28, alpha=0.85, label=text, zorder=3)
    best = max(_scored(records), key=lambda r: r.best_objective, default=None)
    if best is not None and best.name in order:
        ax.annotate(best.name, (order[best.name], best.best_objective), textcoords="offset points", xytext=(4, 6),
                    fontsize=8)
    ax.set_xlabel("trial-epochs spent (all trials together)")
    ax.set_ylabel(label)
    ax.set_title(f"{title}\n{len(records)} trials, {xs[-1]} trial-epochs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def importances(study, seed: int = 0) -> dict[str, float]:
    """Optuna's fANOVA importances over the study's COMPLETE trials ({} when fewer than two)."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def param_importance(study, path: Path, label: str) -> Path:
    from optuna.trial import TrialState

    title = f"parameter importance for {label}"
    n = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    try:
        scores = importances(study)
    except (ValueError, RuntimeError) as err:  # e.g. every searched value identical
        return _empty(path, title, f"not computable: {err}")
    if not scores:
        return _empty(path, title, f"needs at least 2 finished trials ({n} so far)")
    keys = sorted(scores, key=scores.get)
    fig = _figure(7.0, 1.2 + 0.32 * len(keys))
    ax = fig.add_subplot()
    ax.barh(keys, [scores[k] for k in keys], color="tab:blue")
    for i, k in enumerate(keys):
        ax.text(scores[k], i, f" {scores[k]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(scores.values()) * 1.15))
    ax.set_xlabel("share of the objective's variance explained (Optuna fANOVA)")
    ax.set_title(f"{title}\nover {n} finished trials (ASHA-stopped ones at their best epoch)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _axis(param, values: list):
    """(position in [0, 1] of a value, [(position, tick label)]) for one searched key."""
    from uwav.sweep.console import format_value

    if param.type == "choice":
        choices = list(param.values)
        n = max(len(choices) - 1, 1)
        pos = {repr(c): (i / n if len(choices) > 1 else 0.5) for i, c in enumerate(choices)}
        return (lambda v: pos.get(repr(v), 0.5)), [(pos[repr(c)], str(c)) for c in choices]
    log = param.type == "loguniform" or param.log
    lo, hi = (math.log(param.low), math.log(param.high)) if log else (float(param.low), float(param.high))

    def where(v):
        x = math.log(v) if log else float(v)
        return (x - lo) / (hi - lo) if hi > lo else 0.5

    ticks = []
    for t in (0.0, 0.5, 1.0):
        x = lo + t * (hi - lo)
        ticks.append((t, format_value(math.exp(x) if log else x, 8, log)))
    return where, ticks


def parallel_coordinates(records: list[TrialRecord], space, path: Path, label: str) -> Path:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from uwav.sweep.console import abbreviate

    title = f"searched values, coloured by best {label}"
    scored = _scored(records)
    if not scored:
        return _empty(path, title, "no trial has a score yet")
    params = list(space)
    axes = [_axis(p, [r.params.get(p.key) for r in scored]) for p in params]
    values = [r.best_objective for r in scored]
    vmin, vmax = min(values), max(values)
    if vmax <= vmin:
        vmax = vmin + 1e-9
    norm, cmap = Normalize(vmin, vmax), colormaps["viridis"]
    n_axes = len(params) + 1
    fig = _figure(max(6.0, 1.05 * n_axes + 1.5), 4.6)
    ax = fig.add_subplot()
    xs = list(range(n_axes))
    for r in sorted(scored, key=lambda r: r.best_objective):  # the best drawn last, on top
        ys = [where(r.params[p.key]) if p.key in r.params else math.nan for p, (where, _) in zip(params, axes,
                                                                                                  strict=True)]
        ys.append(norm(r.best_objective))
        best = r is max(scored, key=lambda s: s.best_objective)
        ax.plot(xs, ys, color=cmap(norm(r.best_objective)), lw=2.4 if best else 1.1,
                ls="--" if r.stopped_early else "-", alpha=0.95 if best else 0.75)
    for i, (_, ticks) in enumerate(axes):
        ax.axvline(i, color="black", lw=0.8)
        for y, text in ticks:
            ax.text(i + 0.04, y, text, fontsize=7, va="center")
    ax.axvline(n_axes - 1, color="black", lw=0.8)
    for y in (0.0, 0.5, 1.0):
        ax.text(n_axes - 1 + 0.04, y, f"{vmin + y * (vmax - vmin):.2f}", fontsize=7, va="center")
    ax.set_xticks(xs, [abbreviate(p.key, 14) + (" (log)" if p.type == "loguniform" or p.log else "")
                       for p in params] + [label], rotation=25, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, n_axes - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label, pad=0.01)
    ax.set_title(f"{title}\n{len(scored)} trials; dashed: stopped early by ASHA; axis ends: the searched range",
                 fontsize=10)
    return _save(fig, path)


def learning_curves(records: list[TrialRecord], path: Path, label: str, objective: str = "objective",
                    top: int = 5) -> Path:
    title = f"{label} per epoch"
    scored = [r for r in _scored(records) if any(objective in h for h in r.history)]
    if not scored:
        return _empty(path, title, "no trial has reported an epoch yet")
    best = sorted(scored, key=lambda r: -r.best_objective)[:top]
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for r in scored:
        if r not in best:
            pts = [(h["epoch"], h[objective]) for h in r.history if objective in h]
            ax.plot(*zip(*pts, strict=True), color="0.8", lw=0.8, zorder=1)
    for rank, r in enumerate(best, 1):
        pts = [(h["epoch"], h[objective]) for h in r.history if objective in h]
        line, = ax.plot(*zip(*pts, strict=True), lw=1.8, marker=".", zorder=3,
                        label=f"{rank}. {r.name} ({r.best_objective:.2f}{', stopped' if r.stopped_early else ''})")
        if r.best_epoch is not None:
            ax.scatter([r.best_epoch], [r.best_objective], s=60, facecolors="none", edgecolors=line.get_color(),
                       zorder=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{title}\ntop {len(best)} of {len(scored)} trials (circle: best epoch), the others grey", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_plots(out_dir: Path, records: list[TrialRecord], space, study, label: str,
                objective: str = "objective") -> tuple[Path, ...]:
    """All four pictures into `out_dir`; returns their paths (FILES order)."""
    out_dir = Path(out_dir)
    return (optimisation_history(records, out_dir / FILES[0], label, objective),
            param_importance(study, out_dir / FILES[1], label),
            parallel_coordinates(records, space, out_dir / FILES[2], label),
            learning_curves(records, out_dir / FILES[3], label, objective))
