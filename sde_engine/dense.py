"""Small dense products for user functions, written into ``out`` without allocating.

Inside the engine's compiled path loop, ``out[:] = A @ x`` or ``np.dot(A, x)``
allocates a new array and calls BLAS on every step of every path. For the small
matrices of an SDE that costs far more than the arithmetic: on the 5-D,
4-noise linear SDE of Rößler (2010, eq. 7.4), Euler–Maruyama ran at
2.4·10⁷ path·dim-steps/s with ``@`` in the drift and diffusion against
2.2·10⁸ with the same products written as loops (``python -m
benchmarks.general_noise_bench``; the engine warns about allocating user
functions, :class:`sde_engine.user_functions.AllocationWarning`). These
functions are those loops, compiled inline into the caller; call them from a
drift, diffusion or observables function::

    from sde_engine.dense import matvec, matvec_column

    A = np.array(...)                 # module-level arrays are compile-time constants

    def drift(t, x, params, out):
        matvec(A, x, out)             # out = A x

    def diffusion(t, x, params, out):  # general noise, out: (dim, noise_dim)
        for k in range(out.shape[1]):
            matvec_column(B[k], x, out, k)  # column k = B_k x

Shapes are not checked (the loop runs over ``a``'s shape); the engine's
``check_bounds=True`` finds a mismatch.
"""
from numba import njit


@njit(inline="always")
def matvec(a, x, out):
    """``out = a x``: out_i = Σ_j a_ij x_j.

    Parameters
    ----------
    a : ndarray, shape (n, k)
    x : ndarray, shape (k,)
    out : ndarray, shape (n,)
        Written in place (for a column of a 2-D array use :func:`matvec_column`).
    """
    for i in range(a.shape[0]):
        acc = 0.0
        for j in range(a.shape[1]):
            acc += a[i, j] * x[j]
        out[i] = acc


@njit(inline="always")
def matvec_column(a, x, out, k):
    """``out[:, k] = a x`` for a 2-D ``out`` (e.g. a general-noise diffusion).

    Indexes ``out`` directly rather than through the view ``out[:, k]``, whose
    making cost 17% of the Euler–Maruyama rate on Rößler's 5-D SDE (measured:
    1.84·10⁸ against 2.2·10⁸ path·dim-steps/s).
    """
    for i in range(a.shape[0]):
        acc = 0.0
        for j in range(a.shape[1]):
            acc += a[i, j] * x[j]
        out[i, k] = acc


@njit(inline="always")
def matvec_add(a, x, out):
    """``out += a x``: out_i += Σ_j a_ij x_j (shapes as :func:`matvec`)."""
    for i in range(a.shape[0]):
        acc = out[i]
        for j in range(a.shape[1]):
            acc += a[i, j] * x[j]
        out[i] = acc
