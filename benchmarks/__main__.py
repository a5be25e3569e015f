"""``python -m benchmarks [--quick]``: see :mod:`benchmarks.solver_bench`."""
from .solver_bench import main

main()
