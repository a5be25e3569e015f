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


def build_parser():
    parser = _Parser(prog="sde-engine",
                     description="Simulate SDEs with Numba and study optimizers through "
                                 "their SDE limits.")
    parser.add_argument("--version", action="version", version=f"sde-engine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_solvers(sub)
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
