"""The user's functions inside compiled code: clear compile errors and bounds checks.

The engine inlines the user's functions (drift, diffusion, observables, a
custom problem's gradient, ...) into its compiled path loop. Two things can go
wrong there that plain Python does not show:

* **Numba cannot compile a function.** Numba then raises a long
  ``TypingError`` about the whole path loop. :func:`user_code_errors` turns it
  into one ``ValueError`` that names the user function, gives the first line
  of Numba's reason and where in the function it is, and points to the README
  (:data:`USER_FUNCTIONS_DOC`). It finds the culprit by type-checking each user
  function on its own with the argument types the loop uses
  (:func:`compile_user_function`), which costs nothing unless compilation failed.
* **A function indexes out of bounds** for some t or x that the plain-Python
  probe at (t0, x0) did not reach. Compiled code does not check bounds, so the
  run returns numbers. :func:`bounds_checked` builds the form that
  ``simulate(..., check_bounds=True)`` compiles instead: the user's function
  compiled with Numba's ``boundscheck=True``, called out of line through a
  status function, and an ``IndexError`` naming the function when it fails.

* **A function allocates an array on every call** (``A @ x``, ``np.dot``,
  whole-array arithmetic). It runs, but the allocation costs far more than the
  small product it holds (9× on a 5-D linear SDE, see :mod:`sde_engine.dense`).
  :func:`warn_if_allocating` finds such lines from Numba's typed IR (a few
  milliseconds, no code generation) and warns once per function with an
  :class:`AllocationWarning`.

Why the indirection: Numba cannot catch one exception type alone, and a
``try`` or a ``raise`` statement in the body of the engine's ``prange`` loop
(where the user's functions are inlined) makes Numba run that loop serially.
So the status function catches the exception out of line, and
:func:`_raise_if` raises at the LLVM level, as Numba's own bounds check does,
which the parallel loop passes on (as a ``SystemError`` chained to it, which
:func:`user_code_errors` unwraps).
"""
import contextlib
import re
import warnings

import numba
from numba import types
from numba.core import compiler, ir, typed_passes
from numba.core.errors import NumbaError
from numba.core.registry import cpu_target
from numba.extending import intrinsic

#: Where the README explains what a user function may contain.
USER_FUNCTIONS_DOC = 'README.md, section "User functions"'

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOCATION = re.compile(r'File "([^"]+)", line (\d+)')
# Raised by the Python C API when a compiled call returns with an exception set,
# which is how an exception from Numba's parallel loop reaches Python.
_EXCEPTION_SET = "returned a result with an exception set"

float64_1d = types.float64[::1]
float64_2d = types.float64[:, ::1]


def sde_function_types(out_ndim):
    """Numba argument types of ``fn(t, x, params, out)`` as the path loop calls it."""
    return (types.float64, float64_1d, float64_1d, float64_1d if out_ndim == 1 else float64_2d)


def as_dispatcher(fn):
    """``fn`` itself if Numba already compiled it, else ``numba.njit(fn)``."""
    return fn if isinstance(fn, numba.core.registry.CPUDispatcher) else numba.njit(fn)


def _describe(fn):
    """``name`` or ``name in file.py`` of a (jitted) function, for messages."""
    py = getattr(fn, "py_func", fn)
    name = getattr(py, "__name__", repr(py))
    code = getattr(py, "__code__", None)
    return f"{name} in {code.co_filename.rsplit('/', 1)[-1]}" if code else name


def _holds(fn, exc):
    """Whether a ``File "...", line N`` of Numba's message lies in ``fn``'s source."""
    code = getattr(getattr(fn, "py_func", fn), "__code__", None)
    if code is None:
        return False
    lines = [line for _, _, line in code.co_lines() if line is not None]
    for match in _LOCATION.finditer(_ANSI.sub("", str(exc))):
        path, line = match.group(1), int(match.group(2))
        if code.co_filename.endswith(path.lstrip("./")) and min(lines) <= line <= max(lines):
            return True
    return False


