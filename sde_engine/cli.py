"""The ``sde-engine`` command. Thin: parses arguments and calls library code.

Bad arguments or configs produce one line on stderr (``sde-engine: error: ...``)
and exit status 2, before anything is written.
"""
import argparse
import sys

from . import __version__

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or configuration, reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _strings(text):
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_solvers(sub):
    p = sub.add_parser("solvers", help="EM/Milstein strong and weak convergence study on GBM/OU",
                       description="Strong and weak errors of Euler–Maruyama and Milstein "
                                   "against the exact solution on the same Brownian paths.")
    p.add_argument("--model", choices=("gbm", "ou"), default="gbm")
    p.add_argument("--methods", type=_strings, default=["euler_maruyama", "milstein"],
                   help="comma-separated schemes (default: euler_maruyama,milstein)")
    p.add_argument("--dts", type=_floats, default=None,
                   help="comma-separated step sizes (default T·2^-2 … T·2^-7)")
    p.add_argument("--t1", type=float, default=1.0, help="horizon T")
    p.add_argument("--x0", type=float, default=1.0)
    p.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="plots/solvers", help="output folder")
    p.set_defaults(run=_run_solvers)


def _run_solvers(args):
    from .studies.results import check_output_dir
    from .studies.solver_convergence import save_convergence, solver_convergence

    check_output_dir(args.out)
    result = solver_convergence(args.model, methods=args.methods, dts=args.dts, t1=args.t1,
                                x0=args.x0, n_paths=args.paths, seed=args.seed)
    paths = save_convergence(result, args.out, stem=f"{args.model}_solvers")
    print(result.table())
    print(f"\ntable: {paths['table']}\nnumbers: {paths['json']}\nplot: {paths['plot']}")
    return 0


def _add_config_keys(p):
    from .studies.order_config import KEYS, key_kind

    p.add_argument("config", nargs="?", help="TOML config file (optional if flags say all)")
    keys = p.add_argument_group("config keys (override the file)")
    for key in KEYS:
        keys.add_argument(f"--{key.replace('_', '-')}", dest=f"key_{key}", default=None,
                          metavar=key_kind(key).upper())


def _add_order(sub):
    p = sub.add_parser(
        "order", help="weak-order study: a discrete optimizer against its SDE",
        description="Estimate E φ(x_k) of the discrete algorithm at k = T/η² (T/η for SGD) and "
                    "E φ(X_T) of its SDE for each learning rate, and fit the order of the weak "
                    "error. Every config key can also be given as a flag (it overrides the "
                    "file). Results: DIR/order.json, order.csv, order.png; DIR/checkpoint/ "
                    "lets an interrupted study resume.")
    p.add_argument("--out", required=True, help="output folder DIR")
    p.add_argument("--max-points", type=int, default=None,
                   help="compute at most this many new learning rates, then stop (rerun to "
                        "continue from the checkpoint)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    p.add_argument("--restart", action="store_true",
                   help="discard the checkpoints in DIR/checkpoint/ and compute everything "
                        "again")
    cluster = p.add_argument_group(
        "Dask cluster (needs the [distributed] extra; same numbers as in process)")
    where = cluster.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the chunks on the workers of this Dask scheduler, "
                            "e.g. tcp://HOST:8786")
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run the chunks on a local Dask cluster of N worker processes")
    _add_config_keys(p)
    p.set_defaults(run=_run_order)


def order_config_from_args(args):
    """The validated OrderConfig from the config file and the flags (flags win)."""
    from .studies.order_config import KEYS, build_config, parse_flag_value

    values = _read_config(args.config) if args.config else {}
    for key in KEYS:
        text = getattr(args, f"key_{key}")
        if text is not None:
            values[key] = parse_flag_value(key, text)
    return build_config(values)


