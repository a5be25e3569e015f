"""AdamQLR as a ``torch.optim.Optimizer`` (SPEC §7).

Adam's direction with a learning rate chosen by a damped quadratic model of the
loss and Levenberg–Marquardt damping (Clarke & Hernández-Lobato, ICML 2024).
torch is imported lazily, on first access to :class:`AdamQLR` or on
:func:`module_fn`: ``import sde_engine`` never needs it.

Example::

    import torch.nn.functional as F
    from sde_engine.optimizers.adamqlr_torch import AdamQLR, module_fn

    opt = AdamQLR(model.parameters())          # untuned defaults of SPEC §7
    for xb, yb in batches:
        opt.step(model_fn=module_fn(model, xb), loss_fn=lambda out: F.cross_entropy(out, yb))
        print(opt.last_step["alpha"], opt.last_step["damping"], opt.last_step["rho"])

How the optimizer sees the model
--------------------------------
A curvature–vector product needs the model as a function of its parameters, so
:meth:`AdamQLR.step` takes, besides the usual closure, the two halves of the
loss on the current minibatch:

``model_fn(*params) -> outputs``
    the model's outputs as a pure function of the optimizer's parameter tensors,
    in the order they were given to the optimizer (:func:`module_fn` builds it
    for an ``nn.Module`` with ``torch.func.functional_call``);
``loss_fn(outputs) -> loss``
    the scalar minibatch loss of those outputs (targets captured inside).

``closure()`` (optional) returns the same loss at the current parameter values,
without calling ``backward``; it defaults to ``loss_fn(model_fn(*params))``.
The optimizer evaluates it twice per step, at θ (with autograd, for f0 and g)
and at the new point (under ``no_grad``, for f1), so it must use the same batch
both times.

Curvature (``curvature=``)
    ``"gauss_newton"`` (default): dᵀCd = uᵀ H_out u with u = J d from one
    ``torch.func.jvp`` through ``model_fn`` and H_out the Hessian of
    ``loss_fn`` with respect to the outputs (double backward through
    ``loss_fn`` alone; cheap). This is the exact generalised
    Gauss–Newton matrix of the given loss: for a batch-mean squared error
    ½‖y_i − t_i‖² it is the batch mean of ‖J_i d‖², for softmax cross-entropy
    the batch mean of (J_i d)ᵀ(diag p_i − p_i p_iᵀ)(J_i d) (the Fisher).
    ``"hessian"``: dᵀHd from ``torch.func.vjp`` of ``torch.func.grad`` of the
    whole loss (reverse-over-reverse; H is symmetric); may be negative.
"""
from ..validation import choice
from .adamqlr import (CURVATURES, LR_CLIPPING, check_hyperparameters, qlr_alpha, qlr_damping,
                      qlr_rho)


def _import_torch():
    import torch
    import torch.func  # noqa: F401
    return torch


def module_fn(module, *inputs):
    """``model_fn`` for an ``nn.Module``: ``model_fn(*params) = module(*inputs)``.

    The parameter tensors are matched to ``module.named_parameters()`` in order,
    so the optimizer must have been built from ``module.parameters()``.
    """
    torch = _import_torch()
    names = [name for name, _ in module.named_parameters()]

    def model_fn(*params):
        return torch.func.functional_call(module, dict(zip(names, params)), inputs)

    return model_fn


