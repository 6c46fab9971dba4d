"""Screenshots of a sweep in the MLflow UI, taken in headless Chromium (not part of CI).

    apt-get install -y chromium && .venv/bin/pip install playwright     # once
    .venv/bin/python bench/mlflow_screens.py runs/demo/sweeps/demo [--out runs/demo/screens]

Starts `mlflow ui` on 127.0.0.1 (a free port from 5000 up) for the sweep's store and saves:
  1-experiment.png   the experiment as a fresh browser opens it (<base>/#/experiments/<id>)
  2-runs.png         the runs page with the sweep's saved view (searched values as columns)
  3-charts.png       the runs page's chart view of that view (parallel coordinates first)
  4-trial.png        the best trial's run page
  5-compare.png      the compare view of the top trials
  6-final.png        the final run of `uwav train --best` (when there is one)
  7-parent.png       the sweep's parent run (params, artifacts)
  8-nesting.png      the plain runs page (no saved view): the sweep's parent, folded (MLflow folds child runs)
Playwright's own browser download does not work here; the Debian package's /usr/bin/chromium is
driven through `executable_path`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ASSISTANT_SEEN = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"  # MLflow's localStorage key_v<version>
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="sweep folder (holding sweep.json) or sweep file")
    parser.add_argument("--out", default=None, help="folder for the PNGs (default <sweep>/screens)")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds to let each page render")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from uwav import mlflow_ui, tracking

    source = Path(args.sweep)
    if source.is_file():
        from uwav.sweep.spec import load_sweep

        source = load_sweep(source).experiment_dir
    meta = json.loads((source / "sweep.json").read_text())
    uri, exp_id, parent = meta["tracking_uri"], str(meta["experiment_id"]), meta["parent_run_id"]
    out = Path(args.out) if args.out else source / "screens"
    out.mkdir(parents=True, exist_ok=True)

    client = tracking.client(uri)
    parent_run = client.get_run(parent)
    children = tracking.child_runs(uri, parent)
    trials = [r for r in children if r.data.tags.get("uwav.kind", "trial") == "trial"]
    best_id = parent_run.data.tags.get(tracking.BEST_RUN_TAG)
    trials.sort(key=lambda r: -r.data.metrics.get("best_objective", -1e9))
    best = next((r for r in trials if r.info.run_id == best_id), trials[0] if trials else None)
    finals = client.search_runs([exp_id], filter_string="tags.`uwav.kind` = 'final'", max_results=5)

    port = mlflow_ui.free_port()
    base = mlflow_ui.ui_base(uri, port) if uri.startswith("sqlite") else uri.rstrip("/")
    server = mlflow_ui.start_ui(uri, port) if uri.startswith("sqlite") else None
    try:
        if server is not None and not mlflow_ui.wait_until_up(base, 120, server):
            print(f"mlflow ui did not come up on {base}", file=sys.stderr)
            return 1
        pages = [("0-experiment-plain", f"{base}/#/experiments/{exp_id}"),
                 ("1-experiment", mlflow_ui.experiment_url(base, exp_id)),
                 ("2-runs", mlflow_ui.runs_url(base, exp_id, view=True)),
                 ("3-charts", mlflow_ui.runs_url(base, exp_id, view=True, charts=True))]
        if best is not None:
            pages.append(("4-trial", mlflow_ui.run_url(base, exp_id, best.info.run_id)))
        if len(trials) >= 2:
            pages.append(("5-compare", mlflow_ui.compare_url(base, exp_id, [r.info.run_id for r in trials[:4]])))
        if finals:
            pages.append(("6-final", mlflow_ui.run_url(base, exp_id, finals[0].info.run_id)))
        pages.append(("7-parent", mlflow_ui.run_url(base, exp_id, parent)))
        pages.append(("8-nesting", mlflow_ui.runs_url(base, exp_id)))
        shoot(pages, out, args.width, args.height, args.settle)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its gunicorn/uvicorn workers
            server.wait(timeout=30)
    return 0


def shoot(pages: list[tuple[str, str]], out: Path, width: int, height: int, settle: float) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, url in pages:
            # A fresh context per page: what a first-time visitor sees (no remembered UI settings).
            context = browser.new_context(viewport={"width": width, "height": height})
            # MLflow 3.x opens its Assistant panel over a third of the page on the first visit; the
            # pictures are of the runs, so that first visit is marked as done.
            context.add_init_script(f"localStorage.setItem('{ASSISTANT_SEEN}', 'true')")
            page = context.new_page()
            page.goto(url, wait_until="load", timeout=120_000)
            # The UI renders after its API calls return (seconds on a busy 2-core machine); the runs page
            # polls for new runs, so "network idle" never comes there: a fixed wait instead.
            page.wait_for_timeout(int(settle * 1000))
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=False)
            print(f"{path}  <- {page.url}")
            context.close()
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