def _read_config(path):
    """The keys of config file ``path``; unreadable or binary files get one line naming it."""
    import os

    from .studies.order_config import load_toml

    if os.path.isdir(path):
        raise UsageError(f"config file {path} is a folder, not a TOML file")
    try:
        return load_toml(path)
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {exc.start}); a config "
                         f"is a TOML text file") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _run_order(args):
    import os

    from .studies.checkpoints import PointStore
    from .studies.results import check_output_dir
    from .studies.weak_order import run_order_study

    cfg = order_config_from_args(args)
    check_output_dir(args.out)
    check_output_dir(os.path.join(args.out, "checkpoint"), name="--out checkpoint folder")
    if args.max_points is not None and args.max_points < 1:
        raise UsageError(f"--max-points must be ≥ 1, got {args.max_points}")
    if args.restart:
        PointStore(args.out).clear()
    executor = _dask_executor(args)
    try:
        result = run_order_study(cfg, args.out, max_points=args.max_points,
                                 progress=args.progress, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    if not result.complete:
        print(f"stopped after {args.max_points} new point(s); rerun the same command to "
              f"continue from {os.path.join(args.out, 'checkpoint')}")
        return 0
    print(result.table())
    print(f"\nnumbers: {os.path.join(args.out, 'order.json')} (and order.csv)\n"
          f"plot: {os.path.join(args.out, 'order.png')}")
    return 0


def _dask_executor(args):
    """The started Dask executor of --scheduler/--workers, or None (in process)."""
    if args.scheduler is None and args.workers is None:
        return None
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be ≥ 1, got {args.workers}")
    from .studies.distributed import DaskExecutor

    try:
        return DaskExecutor(scheduler=args.scheduler, workers=args.workers).start()
    except (ImportError, ConnectionError) as exc:
        raise UsageError(str(exc)) from None


def _add_plot(sub):
    p = sub.add_parser("plot", help="figures of dynamics (plot trajectories ...)")
    kinds = p.add_subparsers(dest="figure", metavar="FIGURE", parser_class=_Parser)
    kinds.required = True
    t = kinds.add_parser(
        "trajectories", help="discrete vs SDE: mean ± sd of each test function against SDE time",
        description="For each learning rate of the config (or --lrs), run the discrete "
                    "algorithm and draw the mean ± sd of each test function against SDE time "
                    "k·h, with the SDE (Euler–Maruyama, fine step) on top. Writes "
                    "DIR/trajectories_<test>.png and DIR/trajectories.json.")
    t.add_argument("--out", required=True, help="output folder DIR")
    t.add_argument("--runs", type=int, default=20_000,
                   help="discrete runs and SDE paths per curve (default 20000)")
    _add_config_keys(t)
    t.set_defaults(run=_run_trajectories)


def _run_trajectories(args):
    import os

    from . import plotting
    from .studies.results import check_output_dir, write_json
    from .studies.trajectories import trajectory_figures, trajectory_record

    cfg = order_config_from_args(args)
    if args.runs < 1:
        raise UsageError(f"--runs must be ≥ 1, got {args.runs}")
    check_output_dir(args.out)
    record = trajectory_record(cfg, n_paths=args.runs)
    write_json(os.path.join(args.out, "trajectories.json"), record)
    for test, fig in trajectory_figures(record).items():
        path = plotting.save_figure(fig, os.path.join(args.out, f"trajectories_{test}.png"))
        print(f"plot: {path}")
    print(f"numbers: {os.path.join(args.out, 'trajectories.json')}")
    return 0


def _add_simulate(sub):
    p = sub.add_parser(
        "simulate", help="run one model (an optimizer's SDE or its discrete runs); save npz + plot",
        description="Simulate the SDE of the config's algorithm at one learning rate (--side "
                    "sde, Euler–Maruyama at --dt) or run the discrete algorithm (--side "
                    "discrete). Saves DIR/simulate.npz (t, mean and sd of each test function; "
                    "with --keep-paths the SDE states too) and DIR/simulate.png.")
    p.add_argument("--out", required=True, help="output folder DIR")
    p.add_argument("--side", choices=("sde", "discrete"), default="sde")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the smallest of the config)")
    p.add_argument("--runs", type=int, default=10_000, help="paths or runs (default 10000)")
    p.add_argument("--dt", type=float, default=None, help="SDE step (default: sde_dt of the config)")
    p.add_argument("--keep-paths", action="store_true", help="also save every SDE state")
    _add_config_keys(p)
    p.set_defaults(run=_run_simulate)


def _run_simulate(args):
    import os

    import numpy as np

    from . import plotting
    from .studies.order_config import with_overrides
    from .studies.results import check_output_dir
    from .studies.trajectories import discrete_curve, sde_curve, sde_steps
    from .studies.units import tag_failure

    cfg = order_config_from_args(args)
    lr = min(cfg.lrs) if args.lr is None else args.lr
    if not lr > 0 or (args.dt is not None and not args.dt > 0) or args.runs < 1:
        raise UsageError(f"--lr, --dt and --runs must be positive, got {lr}, {args.dt}, "
                         f"{args.runs}")
    if args.keep_paths and args.side != "sde":
        raise UsageError("--keep-paths applies to --side sde only")
    cfg = with_overrides(cfg, lrs=[lr])          # validates β ≥ 0 etc. at this lr
    if args.dt is not None:
        sde_steps(cfg, args.dt, name="--dt")
    check_output_dir(args.out)
    try:
        if args.side == "sde":
            curve = sde_curve(cfg, lr, args.runs, n_points=201, dt=args.dt,
                              keep_paths=args.keep_paths)
        else:
            curve = discrete_curve(cfg, lr, args.runs, n_points=201)
    except FloatingPointError as exc:
        raise tag_failure(exc, f"lr {lr:g}")
    os.makedirs(args.out, exist_ok=True)
    npz = os.path.join(args.out, "simulate.npz")
    tmp = npz + ".tmp.npz"
    np.savez(tmp, tests=np.array(cfg.tests), lr=lr,
             **{k: np.asarray(v) for k, v in curve.items() if k not in ("lr",)})
    os.replace(tmp, npz)
    label = f"{cfg.algorithm} {'SDE' if args.side == 'sde' else 'runs'}, η = {lr:g}"
    fig = plotting.plot_curves(curve["t"], curve["mean"], curve["sd"], list(cfg.tests), label)
    png = plotting.save_figure(fig, os.path.join(args.out, "simulate.png"))
    print(f"numbers: {npz}\nplot: {png}")
    return 0


def build_parser():
    parser = _Parser(prog="sde-engine",
                     description="Simulate SDEs with Numba and study optimizers through "
                                 "their SDE limits.")
    parser.add_argument("--version", action="version", version=f"sde-engine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_solvers(sub)
    _add_order(sub)
    _add_plot(sub)
    _add_simulate(sub)
    return parser


def main(argv=None):
    """Entry point of the ``sde-engine`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"sde-engine: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as exc:        # DivergenceError: paths became NaN/inf
        where = getattr(exc, "study_point", None)
        print(f"sde-engine: diverged{f' at {where}' if where else ''}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:                   # e.g. the disk filled up while writing
        print(f"sde-engine: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sde-engine: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
