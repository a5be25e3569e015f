"""The registry of experiments that ``python -m experiments`` runs.

Two ways to add one:

* a weak-order study: drop a TOML config (the keys of ``sde-engine order``)
  into ``experiments/configs/``; its first comment line is its description.
  It is registered under the file's name and writes
  ``plots/<name>/order.{png,json,csv}``.
* anything else: decorate a function ``run(out_dir) -> dict`` with
  :func:`experiment` in a module listed in :data:`MODULES`; it writes its
  figures and their numbers (JSON) into ``out_dir`` = ``plots/<name>/`` and
  returns a small summary (the key numbers) for ``plots/summary.json``.

Experiments only call library code (:mod:`sde_engine.studies`); they hold no
numerics of their own.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CONFIGS = Path(__file__).parent / "configs"
# Modules whose @experiment functions are registered (import order = run order).
MODULES = ("experiments.figures",)
# Config files that are not experiments (timing references).
NOT_EXPERIMENTS = ("rmsprop_default_issue5.toml",)


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    run: Callable


EXPERIMENTS = {}


def experiment(name, description):
    """Register ``run(out_dir) -> dict`` as experiment ``name``."""
    def register(fn):
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} registered twice")
        EXPERIMENTS[name] = Experiment(name, description, fn)
        return fn
    return register


def _order_experiment(path):
    from sde_engine.studies.order_config import build_config, load_toml
    from sde_engine.studies.weak_order import run_order_study

    lines = path.read_text().splitlines()
    description = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""

    def run(out_dir):
        cfg = build_config(load_toml(str(path)))
        record = run_order_study(cfg, str(out_dir)).record
        return {test: dict(order_vs_lr=record["fits"][test]["vs_lr"]["order"],
                           ci=record["fits"][test]["vs_lr"]["ci"],
                           excluded_below_noise=sum(record["points"][test]["below_noise"]))
                for test in record["tests"]}

    return Experiment(path.stem, description, run)


def load():
    """All experiments: TOML order studies first, then the registered functions."""
    if not EXPERIMENTS:
        for path in sorted(CONFIGS.glob("*.toml")):
            if path.name not in NOT_EXPERIMENTS:
                EXPERIMENTS[path.stem] = _order_experiment(path)
        for module in MODULES:
            importlib.import_module(module)
    return EXPERIMENTS
