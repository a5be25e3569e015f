"""Wall-clock timing shared by the benchmarks (best of interleaved rounds)."""
import math
import time


def best_interleaved(calls, repeats):
    """Shortest wall time of each of ``calls`` (name -> compiled ``fn()``) over
    ``repeats`` rounds of one call each, in turn: a slow spell of the machine
    (its speed drifts by 10-20% within minutes) then hits every contender in
    that round rather than the one being timed."""
    best = dict.fromkeys(calls, math.inf)
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def best_seconds(fn, repeats):
    """Shortest wall time of ``repeats`` calls of ``fn()`` (compile first)."""
    return best_interleaved({"fn": fn}, repeats)["fn"]
