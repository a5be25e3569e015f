"""The user's functions inside compiled code: compile errors name the function, the
argument type of ``sde`` is checked, and ``check_bounds=True`` finds an index out of
bounds that happens only along the paths (issue #15, items 8 and 11).

One tiny SDE is compiled once, bounds-checked; its parameters switch the
out-of-bounds writes on, so every scenario reuses that driver (``SDE.with_params``
shares it). Compile errors fail at Numba's typing stage, before code is generated.
"""
import numpy as np
import pytest

import sde_engine as se
from sde_engine.models import adam_sde
from sde_engine.optimizers import sgd
from sde_engine.problems import custom_problem, quadratic
from sde_engine.user_functions import BoundsError, USER_FUNCTIONS_DOC, numba_reason

T_SPAN, DT, N_PATHS = (0.0, 1.0), 0.125, 64
SAVE_AT = np.arange(0.0, 1.0 + DT / 2, DT)          # every step
A, B = 1.0, 0.5                                      # dX = -A X dt + B dW


# ---- a tiny SDE whose functions write out of bounds when a parameter says so ----------
# p = [drift switch, diffusion switch, observables switch]; a switch > 0 makes that
# function write out[3] (out has shape (1,)) once t > 0.5, never at t0 = 0.
def _oob_drift(t, x, p, out):
    if p[0] > 0.0 and t > 0.5:
        out[3] = 1.0
    out[0] = -A * x[0]


def _oob_diffusion(t, x, p, out):
    if p[1] > 0.0 and t > 0.5:
        out[3] = 1.0
    out[0] = B


def _oob_observables(t, x, p, out):
    if p[2] > 0.0 and t > 0.5:
        out[3] = 1.0
    out[0] = x[0]


OOB_SDE = se.SDE(_oob_drift, _oob_diffusion, dim=1, params=np.zeros(3), name="oob")


def _checked_run(params):
    return se.simulate(OOB_SDE.with_params(params), [1.0], T_SPAN, DT, N_PATHS, seed=3,
                       save_at=SAVE_AT, observables=_oob_observables, n_observables=1,
                       save_paths=True, save_brownian=True, check_bounds=True)


@pytest.mark.parametrize("switch, label", [(0, "drift"), (1, "diffusion"), (2, "observables")])
def test_check_bounds_names_the_function_that_indexes_out_of_bounds(switch, label):
    params = np.zeros(3)
    params[switch] = 1.0
    with pytest.raises(IndexError, match=rf"`{label}` \(_oob_{label} in test_user_functions"
                                         rf"\.py\) indexed an array out of bounds") as info:
        _checked_run(params)
    assert isinstance(info.value, BoundsError)
    message = str(info.value)
    assert "check_bounds=True" in message and "shape (1,)" in message
    assert USER_FUNCTIONS_DOC in message


