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
    from .studies.solver_convergence import save_convergence, solver_convergence

    result = solver_convergence(args.model, methods=args.methods, dts=args.dts, t1=args.t1,
                                x0=args.x0, n_paths=args.paths, seed=args.seed)
    paths = save_convergence(result, args.out, stem=f"{args.model}_solvers")
    print(result.table())
    print(f"\ntable: {paths['table']}\nnumbers: {paths['json']}\nplot: {paths['plot']}")
    return 0


def _add_order(sub):
    from .studies.order_config import KEYS, key_kind

    p = sub.add_parser(
        "order", help="weak-order study: a discrete optimizer against its SDE",
        description="Estimate E φ(x_k) of the discrete algorithm at k = T/η² (T/η for SGD) and "
                    "E φ(X_T) of its SDE for each learning rate, and fit the order of the weak "
                    "error. Every config key can also be given as a flag (it overrides the "
                    "file). Results: DIR/order.json, order.csv, order.png; DIR/checkpoint/ "
                    "lets an interrupted study resume.")
    p.add_argument("config", nargs="?", help="TOML config file (optional if flags say all)")
    p.add_argument("--out", required=True, help="output folder DIR")
    p.add_argument("--max-points", type=int, default=None,
                   help="compute at most this many new learning rates, then stop (rerun to "
                        "continue from the checkpoint)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only on a terminal)")
    keys = p.add_argument_group("config keys (override the file)")
    for key in KEYS:
        keys.add_argument(f"--{key.replace('_', '-')}", dest=f"key_{key}", default=None,
                          metavar=key_kind(key).upper())
    p.set_defaults(run=_run_order)


def order_config_from_args(args):
    """The validated OrderConfig from the config file and the flags (flags win)."""
    from .studies.order_config import KEYS, build_config, load_toml, parse_flag_value

    values = load_toml(args.config) if args.config else {}
    for key in KEYS:
        text = getattr(args, f"key_{key}")
        if text is not None:
            values[key] = parse_flag_value(key, text)
    return build_config(values)


def _run_order(args):
    import os

    from .studies.weak_order import run_order_study

    cfg = order_config_from_args(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} exists and is not a folder")
    if args.max_points is not None and args.max_points < 1:
        raise UsageError(f"--max-points must be ≥ 1, got {args.max_points}")
    result = run_order_study(cfg, args.out, max_points=args.max_points, progress=args.progress)
    if not result.complete:
        print(f"stopped after {args.max_points} new point(s); rerun the same command to "
              f"continue from {os.path.join(args.out, 'checkpoint')}")
        return 0
    print(result.table())
    print(f"\nnumbers: {os.path.join(args.out, 'order.json')} (and order.csv)\n"
          f"plot: {os.path.join(args.out, 'order.png')}")
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
    except KeyboardInterrupt:
        print("sde-engine: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
