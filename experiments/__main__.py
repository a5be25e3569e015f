"""Regenerate the figures in plots/: ``python -m experiments [NAME ...]`` (``make experiments``).

Each experiment writes its figures and the numbers behind them (JSON) into
``plots/<name>/``; ``plots/summary.json`` collects the key numbers and the
time each experiment took. Weak-order studies checkpoint into
``plots/<name>/checkpoint/``: a rerun with unchanged configs reuses finished
points (``--fresh`` recomputes everything).
"""
import argparse
import shutil
import sys
import time
from pathlib import Path

from sde_engine.studies.results import write_json

from .registry import load


def main(argv=None):
    experiments = load()
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"experiments to run (default: all): {', '.join(experiments)}")
    parser.add_argument("--out", default="plots", help="root folder of the figures (default plots)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--fresh", action="store_true", help="ignore checkpoints")
    args = parser.parse_args(argv)
    if args.list:
        for e in experiments.values():
            print(f"{e.name:24s} {e.description}")
        return 0
    unknown = [n for n in args.names if n not in experiments]
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(experiments)}")
    root = Path(args.out)
    summary_path = root / "summary.json"
    summary = {}
    if summary_path.exists():
        import json
        summary = json.loads(summary_path.read_text())
    start = time.perf_counter()
    for name in args.names or list(experiments):
        out_dir = root / name
        if args.fresh:
            shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"[{name}] {experiments[name].description}", flush=True)
        t0 = time.perf_counter()
        numbers = experiments[name].run(out_dir)
        seconds = time.perf_counter() - t0
        summary[name] = dict(description=experiments[name].description, seconds=round(seconds, 1),
                             results=numbers)
        write_json(summary_path, summary)
        print(f"[{name}] done in {seconds:.0f} s -> {out_dir}/", flush=True)
    print(f"all done in {time.perf_counter() - start:.0f} s; key numbers in {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
