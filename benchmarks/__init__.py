"""Performance comparisons of the engine (not part of the test run).

``python -m benchmarks`` prints the solver table (:mod:`benchmarks.solver_bench`)
and the optimizer rows of :mod:`benchmarks.optimizer_bench`.
"""