def numba_reason(exc):
    """The first line of Numba's reason for ``exc`` and, if given, where it is.

    Numba's messages start with the failing pipeline stage and end with
    ``During: ...`` lines; the reason is the first line between them (with the
    signature line that follows a trailing colon), the place the last
    ``File "...", line N:`` with the source line after it.
    """
    lines = [ln.rstrip() for ln in _ANSI.sub("", str(exc)).splitlines()]
    reason, at = type(exc).__name__, None
    for i, ln in enumerate(lines):
        if ln.strip() and not ln.startswith(("Failed in ", "During:", "File ", " ")):
            reason, at = ln.strip(), i
            break
    if at is not None and reason.endswith(":"):
        following = [ln.strip() for ln in lines[at + 1:] if ln.strip()]
        if following and following[0].startswith(">>>"):
            reason = f"{reason} {following[0][3:].strip()}"
    where = ""
    for i, ln in enumerate(lines):
        match = _LOCATION.search(ln)
        if match:
            source = next((s.strip() for s in lines[i + 1:]
                           if s.strip() and not s.strip().startswith(("def ", "<source"))), "")
            where = f"{match.group(1).rsplit('/', 1)[-1]}, line {match.group(2)}" + (
                f": `{source}`" if source and source != "^" else "")
    return reason, where


def compile_error(label, fn, exc):
    """The ``ValueError`` for user function ``label`` that Numba could not compile."""
    reason, where = numba_reason(exc)
    at = f" at {where}" if where else ""
    return ValueError(
        f"`{label}` ({_describe(fn)}) cannot be compiled by Numba: {reason}{at}. User "
        f"functions must be Numba-compilable (nopython mode); see {USER_FUNCTIONS_DOC}")


def _infer_types(fn, argtypes):
    """Run Numba's type inference (not code generation) on ``fn`` for ``argtypes``.

    What fails to compile nearly always fails here, in a few milliseconds where a
    full compilation takes a second or more. Returns ``(function IR, typemap)``.
    """
    cpu_target.typing_context.refresh()
    interp = compiler.run_frontend(getattr(fn, "py_func", fn))
    typed = typed_passes.type_inference_stage(cpu_target.typing_context,
                                              cpu_target.target_context, interp,
                                              tuple(argtypes), None)
    return interp, typed.typemap


class AllocationWarning(UserWarning):
    """A user function makes a new array on every call: slow inside the path loop."""


#: Typed-IR expressions that make a new array when their result is one
#: (indexing and attributes give views, and are not among them).
_ALLOCATING_OPS = ("call", "binop", "unary")


def allocating_lines(fn, argtypes):
    """Source lines of ``fn`` where an expression makes a new array, for ``argtypes``.

    Returns a sorted list of line numbers (empty when ``fn`` writes only into
    existing arrays). ``out[:] = A @ x`` is one; ``out[:, k]`` is a view, not one.
    """
    interp, typemap = _infer_types(fn, argtypes)
    lines = set()
    for block in interp.blocks.values():
        for stmt in block.body:
            if (isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Expr)
                    and stmt.value.op in _ALLOCATING_OPS
                    and isinstance(typemap.get(stmt.target.name), types.Array)):
                lines.add(stmt.loc.line)
    return sorted(lines)


_ENGINE_PACKAGE = __name__.split(".")[0] + "."


def warn_if_allocating(suspects, stacklevel=3):
    """Warn (:class:`AllocationWarning`) for each user function that allocates per call.

    Parameters
    ----------
    suspects : sequence of (label, dispatcher, argtypes)
        As for :func:`user_code_errors`. A function that does not type-check is
        skipped here (the run reports it), and so are the engine's own.
    """
    for label, fn, argtypes in suspects:
        if getattr(getattr(fn, "py_func", fn), "__module__", "").startswith(_ENGINE_PACKAGE):
            continue            # the engine's own models: nothing the user can change
        try:
            lines = allocating_lines(fn, argtypes)
        except NumbaError:
            continue
        if lines:
            warnings.warn(
                f"`{label}` ({_describe(fn)}) makes a new array on every call (line"
                f"{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}: e.g. `A @ x`, "
                f"np.dot, whole-array arithmetic); in the path loop that made runs 1.6-10x "
                f"slower in our measurements. Write into `out` with loops or "
                f"sde_engine.dense.matvec ({USER_FUNCTIONS_DOC})", AllocationWarning,
                stacklevel=stacklevel)


