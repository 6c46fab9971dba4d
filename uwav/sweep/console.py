"""The sweep's console: one compact table, at most 120 columns wide, instead of Ray Tune's own output.

Tune's reporter prints a table as wide as every config key and result column together (230+ columns),
a 25-line box per finished trial, its last-epoch value of the metric (while the leaderboard ranks by the
best epoch), and it forgets the searched columns after a resume. This callback prints, per trial:

    trial         status  epoch    best  ofs_a   ofs_v   temp    W       alpha   lr_max
    t03-4e3bf4ee  done      8/8   45.31* -0.412  1.21    2.3     0.31    1.7     3.2e-4

`best` is the trial's best-so-far objective (what the leaderboard ranks by, a `*` marks a new best of the
sweep), `status` is run / done / stop (ASHA stopped it early) / ERR. The searched columns come from the
sweep file, not from Tune's trial configs, so a resumed sweep shows the same ones.

Modes (`configure`):
  live   output is a terminal: finished trials scroll by as one line each, the running trials sit in a
         small block at the bottom that is redrawn in place at most once a second;
  log    output is not a terminal (a log file, a test): one line per finished trial and a one-line
         status at most once a minute;
  quiet  one line per finished trial, nothing else;
  off    nothing (library use and tests: `run_sweep(verbose=0)`).

The callback is pickled into Tune's experiment state and `Tuner.restore` brings back that copy, so the
mode and the stream are not part of its state: they are read from `configure` of the current process.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from ray.tune import Callback

WIDTH = 120
MODES = ("live", "log", "quiet", "off")
_REDRAW_S = 1.0
_STATUS_S = 60.0
_STATUS_WORDS = {"RUNNING": "run", "PENDING": "pend", "PAUSED": "paus", "ERROR": "ERR"}
# name, status, epoch, best (+ new-best mark): the fixed columns before the searched values
_SEP = "  "


@dataclass(frozen=True)
class Column:
    key: str  # the sweep key, e.g. pseudo.offset_audio
    header: str  # its abbreviation, e.g. ofs_a
    width: int
    log: bool  # sampled on a log scale: values shown in scientific notation


# Usual short forms, tried before words are cut: offset_visual -> ofs_visual, not offse_visua.
_SHORT_WORDS = {"offset": "ofs", "temperature": "temp", "threshold": "thr", "visual": "vis", "audio": "aud",
                "weight": "wt", "epochs": "ep", "warmup": "wu", "dropout": "drop", "lambda": "lam"}


def abbreviate(key: str, width: int) -> str:
    """A header of at most `width` characters for a dotted key: its last part, shortened word by word."""
    name = key.rsplit(".", 1)[-1]
    if len(name) <= width:
        return name
    words = [w for w in name.split("_") if w]
    for i in range(len(words)):  # the usual short forms, first word first, until it fits
        words[i] = _SHORT_WORDS.get(words[i], words[i])
        if len("_".join(words)) <= width:
            return "_".join(words)
    for keep in range(max(len(w) for w in words), 0, -1):
        short = "_".join(w[:keep] for w in words)
        if len(short) <= width:
            return short
    return name[:width]


def format_value(value: Any, width: int, log: bool = False) -> str:
    """A searched value in at most `width` characters: 3 significant digits, 2 for log-scale keys."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, int):
        text = str(value)
    elif not math.isfinite(value):
        text = str(value)
    else:
        digits = 2 if log else 3
        if value == 0 or 1e-2 <= abs(value) < 1e4:
            text = f"{value:.{digits}g}"
        else:
            mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
            text = f"{mantissa}e{int(exponent)}"
    return text if len(text) <= width else text[:width - 1] + "…"