def test_check_bounds_computes_the_euler_maruyama_paths_when_in_bounds():
    sol = _checked_run(np.zeros(3))
    dW = np.diff(sol.W[:, :, 0], axis=0)                # (n_steps, n_paths), every step saved
    x = np.ones(N_PATHS)
    for k in range(len(dW)):
        x = x + (-A * x) * DT + B * dW[k]
        np.testing.assert_allclose(sol.x[k + 1, :, 0], x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(sol.mean[:, 0], sol.x[:, :, 0].mean(axis=1), rtol=1e-12)


def test_check_bounds_is_a_flag_of_the_numba_backend():
    with pytest.raises(ValueError, match="`check_bounds` must be True or False, got 'yes'"):
        se.simulate(OOB_SDE, [1.0], T_SPAN, DT, 4, check_bounds="yes")
    with pytest.raises(ValueError, match="`check_bounds` applies to backend='numba' only"):
        se.simulate(OOB_SDE, [1.0], T_SPAN, DT, 4, check_bounds=True, backend="torch")


# ---- functions Numba cannot compile --------------------------------------------------
def _python_helper(v):          # a plain Python function: Numba cannot call it
    return -v


def _uncompilable_drift(t, x, p, out):
    out[0] = _python_helper(x[0])


def _uncompilable_observables(t, x, p, out):
    out[0] = np.sum(x, keepdims=True)[0]      # fine in NumPy, not in Numba


def _compile_error_message(label, name, reason):
    return (rf"`{label}` \({name} in test_user_functions\.py\) cannot be compiled by Numba: "
            rf"{reason}.* at test_user_functions\.py, line \d+: .*"
            rf"see README\.md, section \"User functions\"")


def test_a_drift_numba_cannot_compile_is_named():
    sde = se.SDE(_uncompilable_drift, _oob_diffusion, dim=1, params=np.zeros(3))
    with pytest.raises(ValueError, match=_compile_error_message(
            "drift", "_uncompilable_drift", "Untyped global name '_python_helper'")) as info:
        se.simulate(sde, [1.0], T_SPAN, DT, 4)
    assert "\n" not in str(info.value)                     # one line, not Numba's nine


def test_observables_numba_cannot_compile_are_named():
    with pytest.raises(ValueError, match=_compile_error_message(
            "observables", "_uncompilable_observables", "No implementation of function")):
        se.simulate(OOB_SDE, [1.0], T_SPAN, DT, 4, observables=_uncompilable_observables,
                    n_observables=1)


def _runner_observables(k, x, p, out):
    out[0] = np.sum(x, keepdims=True)[0]


def test_run_optimizer_observables_numba_cannot_compile_are_named():
    with pytest.raises(ValueError, match=_compile_error_message(
            "observables", "_runner_observables", "No implementation of function")):
        se.run_optimizer(quadratic([1.0], Sigma=[1.0]), sgd(lr=0.1), [1.0], 4, 4,
                         observables=_runner_observables, n_observables=1)


def _loss(x, p):
    return 0.5 * np.sum(x * x)


def _grad(x, p, out):
    out[:] = x


def _uncompilable_grad(x, p, out):
    out[:] = _python_helper(x)


def _noise_sqrt(x, p, out):
    out[:, :] = 0.0
    for i in range(x.shape[0]):
        out[i, i] = 1.0


def test_custom_problem_functions_numba_cannot_compile_are_named_at_construction():
    with pytest.raises(ValueError, match=_compile_error_message(
            "grad", "_uncompilable_grad", "Untyped global name '_python_helper'")):
        custom_problem("uncompilable", 2, [], loss=_loss, grad=_uncompilable_grad,
                       noise_sqrt=_noise_sqrt)


def test_numba_reason_keeps_the_signature_line_and_the_place():
    text = ("Failed in nopython mode pipeline (step: nopython frontend)\n"
            "\x1b[1mNo implementation of function Function(<built-in function getitem>) found "
            "for signature:\n \n >>> getitem(float64, Literal[int](0))\n \nThere are 22 "
            "candidate implementations:\n - Of which 22 did not match\n"
            "During: typing of static-get-item at /a/b/mod.py (4)\n\n"
            'File "../../a/b/mod.py", line 4:\ndef d1(t, x, params, out):\n'
            "    out[0] = np.sum(x, keepdims=True)[0]\n    ^\n\n"
            "During: Pass nopython_type_inference")
    reason, where = numba_reason(Exception(text))
    assert reason == ("No implementation of function Function(<built-in function getitem>) "
                      "found for signature: getitem(float64, Literal[int](0))")
    assert where == "mod.py, line 4: `out[0] = np.sum(x, keepdims=True)[0]`"


# ---- what `sde` and `theta0` may be -----------------------------------------------------
def test_sde_must_be_an_sde_or_an_optimizer_model():
    with pytest.raises(ValueError, match=r"`sde` must be an SDE \(sde_engine\.SDE\(drift, "
                                         r"diffusion, dim\)\) or an optimizer model .*got "
                                         r"<function _oob_drift"):
        se.simulate(_oob_drift, [1.0], T_SPAN, DT, 4)


def test_an_optimizer_model_is_simulated_through_its_sde():
    # the configuration of test_models' one-step test, so the compiled driver is shared
    H = np.array([[2.0, 0.5], [0.5, 1.0]])
    model = adam_sde(quadratic(H, [1.0, -1.0], np.array([[1.0, 0.6], [0.6, 2.0]]),
                               noise_scale=10.0), 0.1, betas=(0.98, 0.99), eps=1.0,
                     bias_correction=True)
    x0 = model.initial_state([0.3, 0.7])
    h = model.h
    via_model = se.simulate(model, x0, (h, 2 * h), h, 3, save_brownian=True, seed=4)
    via_sde = se.simulate(model.sde, x0, (h, 2 * h), h, 3, save_brownian=True, seed=4)
    np.testing.assert_array_equal(via_model.x, via_sde.x)
    np.testing.assert_array_equal(via_model.W, via_sde.W)


@pytest.mark.parametrize("theta0", [["x"], ["1.0"], [None], [[1.0], [1.0, 2.0]]])
def test_theta0_that_is_not_numeric_is_named(theta0):
    with pytest.raises(ValueError, match=r"`theta0` must be a numeric array, got "):
        se.run_optimizer(quadratic([1.0], Sigma=[1.0]), sgd(lr=0.1), theta0, 4, 4)