def compile_user_function(label, fn, argtypes, full=False):
    """Type-check (or, with ``full``, compile) user function ``fn`` for ``argtypes``.

    Raises
    ------
    ValueError
        When Numba cannot compile ``fn`` for these types, naming it
        (:func:`compile_error`).
    """
    try:
        if full:
            fn.compile(tuple(argtypes))
        else:
            _infer_types(fn, argtypes)
    except NumbaError as exc:
        raise compile_error(label, fn, exc) from exc


@contextlib.contextmanager
def user_code_errors(suspects):
    """Report failures of compiled code in terms of the user's functions.

    Parameters
    ----------
    suspects : sequence of (label, dispatcher, argtypes)
        The user functions inlined into the code run in the block, with the
        Numba types they are called with.

    Raises
    ------
    ValueError
        When compiling fails and a suspect does not compile on its own
        (:func:`compile_error`). Compile errors of the engine's own code are
        re-raised unchanged.
    Exception
        An exception raised inside Numba's parallel loop arrives as a
        ``SystemError`` chained to it; it is re-raised itself, with a note
        naming the suspects.
    """
    try:
        yield
    except NumbaError as exc:
        # the suspect that holds the failing line first; then, if none fails type
        # inference, full compilations (seconds each) for errors found later
        ordered = sorted(suspects, key=lambda s: not _holds(s[1], exc))
        for full in (False, True):
            for label, fn, argtypes in ordered:
                compile_user_function(label, fn, argtypes, full)
        raise
    except SystemError as exc:
        cause = exc.__cause__
        if cause is None or _EXCEPTION_SET not in str(exc):
            raise
        if suspects and not getattr(cause, "from_bounds_check", False):
            cause.add_note("Raised inside the compiled path loop, where the user functions "
                           f"({', '.join(label for label, _, _ in suspects)}) run.")
        raise cause from None


def _raise_if(exc_class, message):
    """An intrinsic ``fail(status)`` raising ``exc_class(message)`` when status != 0.

    It raises the way Numba's bounds check does (an error return inside the
    block), not through a ``raise`` statement, so the engine's ``prange`` loop
    stays parallel and passes the exception on.
    """

    @intrinsic
    def fail(typingctx, status):
        def codegen(context, builder, signature, args):
            failed = builder.icmp_signed("!=", args[0], args[0].type(0))
            with builder.if_then(failed, likely=False):
                context.call_conv.return_user_exc(builder, exc_class, (message,))
            return context.get_dummy_value()
        return types.none(types.int64), codegen

    return fail


class BoundsError(IndexError):
    """A user function indexed out of bounds under ``check_bounds=True``."""

    from_bounds_check = True


def bounds_checked(fn, label, out_shape):
    """``fn(t, x, params, out)`` compiled with Numba's bounds checking.

    Parameters
    ----------
    fn : callable or numba dispatcher
        The user's function (its Python form is recompiled).
    label : str
        Its role (``"drift"``, ``"observables"``...), for the message.
    out_shape : str
        The shape of ``out`` in words, for the message.

    Returns
    -------
    numba dispatcher
        Inlined into the path loop like ``fn``; raises :class:`BoundsError`
        naming ``label`` when ``fn`` indexes out of bounds (or raises anything
        else: under the check both reach the loop the same way).
    """
    py = getattr(fn, "py_func", fn)
    options = {key: value for key, value in getattr(fn, "targetoptions", {}).items()
               if key in ("fastmath", "error_model")}
    checked = numba.njit(boundscheck=True, **options)(py)

    @numba.njit
    def status(t, x, params, out):
        try:
            checked(t, x, params, out)
        except Exception:    # Numba cannot catch IndexError alone
            return 1
        return 0

    fail = _raise_if(BoundsError, (
        f"`{label}` ({_describe(fn)}) indexed an array out of bounds in compiled code "
        f"(found by check_bounds=True; its `out` has shape {out_shape}). The plain-Python "
        f"call at (t0, x0) did not, so it happens later on some path, e.g. in a branch on "
        f"t or x. Under check_bounds an exception `{label}` raises itself is reported the "
        f"same way. See {USER_FUNCTIONS_DOC}"))

    @numba.njit(inline="always")
    def checked_call(t, x, params, out):
        fail(status(t, x, params, out))

    return checked_call