def _make_optimizer_class():
    torch = _import_torch()

    class AdamQLR(torch.optim.Optimizer):
        r"""AdamQLR: Adam's direction, a curvature-chosen step size, LM damping (SPEC §7).

        One step on the minibatch loss f, step counter k = 1, 2, ...::

            f0, g = f(θ), ∇f(θ)
            m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g²
            d = (m / (1−β1^k)) / (sqrt(v / (1−β2^k)) + ε)        (no learning rate)
            A = dᵀCd + λ dᵀd ;  b = gᵀd ;  α = b / A  (α = 0 if A = 0)
            α ← clip(α, −c, c)                                   (c = lr_clipping)
            θ ← θ − α d
            f1 = f(θ) ;  ρ = (f1 − f0) / (½ α² A − α b)
            λ ← ω_dec λ if ρ > 3/4 ;  λ ← ω_inc λ if ρ < 1/4 ;  λ ← max(λ, λ_min) ;
            NaN ρ leaves λ unchanged.

        Parameters
        ----------
        params : iterable of tensors
            One parameter group (α is a single scalar for all parameters).
        betas : (float, float), default (0.9, 0.999)
        eps : float, default 1e-8
        damping : float, default 1e-3
            Initial damping λ0.
        omega_dec, omega_inc : float, default 0.5, 2.0
        curvature : {"gauss_newton", "hessian"}, default "gauss_newton"
        lr_clipping : float or None, default 0.1
            c in α ← clip(α, −c, c): |α| ≤ c with the sign kept (a negative α is
            clipped to ≥ −c); ρ and the damping use the clipped α. 0.1 is the
            authors' untuned configuration (SPEC §7); None turns clipping off.
        damping_min : float, default 1e-8
            Floor of λ.

        Attributes
        ----------
        last_step : dict
            After each step: ``loss`` (f0), ``loss_new`` (f1), ``alpha``,
            ``damping`` (λ used in this step), ``next_damping``, ``rho``,
            ``gtd`` (gᵀd), ``dcd`` (dᵀCd), ``dtd`` (dᵀd), ``step`` (k); floats.
        """

        def __init__(self, params, *, betas=(0.9, 0.999), eps=1e-8, damping=1e-3,
                     omega_dec=0.5, omega_inc=2.0, curvature="gauss_newton",
                     lr_clipping=LR_CLIPPING, damping_min=1e-8):
            defaults = check_hyperparameters(betas, eps, damping, omega_dec, omega_inc,
                                             lr_clipping, damping_min)
            defaults["curvature"] = choice(curvature, "curvature", CURVATURES)
            super().__init__(params, defaults)
            if len(self.param_groups) != 1:
                raise ValueError("`params` must form a single parameter group for AdamQLR "
                                 f"(one α for all), got {len(self.param_groups)} groups")
            self.last_step = {}

        def step(self, closure=None, *, model_fn=None, loss_fn=None):
            """One AdamQLR step; returns f0 (the loss before the step) as a tensor.

            See the module docstring for ``closure``, ``model_fn`` and ``loss_fn``.
            """
            if model_fn is None or not callable(model_fn):
                raise ValueError(f"`model_fn` must be a callable model_fn(*params), got {model_fn!r}")
            if loss_fn is None or not callable(loss_fn):
                raise ValueError(f"`loss_fn` must be a callable loss_fn(outputs), got {loss_fn!r}")
            group = self.param_groups[0]
            params = [p for p in group["params"]]
            if closure is None:
                def closure():
                    return loss_fn(model_fn(*params))

            with torch.enable_grad():
                loss = closure()
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            f0 = float(loss.detach())
            # one flat vector for g, m, v and d: a few tensor ops per step whatever the
            # number of parameter tensors
            g = torch.cat([(torch.zeros_like(p) if gr is None else gr).reshape(-1)
                           for p, gr in zip(params, grads)])

            gstate = self.state[params[0]]
            if "step" not in gstate:
                gstate["step"] = 0
                gstate["damping"] = group["damping"]
                gstate["exp_avg"] = torch.zeros_like(g)
                gstate["exp_avg_sq"] = torch.zeros_like(g)
            k = gstate["step"] + 1
            b1, b2 = group["betas"]
            with torch.no_grad():
                m, v = gstate["exp_avg"], gstate["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                d = (m / (1.0 - b1 ** k)) / ((v / (1.0 - b2 ** k)).sqrt() + group["eps"])
                gtd = float(g @ d)
                dtd = float(d @ d)
            directions = [t.view_as(p) for t, p in zip(d.split([p.numel() for p in params]),
                                                       params)]

            dcd = float(self._curvature(group["curvature"], params, directions, model_fn, loss_fn))
            lam = gstate["damping"]
            alpha, a = qlr_alpha(gtd, dcd, dtd, lam, group["lr_clipping"])
            alpha, a = float(alpha), float(a)
            with torch.no_grad():
                torch._foreach_add_(params, directions, alpha=-alpha)
                f1 = float(closure().detach())
            rho = float(qlr_rho(f0, f1, alpha, a, gtd))
            new_lam = float(qlr_damping(lam, rho, group["omega_dec"], group["omega_inc"],
                                  group["damping_min"]))
            gstate["step"] = k
            gstate["damping"] = new_lam
            self.last_step = dict(step=k, loss=f0, loss_new=f1, alpha=alpha, damping=lam,
                                  next_damping=new_lam, rho=rho, gtd=gtd, dcd=dcd, dtd=dtd)
            return loss.detach()

        @staticmethod
        def _curvature(kind, params, directions, model_fn, loss_fn):
            """dᵀCd for C the Gauss–Newton matrix or the Hessian at the current θ."""
            primals = tuple(p.detach() for p in params)
            tangents = tuple(directions)
            if kind == "gauss_newton":
                outputs, u = torch.func.jvp(model_fn, primals, tangents)
                # H_out u by double backward on the (small) outputs: plain autograd has far
                # less overhead here than a torch.func transform of grad(loss_fn)
                out = outputs.detach().requires_grad_(True)
                with torch.enable_grad():
                    (g_out,) = torch.autograd.grad(loss_fn(out), out, create_graph=True)
                    if not g_out.requires_grad:   # loss linear in the outputs: H_out = 0
                        return torch.zeros(())
                    (hu,) = torch.autograd.grad(g_out, out, grad_outputs=u)
                return (u * hu).sum()

            def full_loss(*p):
                return loss_fn(model_fn(*p))

            argnums = tuple(range(len(primals)))
            _, pullback = torch.func.vjp(torch.func.grad(full_loss, argnums=argnums), *primals)
            hd = pullback(tangents)
            return sum((d * h).sum() for d, h in zip(directions, hd))

    return AdamQLR


_CLASS = None


def __getattr__(name):
    # Build the torch subclass on first access so that importing this module needs no torch.
    global _CLASS
    if name == "AdamQLR":
        if _CLASS is None:
            _CLASS = _make_optimizer_class()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