def plan_columns(space: list[tuple[str, bool]], width: int = WIDTH, name_width: int = 12) -> tuple[
        tuple[Column, ...], tuple[str, ...]]:
    """(shown columns, keys left out) for searched (key, log scale) pairs within `width` characters."""
    fixed = name_width + len(_SEP) + 4 + len(_SEP) + 5 + len(_SEP) + 7 + len(_SEP)
    budget = width - fixed
    n = len(space)
    per = min(12, max(7, (budget + len(_SEP)) // max(n, 1) - len(_SEP)))
    fits = max(0, (budget + len(_SEP)) // (per + len(_SEP)))
    shown, hidden = space[:fits], tuple(k for k, _ in space[fits:])
    headers: list[str] = []
    for key, _ in shown:
        header = abbreviate(key, per)
        if header in headers:  # two sections with the same leaf name: prefix the section's initial
            header = abbreviate(f"{key.split('.')[0][0]}_{key.rsplit('.', 1)[-1]}", per)
        headers.append(header)
    return tuple(Column(k, h, per, log) for (k, log), h in zip(shown, headers, strict=True)), hidden


def trial_number(trial) -> int:
    """Tune's 1-based trial counter (the start of its experiment tag, e.g. "7_loss_W=0.3" -> 7)."""
    head = str(getattr(trial, "experiment_tag", "") or "").split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def short_name(number: int, trial_id: str, digits: int = 2) -> str:
    """`t07-41beeb6f`: the trial counter first, so names differ in their first characters."""
    return f"t{number:0{digits}d}-{trial_id}"


def name_digits(num_samples: int) -> int:
    return max(2, len(str(num_samples)))


_settings: dict[str, Any] = {"mode": None, "stream": None, "width": WIDTH}


def configure(mode: str | None = None, stream: TextIO | None = None, width: int = WIDTH) -> str:
    """Set the console mode of this process (None: live on a terminal, else log); returns the mode."""
    out = stream if stream is not None else sys.stdout
    if mode is None:
        mode = "live" if getattr(out, "isatty", lambda: False)() else "log"
    if mode not in MODES:
        raise ValueError(f"console mode {mode!r}; expected one of {MODES}")
    _settings.update(mode=mode, stream=stream, width=width)
    return mode


def library_logging(verbose: bool) -> None:
    """Ray's, Optuna's and MLflow's INFO lines off (warnings stay) unless `verbose`. MLflow sets its
    loggers' level from MLFLOW_LOGGING_LEVEL when it is imported (later, on the first tracking call);
    Ray's from ray.init's logging_level (uwav.sweep.tuner.start_ray)."""
    import os

    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    level = logging.INFO if verbose else logging.WARNING
    for name in ("ray", "ray.tune", "ray.train", "mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(level)
    try:
        import optuna

        optuna.logging.set_verbosity(level)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass


@dataclass
class _Row:
    name: str
    values: dict[str, Any]
    epoch: int = 0
    best: float | None = None
    status: str = "pend"
    new_best: bool = False


class SweepConsole(Callback):
    """Tune callback printing the compact sweep table (see the module docstring)."""

    def __init__(self, space: list[tuple[str, bool]], target_epochs: int, num_samples: int,
                 objective_key: str = "best_objective", epochs_of=None, mode: str | None = None,
                 stream: TextIO | None = None):
        """`space`: (sweep key, log scale) in sweep-file order; `target_epochs`: epochs of a full trial;
        `epochs_of(params)`: a trial's own target when the epoch count is searched (picklable)."""
        self.space, self.target_epochs, self.num_samples = list(space), int(target_epochs), int(num_samples)
        self.objective_key, self.epochs_of = objective_key, epochs_of
        self._mode, self._stream = mode, stream
        self._reset()

    def _reset(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._done: set[str] = set()
        self._best: tuple[float, str] | None = None
        self._started = False
        self._block_lines = 0
        self._last_draw = 0.0
        self._last_status = 0.0
        self._t0 = time.time()
        self._counts = {"done": 0, "stop": 0, "ERR": 0}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_mode=None, _stream=None)
        for k in ("_rows", "_done", "_best", "_started", "_block_lines", "_last_draw", "_last_status", "_t0",
                  "_counts"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    # ---- settings ------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        if self._mode is not None:
            return self._mode
        if _settings["mode"] is None:
            configure(None, self._stream)
        return _settings["mode"]

    @property
    def stream(self) -> TextIO:
        return self._stream or _settings["stream"] or sys.stdout  # looked up late: pytest swaps sys.stdout

    @property
    def width(self) -> int:
        width = _settings["width"]
        if self.mode == "live":
            width = min(width, shutil.get_terminal_size((WIDTH, 24)).columns)
        return width

    # ---- layout ------------------------------------------------------------------------------------

    def _layout(self) -> tuple[tuple[Column, ...], tuple[str, ...]]:
        width = len(short_name(0, "00000000", name_digits(self.num_samples)))
        return plan_columns(self.space, self.width, width)

    def header_lines(self) -> list[str]:
        columns, hidden = self._layout()
        name_w = len(short_name(0, "00000000", name_digits(self.num_samples)))
        head = _SEP.join([f"{'trial':<{name_w}}", "stat", "epoch", f"{'best':>7}"] +
                         [f"{c.header:<{c.width}}" for c in columns])
        legend = ", ".join(f"{c.header} = {c.key}" for c in columns if c.header != c.key.rsplit(".", 1)[-1])
        lines = _wrap(f"columns: {legend}" if legend else "", self.width)
        if hidden:
            lines += _wrap(f"not shown (too wide; see the leaderboard): {', '.join(hidden)}", self.width)
        return lines + [head.rstrip()]

    def row_line(self, row: _Row) -> str:
        columns, _ = self._layout()
        name_w = len(short_name(0, "00000000", name_digits(self.num_samples)))
        target = self._target(row.values)
        best = "" if row.best is None else f"{row.best:.2f}" + ("*" if row.new_best else " ")
        cells = [f"{row.name:<{name_w}}", f"{row.status:<4}", f"{row.epoch:>2}/{target:<2}", f"{best:>7}"]
        cells += [f"{format_value(row.values.get(c.key, ''), c.width, c.log):<{c.width}}" for c in columns]
        return _SEP.join(cells).rstrip()[:self.width]

    def status_line(self, trials=None) -> str:
        c = self._counts
        finished = c["done"] + c["stop"] + c["ERR"]
        running = [r for r in self._rows.values() if r.status == "run"]
        best = f"best {self._best[0]:.2f} {self._best[1]}" if self._best else "no epoch yet"
        text = (f"[{_elapsed(time.time() - self._t0)}] finished {finished}/{self.num_samples} "
                f"({c['stop']} stopped early, {c['ERR']} errors) | running {len(running)} | {best}")
        if self.mode == "log" and running:
            text += " | " + ", ".join(f"{r.name.split('-')[0]} {r.epoch}/{self._target(r.values)}"
                                      for r in sorted(running, key=lambda r: r.name))
        return text[:self.width]

    def _target(self, values: dict) -> int:
        if self.epochs_of is not None:
            try:
                return int(self.epochs_of(values))
            except Exception:  # an incomplete value set (pending trial): the sweep's full length
                return self.target_epochs
        return self.target_epochs

    # ---- output ------------------------------------------------------------------------------------

    def _write(self, lines: list[str], block: list[str] | None = None) -> None:
        """Print permanent `lines`; in live mode redraw the running block under them."""
        if self.mode == "off":
            return
        out = self.stream
        live = self.mode == "live"
        if live and self._block_lines:
            out.write(f"\x1b[{self._block_lines}F\x1b[J")
            self._block_lines = 0
        for line in lines:
            out.write(line + "\n")
        if live and block:
            for line in block:
                out.write(line + "\n")
            self._block_lines = len(block)
        out.flush()

    def _live_block(self) -> list[str]:
        running = sorted((r for r in self._rows.values() if r.status == "run"), key=lambda r: r.name)
        return [self.row_line(r) for r in running] + [self.status_line()]

    def _start(self, trials) -> None:
        if self._started:
            return
        self._started = True
        self._t0 = time.time()
        lines = self.header_lines()
        earlier = [t for t in trials or [] if t.status in ("TERMINATED", "ERROR")]
        for t in earlier:  # a resumed sweep: what was finished before, counted and ranked, not reprinted
            row = self._row(t)
            row.status = self._final_status(t, row)
            self._count(row)
            self._done.add(t.trial_id)
            if row.best is not None and (self._best is None or row.best > self._best[0]):
                self._best = (row.best, row.name)
        if earlier:
            best = f"; best {self._best[0]:.2f} {self._best[1]}" if self._best else ""
            lines.insert(0, f"resumed: {len(earlier)} trial(s) finished before{best}")
        self._write(lines, self._live_block() if self.mode == "live" else None)

    def _row(self, trial) -> _Row:
        row = self._rows.get(trial.trial_id)
        if row is None:
            config = dict(getattr(trial, "config", {}) or {})
            values = {k: config[k] for k, _ in self.space if k in config}
            row = self._rows[trial.trial_id] = _Row(
                short_name(trial_number(trial), trial.trial_id, name_digits(self.num_samples)), values)
        last = getattr(trial, "last_result", None) or {}
        self._update(row, last)
        return row

    def _update(self, row: _Row, result: dict) -> None:
        if "epoch" in result:
            row.epoch = max(row.epoch, int(result["epoch"]))
        value = result.get(self.objective_key)
        if isinstance(value, int | float) and math.isfinite(value):
            row.best = value if row.best is None else max(row.best, value)

    def _final_status(self, trial, row: _Row) -> str:
        if trial.status == "ERROR":
            return "ERR"
        return "done" if row.epoch >= self._target(row.values) else "stop"

    def _count(self, row: _Row) -> None:
        if row.status in self._counts:
            self._counts[row.status] += 1

    def _finish(self, trial, status: str | None = None) -> None:
        if trial.trial_id in self._done:
            return
        self._done.add(trial.trial_id)
        row = self._row(trial)
        row.status = status or self._final_status(trial, row)
        self._count(row)
        if row.best is not None and (self._best is None or row.best > self._best[0]):
            self._best, row.new_best = (row.best, row.name), True
        self._write([self.row_line(row)], self._live_block() if self.mode == "live" else None)

    # ---- Tune hooks ---------------------------------------------------------------------------------

    def on_step_begin(self, iteration, trials, **info):
        self._start(trials)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._start(trials)
        self._row(trial).status = "run"
        self._done.discard(trial.trial_id)
        if self.mode == "live":
            self._write([], self._live_block())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = self._row(trial)
        self._update(row, result)
        row.status = "run"

    def on_step_end(self, iteration, trials, **info):
        now = time.time()
        if self.mode == "live" and now - self._last_draw >= _REDRAW_S:
            self._last_draw = now
            self._write([], self._live_block())
        elif self.mode == "log" and now - self._last_status >= _STATUS_S:
            if self._last_status:
                self._write([self.status_line()])
            self._last_status = now

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "ERR")

    def on_experiment_end(self, trials, **info):
        self._start(trials)
        if self.mode not in ("quiet", "off"):
            self._write([self.status_line()])


def _elapsed(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def _wrap(text: str, width: int) -> list[str]:
    """Split a comma-separated text into lines of at most `width` characters."""
    if not text:
        return []
    lines, line = [], ""
    for part in text.split(", "):
        piece = part if not line else f"{line}, {part}"
        if len(piece) <= width or not line:
            line = piece
        else:
            lines.append(line + ",")
            line = "  " + part
    lines.append(line)
    return [x[:width] for x in lines]
