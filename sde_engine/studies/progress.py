"""A progress bar with an ETA, drawn only on a terminal (quiet in scripts and logs)."""
import sys
import time


class Progress:
    """Counts units of work (e.g. paths) and redraws one stderr line.

    Parameters
    ----------
    total : int
        Units of work in the whole job (finished ones included).
    done : int
        Units already finished (e.g. loaded from a checkpoint); they do not
        enter the rate used for the ETA.
    enabled : bool, optional
        Default: ``sys.stderr.isatty()``.
    """

    def __init__(self, total, done=0, label="", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = max(int(total), 1)
        self.done = int(done)
        self.start_done = self.done
        self.label = label
        self.start = time.perf_counter()

    def advance(self, units, note=""):
        self.done += int(units)
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        eta_text = "--" if eta != eta else _clock(eta)
        self.stream.write(f"\r{self.label} [{bar}] {100 * frac:5.1f}%  "
                          f"elapsed {_clock(elapsed)}  ETA {eta_text}  {note:<20s}")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"
