"""Which seeds a sweep used, and fresh ones that no part of it saw.

A trial trains with its config's `seed` (the base config's, unless `seed` is a searched key). The
winner of a search is the trial whose seed happened to suit it best, so numbers from that seed are
optimistic; every later run draws seeds the search never used:

  re-evaluation (the sweep file's `finish:` section, val only): max(trial seeds) + 1, + 2, ...
  `uwav train --best`: the next integers after every seed above (trial and re-evaluation seeds),
                       i.e. max(used) + 1, + 2, ...

Both rules are deterministic, so running `train --best` again trains the same seeds.
"""

from __future__ import annotations

from collections.abc import Iterable

from uwav.config import Config
from uwav.errors import UwavError


def trial_seeds(base: Config, board: Iterable[dict]) -> set[int]:
    """The seed of every trial on the leaderboard (errored and unfinished ones included: they trained too)."""
    seeds = set()
    for row in board:
        seed = row.get("params", {}).get("seed", base.seed)
        seeds.add(int(seed))
    if not seeds:
        seeds.add(int(base.seed))
    return seeds


def fresh_seeds(used: Iterable[int], count: int) -> list[int]:
    """`count` seeds after the largest used one: max(used) + 1, + 2, ... (none of them used)."""
    used = set(used)
    if count < 1:
        raise UwavError(f"seeds: at least 1 needed, got {count}")
    start = max(used) + 1 if used else 0
    return list(range(start, start + count))


def describe(seeds: list[int], used: dict[str, Iterable[int]]) -> str:
    """One line naming the fresh seeds and what they avoid, e.g. for the console and results.md."""
    parts = [f"{what} {sorted(set(s))}" for what, s in used.items() if s]
    return f"seeds {seeds}: fresh, after every seed the sweep used ({'; '.join(parts) or 'none recorded'})"
