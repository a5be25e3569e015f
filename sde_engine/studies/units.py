"""Units of work of a study: evaluate one, and say which study point a failure belongs to.

A unit is an argument tuple whose first entry is the study point: a learning
rate (discrete chunks: ``(lr, path_offset, n_paths)``) or a list of learning
rates (a simulated SDE reference shared by several η).
"""


def point_label(unit):
    """Words for the study point of ``unit``, e.g. ``"lr 0.4"`` or ``"lr 0.4, 0.2"``."""
    point = unit[0] if isinstance(unit, tuple) and unit else unit
    if isinstance(point, (list, tuple)):
        return "lr " + ", ".join(f"{x:g}" for x in point)
    if isinstance(point, float):
        return f"lr {point:g}"
    return str(point)


def tag_failure(exc, where):
    """Record on ``exc`` (once, innermost wins) the study point it happened at.

    The command line prints it: ``sde-engine: diverged at lr 3: ...``.
    """
    if getattr(exc, "study_point", None) is None:
        exc.study_point = where
    return exc


def evaluate(fn, cfg, unit):
    """``fn(cfg, *unit)``; a divergence (FloatingPointError) is tagged with the unit's point."""
    try:
        return fn(cfg, *unit)
    except FloatingPointError as exc:
        raise tag_failure(exc, point_label(unit))
