"""Brownian increments on the integer step grid, drawn in order from one torch generator.

:func:`.runner.integrate` runs torchsde in *step time* s = (t − t0)/dt, so
the step grid is 0, 1, 2, ... (exact in floating point) and every increment
is a standard normal. torchsde's own ``BrownianInterval`` would give the same
law but builds a binary tree of Brownian-bridge samples in Python, one full
(batch, m) draw per node; this class draws exactly one (batch, m) block per
step (two for SRK), so memory does not grow with the number of steps.
"""
import torch
from torchsde import BaseBrownian


class GridBrownian(BaseBrownian):
    """Brownian motion in step time, queried one unit step at a time, in order.

    Parameters
    ----------
    size : (int, int)
        (batch, noise_dim).
    generator : torch.Generator
        Source of every draw, on ``device``. A fixed seed gives a fixed path
        for a given device, dtype and size.
    dtype, device
        Of the increments.
    space_time : bool
        Also draw the space-time Lévy area H ~ N(0, 1/12) per step (needed by
        ``srk``); ``return_U=True`` then gives U = ∫ (W_s − W_a) ds = W/2 + H.
    refine : int
        Draw each step's increment as the sum of ``refine`` independent
        N(0, 1/refine) pieces, in order. Runs whose steps are 1 and 2 fine
        pieces long (dt and 2 dt with the same resolution) then see the same
        Brownian path, as the Numba driver's ``brownian_dt`` does. Not with
        ``space_time``.

    Notes
    -----
    Steps are drawn in the order ``W_0, [H_0], W_1, [H_1], ...`` (each W_k
    made of ``refine`` consecutive (batch, m) blocks). A query
    ``(a, a + 1)`` for the step just drawn returns the cached block (solvers
    may ask twice); a query that skips or goes back raises ``RuntimeError``.
    """

    __slots__ = ("_size", "_generator", "_dtype", "_device", "_space_time", "_refine", "_step",
                 "_W", "_H")

    def __init__(self, size, generator, dtype, device, space_time=False, refine=1):
        super().__init__()
        self._size = tuple(size)
        self._generator = generator
        self._dtype = dtype
        self._device = torch.device(device)
        if space_time and refine != 1:
            raise ValueError("GridBrownian: space-time Lévy area with refine > 1 is not supported")
        self._space_time = space_time
        self._refine = int(refine)
        self._step = -1
        self._W = self._H = None

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if return_A:
            raise RuntimeError("GridBrownian provides no Lévy area A; use a method that does "
                               "not need it (euler, milstein, srk)")
        if return_U and not self._space_time:
            raise RuntimeError("GridBrownian was built without space-time Lévy area (space_time=False)")
        a = float(ta)
        k = int(round(a))
        if tb is None or a != k or float(tb) != k + 1:
            raise RuntimeError(f"GridBrownian answers unit steps (k, k+1) only, got ({ta}, {tb})")
        if k == self._step + 1:
            self._draw()
        elif k != self._step:
            raise RuntimeError(f"GridBrownian is sequential: asked for step {k} after step {self._step}")
        if return_U:
            return self._W, 0.5 * self._W + self._H
        return self._W

    def _draw(self):
        self._W = torch.randn(self._size, generator=self._generator, dtype=self._dtype,
                              device=self._device)
        if self._refine > 1:
            for _ in range(self._refine - 1):
                self._W += torch.randn(self._size, generator=self._generator, dtype=self._dtype,
                                       device=self._device)
            self._W *= self._refine ** -0.5
        if self._space_time:
            self._H = torch.randn(self._size, generator=self._generator, dtype=self._dtype,
                                  device=self._device) * (1.0 / 12.0) ** 0.5
        self._step += 1

    def __repr__(self):
        return (f"GridBrownian(size={self._size}, dtype={self._dtype}, device={self._device}, "
                f"space_time={self._space_time}, refine={self._refine}, step={self._step})")

    @property
    def dtype(self):
        return self._dtype

    @property
    def device(self):
        return self._device

    @property
    def shape(self):
        return torch.Size(self._size)

    @property
    def levy_area_approximation(self):
        return "space-time" if self._space_time else "none"
