"""Built-in test functions of an optimizer state, asked for by name.

Names (SPEC §4 uses θ, θ², f):

==========  =======  ==============================================
name        values   meaning
==========  =======  ==============================================
``theta``   d        θ_i
``theta_sq`` d       θ_i²
``norm_sq`` 1        ‖θ‖²
``loss``    1        f(θ), the problem's loss
``m``       d        first moment m_i (Adam)
``v``       d        second moment v_i (RMSprop, Adam)
``ema``     d        the model EMA z_i (:func:`~.ema.with_ema`)
``ema_sq``  d        z_i²
==========  =======  ==============================================

A list of names becomes a table of rows ``(kind, offset, length)`` into the
state vector (layout :attr:`Optimizer.blocks`), evaluated by one compiled
function per loss; the table travels as data, so any list of names reuses the
same compiled code.
"""
import numpy as np
from numba import njit

OBSERVABLES = ("theta", "theta_sq", "norm_sq", "loss", "m", "v", "ema", "ema_sq")
_COPY, _SQUARE, _SUM_SQUARES, _LOSS = 0, 1, 2, 3
_KIND = {"theta": (_COPY, "theta"), "theta_sq": (_SQUARE, "theta"),
         "norm_sq": (_SUM_SQUARES, "theta"), "loss": (_LOSS, "theta"),
         "m": (_COPY, "m"), "v": (_COPY, "v"), "ema": (_COPY, "ema"),
         "ema_sq": (_SQUARE, "ema")}


def observable_table(names, optimizer, dim):
    """Translate observable names into a table and labels.

    Parameters
    ----------
    names : str or sequence of str
        Names from :data:`OBSERVABLES`.
    optimizer : Optimizer
        Gives the state layout.
    dim : int
        d, the dimension of θ.

    Returns
    -------
    table : ndarray of int64, shape (n_names, 3)
        Rows ``(kind, offset, length)``.
    labels : list of str
        One label per value written, e.g. ``["theta[0]", "theta[1]", "loss"]``.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("`observables` must name at least one of "
                         f"{OBSERVABLES}, got an empty list")
    rows, labels = [], []
    for name in names:
        if name not in _KIND:
            raise ValueError(f"`observables` entries must be in {OBSERVABLES}, got {name!r}")
        kind, block = _KIND[name]
        if block not in optimizer.blocks:
            raise ValueError(f"observable {name!r} needs {block!r}, but {optimizer.name}'s "
                             f"state is {optimizer.blocks}")
        sl = optimizer.block_slice(block, dim)
        rows.append((kind, sl.start, dim))
        if kind in (_COPY, _SQUARE):
            labels += [f"{name}[{i}]" for i in range(dim)]
        else:
            labels.append(name)
    return np.array(rows, dtype=np.int64).reshape(-1, 3), labels


def empty_table():
    """The table of no observables, shape (0, 3)."""
    return np.zeros((0, 3), dtype=np.int64)


def make_table_observer(loss):
    """Compile ``observe(table, x, params, out)`` for a problem's ``loss(θ, params)``."""

    @njit
    def observe(table, x, params, out):
        j = 0
        for r in range(table.shape[0]):
            kind = table[r, 0]
            off = table[r, 1]
            n = table[r, 2]
            if kind == _COPY:
                for i in range(n):
                    out[j + i] = x[off + i]
                j += n
            elif kind == _SQUARE:
                for i in range(n):
                    out[j + i] = x[off + i] * x[off + i]
                j += n
            elif kind == _SUM_SQUARES:
                total = 0.0
                for i in range(n):
                    total += x[off + i] * x[off + i]
                out[j] = total
                j += 1
            else:
                out[j] = loss(x[off:off + n], params)
                j += 1

    return observe
