"""Measure ``retrain-all`` on a local Dask cluster against the same retrains one after another.

Run: ``.venv/bin/python benchmarks/bench_retrain_all.py [--workers 2] [--fast] [--strategy NAME
...] [--json]``.

Each mode runs ``strategy-engine retrain-all --json`` in its own process on a fresh MLflow store
and Prefect home (so both start from no champion and do the same work): first on ``--workers``
Dask workers, then ``--sequential``. By default every catalogued type on its full data set, as
``retrain`` trains by default; ``--fast`` takes the small slices. Printed per mode: the
fan-out's wall seconds (from the flow's report: cluster start and stop included, the Prefect
server's start not), the command's wall seconds, and the statuses; then the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_mode(
    mode: str, workers: int, strategies: list[str], fast: bool, scratch: Path
) -> dict[str, Any]:
    """Run one ``retrain-all`` in a fresh store; return its report's totals and timings."""
    home = scratch / mode
    env = {
        **os.environ,
        "STRATEGY_ENGINE_MLFLOW_DIR": str(home / "mlflow"),
        "PREFECT_HOME": str(home / "prefect"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    for inherited in ("MLFLOW_TRACKING_URI", "STRATEGY_ENGINE_DASK_SCHEDULER"):
        env.pop(inherited, None)
    command = [sys.executable, "-m", "strategy_engine.cli", "retrain-all", "--json", "--no-notify"]
    command += [f"--strategy={name}" for name in strategies or ["all"]]
    command += ["--sequential"] if mode == "sequential" else [f"--workers={workers}"]
    command += ["--fast"] if fast else []
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    command_seconds = time.perf_counter() - started
    if not done.stdout.strip():
        raise SystemExit(f"{mode}: no report (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return {
        "mode": mode,
        "exit_code": done.returncode,
        "wall_seconds": report["totals"]["wall_seconds"],
        "command_seconds": round(command_seconds, 3),
        "totals": report["totals"],
        "workers_used": report["runner"]["workers_used"],
        "strategies": {
            s["strategy"]: {"status": s["status"], "seconds": s["seconds"], "error": s["error"]}
            for s in report["strategies"]
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", action="append", default=[], metavar="NAME")
    parser.add_argument("--fast", action="store_true", help="the small slices of each data set")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-retrain-all-") as tmp:
        runs = [
            run_mode(mode, args.workers, args.strategy, args.fast, Path(tmp))
            for mode in ("dask", "sequential")
        ]
    dask, sequential = runs
    result = {
        "workers": args.workers,
        "fast": args.fast,
        "cpus": os.cpu_count(),
        "runs": runs,
        "speedup": round(sequential["wall_seconds"] / dask["wall_seconds"], 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for run in runs:
        totals = run["totals"]
        print(
            f"{run['mode']:<10} {totals['strategies']} strategies: {run['wall_seconds']:8.1f} s "
            f"(command {run['command_seconds']:.1f} s, sum of tasks {totals['task_seconds']:.1f} "
            f"s) {totals['promoted']} promoted, {totals['kept']} kept, {totals['blocked']} "
            f"blocked, {totals['failed']} failed"
        )
        for name, line in run["strategies"].items():
            if line["status"] == "failed":
                print(f"  {name}: {line['error']}")
    print(f"speed-up on {args.workers} workers ({os.cpu_count()} CPUs): {result['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
