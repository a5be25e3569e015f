"""The table of :func:`sde_engine.simulate`'s backends other than Numba.

``simulate(..., backend=name)`` with ``name != "numba"`` calls the function
registered here under ``name``, with the same arguments as ``simulate``
(keyword-only after ``n_paths``). A backend registers itself when its package
is imported (:mod:`sde_engine.torch` registers ``"torch"``; ``import
sde_engine`` imports it), so :mod:`sde_engine.simulate` never imports a backend
and no backend module is imported back by the core.
"""
_SIMULATORS = {}   # backend name -> simulate-like callable


def register_backend(name, simulator):
    """Make ``simulate(..., backend=name)`` call ``simulator``.

    Parameters
    ----------
    name : str
        Backend name, not ``"numba"`` (the built-in one).
    simulator : callable
        ``simulator(sde, x0, t_span, dt, n_paths, **options) -> Solution``.
    """
    if not isinstance(name, str) or not name or name == "numba":
        raise ValueError(f"`name` must be a non-empty string other than 'numba', got {name!r}")
    if not callable(simulator):
        raise ValueError(f"`simulator` must be callable, got {simulator!r}")
    _SIMULATORS[name] = simulator


def backend_simulator(name):
    """The function registered for backend ``name``; ``ValueError`` listing them if none."""
    try:
        return _SIMULATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"`backend` {name!r} is not registered; registered: "
                         f"{['numba', *sorted(_SIMULATORS)]}") from None
