"""Configuration of a weak-order study: the TOML keys, their checks, and flags.

A config is a flat TOML table (see ``experiments/*.toml`` and the docstring of
:data:`FIELDS`); every key can also be given as a command-line flag
(``lrs`` → ``--lrs 0.4,0.2``, ``bias_correction`` → ``--bias-correction true``)
and a flag overrides the file. Unknown keys and bad values are refused with a
``ValueError`` naming the key and the value, before any work.

Mapping to the discrete algorithm at learning rate η (SPEC §3): σ = σ0/η,
ε = ε0/η, β1 = 1 − c1 η², β2 = 1 − c2 η², v0 = σ² u0, m0 = 0; step count
k = ⌊T/η²⌋, compared with the SDE at t = kη² (= T when η² divides T). For SGD there is no such family: ``sigma0`` is the noise scale σ
itself, k = T/η, and each η is compared with the SGD SDE at that η.
"""
import math
import os
from dataclasses import dataclass, fields, replace
from typing import Optional, Tuple

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

from .order_problems import PROBLEMS, check_batch_sizes, check_problem_keys, default_theta0

ALGORITHMS = ("sgd", "rmsprop", "adam")
TESTS = ("theta1", "theta_sq", "loss", "theta1_cubed")
REFERENCES = ("auto", "exact", "simulate", "extrapolated", "mlmc")
ESTIMATORS = ("independent", "coupled", "auto")
SDE_METHODS = ("euler_maruyama",)
GRID_RTOL = 1e-9


@dataclass(frozen=True)
class OrderConfig:
    """A validated weak-order study configuration (one field per TOML key).

    Attributes
    ----------
    algorithm : {"sgd", "rmsprop", "adam"}
    bias_correction : bool
        RMSprop/Adam bias correction (SPEC §2).
    problem : {"quadratic", "linear_regression", "logistic_regression", "rosenbrock", "custom"}
        f(θ); see :mod:`sde_engine.studies.order_problems`. Quadratic:
        f(θ) = ½ θᵀ diag(curvature) θ.
    dim : int
        d; vectors of length 1 below are repeated d times. Set by the data for
        the other problems.
    curvature, noise_cov : tuple of float, length d, or None
        Diagonals of H and Σ (quadratic only; default 1).
    dataset : {"breast_cancer", "diabetes"} or None
        Regression problems: the scikit-learn dataset.
    features : int or None
        Regression problems: its first ``features`` columns (None: all),
        standardised, plus an intercept (d = features + 1).
    l2 : float or None
        Regression problems: the L2 weight λ (None: 0).
    factory : str or None
        Custom problems: ``"module:function"`` returning the problem.
    noise : {"gaussian", "rademacher", "skewed", "minibatch"}
        Gradient-noise family; regression problems take "minibatch" (real
        minibatches, B = (η/σ0)² whole) or "gaussian" (their Gaussian
        approximation).
    sigma0, eps0, c1, c2 : float
        SDE constants held fixed as η varies (c1: Adam only; c1, c2 unused by SGD).
    u0 : tuple of float or None
        u = v/σ² at t = 0; None: the standard start v0 = 0 (and m0 = 0).
    theta0 : tuple of float, length d
        Default 1 (quadratic) or 0 (the other problems).
    horizon : float
        SDE time T.
    lrs : tuple of float
        Learning rates η, one study point each.
    paths : int
        Discrete runs per η.
    seed : int
    tests : tuple of str
        Test functions φ: θ₁, ‖θ‖², f(θ), θ₁³.
    reference : {"auto", "exact", "simulate", "extrapolated", "mlmc"}
        SDE value E φ(X_T): exact moments (quadratic only), simulation
        (Euler–Maruyama at dt, own bias reported from dt vs 2dt), the
        Richardson (Talay–Tubaro) extrapolation 2 E φ(X^dt) − E φ(X^2dt) on
        coupled paths (bias O(dt²)), or multilevel Monte Carlo to an RMSE
        (:mod:`sde_engine.studies.mlmc_reference`). "auto": exact where it applies, else
        simulate; with the coupled estimator, extrapolated.
    sde_dt : float or None
        Step of the simulated reference (default: the smallest step h / 4).
    sde_paths : int or None
        Paths of the simulated reference (default ``paths``).
    chunk_paths : int
        Paths per unit of work (each chunk has its own ``path_offset``).
    estimator : {"independent", "coupled", "auto"}
        "independent": discrete runs and SDE reference on separate paths.
        "coupled": each discrete run and the SDE (``sde_substeps`` Euler–Maruyama
        steps per discrete step) on one Brownian path, the weak error being the
        mean of φ(θ_k) − φ(X_{kh}) (:mod:`sde_engine.studies.coupled`); needs
        Gaussian noise and a simulated or extrapolated reference. "auto":
        coupled where that applies, else independent (the record says why).
    sde_substeps : int
        m, even ≥ 2: SDE sub-steps per discrete step of the coupled estimator
        (its bias check and extrapolation use m/2).
    control_variate : bool
        RMSprop only: estimate E φ(x_k) with the exact-mean control variate of
        :mod:`sde_engine.studies.control_variate` (same expectation, far smaller
        Monte Carlo error). Other algorithms use the plain mean.
    title : str
        Label for plots and tables.
    """

    algorithm: str
    horizon: float
    lrs: Tuple[float, ...]
    paths: int
    bias_correction: bool = False
    problem: str = "quadratic"
    dim: int = 1
    curvature: Optional[Tuple[float, ...]] = None
    noise: str = "gaussian"
    noise_cov: Optional[Tuple[float, ...]] = None
    dataset: Optional[str] = None
    features: Optional[int] = None
    l2: Optional[float] = None
    factory: Optional[str] = None
    sigma0: float = 1.0
    eps0: float = 0.1
    c1: Optional[float] = None
    c2: Optional[float] = None
    u0: Optional[Tuple[float, ...]] = None
    theta0: Tuple[float, ...] = (1.0,)
    seed: int = 0
    tests: Tuple[str, ...] = ("theta1", "theta_sq", "loss")
    reference: str = "auto"
    sde_dt: Optional[float] = None
    sde_paths: Optional[int] = None
    chunk_paths: int = 262_144
    control_variate: bool = True
    estimator: str = "independent"
    sde_substeps: int = 4
    title: str = ""

    def as_dict(self):
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in fields(self) for v in [getattr(self, f.name)]}

    def step_size(self, lr):
        """SDE time per discrete step: η (SGD) or η² (RMSprop, Adam)."""
        return lr if self.algorithm == "sgd" else lr * lr

    def n_steps(self, lr):
        """Discrete steps k = ⌊T/h⌋ at learning rate ``lr``."""
        return int(math.floor(self.horizon / self.step_size(lr) * (1 + GRID_RTOL)))

    def sde_time(self, lr):
        """SDE time k·h compared with step k (T itself when h divides T)."""
        return self.n_steps(lr) * self.step_size(lr)

    def reference_dt(self):
        """Step of a simulated SDE reference: ``sde_dt`` or a quarter of the smallest h."""
        if self.sde_dt is not None:
            return self.sde_dt
        return min(self.step_size(lr) for lr in self.lrs) / 4

    def hyperparameters(self, lr):
        """torch.optim-style hyperparameters of the discrete run at ``lr`` (SPEC §3).

        This is the one place that maps a study point to an algorithm; SVAG
        points (ℓ values, issue 4) map here too.
        """
        if self.algorithm == "sgd":
            return dict(lr=lr, noise_scale=self.sigma0)
        hp = dict(lr=lr, noise_scale=self.sigma0 / lr, eps=self.eps0 / lr,
                  bias_correction=self.bias_correction)
        if self.algorithm == "rmsprop":
            hp["beta"] = 1.0 - self.c2 * lr * lr
        else:
            hp["betas"] = (1.0 - self.c1 * lr * lr, 1.0 - self.c2 * lr * lr)
        return hp


# Keys that only locate or label results; changing them never invalidates a finished point.
NON_NUMERIC_KEYS = ("lrs", "title", "reference", "sde_dt", "sde_paths")
KEYS = tuple(f.name for f in fields(OrderConfig))
REQUIRED = ("algorithm", "horizon", "lrs", "paths")
VECTOR_KEYS = ("curvature", "noise_cov", "u0", "theta0")


def key_kind(name):
    """Value kind of a key: 'str', 'bool', 'int', 'float', 'floats', 'strs'."""
    if name in ("algorithm", "problem", "noise", "reference", "estimator", "title", "dataset",
                "factory"):
        return "str"
    if name in ("bias_correction", "control_variate"):
        return "bool"
    if name in ("dim", "paths", "seed", "sde_paths", "chunk_paths", "sde_substeps", "features"):
        return "int"
    if name in VECTOR_KEYS or name == "lrs":
        return "floats"
    if name == "tests":
        return "strs"
    return "float"


def parse_flag_value(name, text):
    """Convert a command-line string to the value of key ``name``."""
    kind = key_kind(name)
    try:
        if kind == "str":
            return text
        if kind == "bool":
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(text.replace("_", ""))
        if kind == "float":
            return float(text)
        if kind == "floats":
            return [float(v) for v in text.split(",") if v.strip()]
        return [v.strip() for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"`--{name.replace('_', '-')}` expects {kind}, got {text!r}") from None


def load_toml(path):
    """Read a config file into a dict; a missing or unreadable file is a ValueError."""
    if not os.path.isfile(path):
        raise ValueError(f"config file not found: {path}")
    if tomllib is None:
        raise ValueError("reading TOML configs needs Python >= 3.11 (tomllib)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None


def build_config(values):
    """Validate a dict of keys (from TOML and flags) into an :class:`OrderConfig`."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known keys: "
                         f"{', '.join(KEYS)}")
    missing = [k for k in REQUIRED if values.get(k) is None]
    if missing:
        raise ValueError(f"missing config key(s): {', '.join(missing)}")
    v = {k: x for k, x in values.items() if x is not None}
    _choice(v, "algorithm", ALGORITHMS)
    _choice(v, "problem", PROBLEMS)
    _choice(v, "reference", REFERENCES)
    _choice(v, "estimator", ESTIMATORS)
    for k in ("bias_correction", "control_variate"):
        if k in v and not isinstance(v[k], bool):
            raise ValueError(f"`{k}` must be true or false, got {v[k]!r}")
    for k in ("dataset", "factory"):
        if k in v and not isinstance(v[k], str):
            raise ValueError(f"`{k}` must be a string, got {v[k]!r}")
    for k in ("dim", "paths", "chunk_paths", "sde_paths", "sde_substeps", "features"):
        if k in v:
            v[k] = _int(v[k], k, minimum=1)
    if "seed" in v:
        v["seed"] = _int(v["seed"], "seed", minimum=0)
    for k in ("horizon", "sigma0", "c1", "c2", "sde_dt"):
        if k in v:
            v[k] = _real(v[k], k, positive=True)
    for k in ("eps0", "l2"):
        if k in v:
            v[k] = _real(v[k], k, positive=False)
    dim = v["dim"] = check_problem_keys(v)
    for k in VECTOR_KEYS:
        if k in v:
            v[k] = _vector(v[k], k, dim, nonnegative=k != "theta0")
    if v.get("problem", "quadratic") == "quadratic":
        for k in ("curvature", "noise_cov"):
            v.setdefault(k, (1.0,) * dim)
    v.setdefault("theta0", default_theta0(v.get("problem", "quadratic"), dim))
    if "title" in v and not isinstance(v["title"], str):
        raise ValueError(f"`title` must be a string, got {v['title']!r}")
    tests = v.get("tests", OrderConfig.tests)
    if isinstance(tests, str) or not tests or any(t not in TESTS for t in tests) \
            or len(set(tests)) != len(tests):
        raise ValueError(f"`tests` must be a non-empty list of distinct names from {TESTS}, "
                         f"got {tests!r}")
    v["tests"] = tuple(tests)
    lrs = v["lrs"]
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__len__") or len(lrs) < 1:
        raise ValueError(f"`lrs` must be a non-empty list of learning rates, got {lrs!r}")
    v["lrs"] = tuple(_real(x, "lrs", positive=True) for x in lrs)
    if len(set(v["lrs"])) != len(v["lrs"]):
        raise ValueError(f"`lrs` must be distinct, got {list(v['lrs'])}")
    cfg = OrderConfig(**v)
    _check_algorithm(cfg)
    check_batch_sizes(cfg, [(lr, cfg.hyperparameters(lr)["noise_scale"]) for lr in cfg.lrs])
    if cfg.reference == "exact" and cfg.problem != "quadratic":
        raise ValueError(f"`reference` 'exact' needs the quadratic problem (linear moment "
                         f"equations); problem {cfg.problem!r} takes 'simulate', "
                         f"'extrapolated' or 'mlmc'")
    _check_chunks(cfg)
    return cfg


# Each chunk is a unit of work (a task, a call into the engine) and a checkpoint line:
# beyond this many per point the overhead swamps the work.
MAX_CHUNKS = 100_000


def _check_chunks(cfg):
    for key in ("paths", "sde_paths"):
        n = getattr(cfg, key)
        if n is not None and -(-n // cfg.chunk_paths) > MAX_CHUNKS:
            raise ValueError(f"`chunk_paths` {cfg.chunk_paths} splits `{key}` {n} into "
                             f"{-(-n // cfg.chunk_paths)} chunks per point, more than "
                             f"{MAX_CHUNKS}; use chunk_paths ≥ {-(-n // MAX_CHUNKS)}")


def with_overrides(cfg, **values):
    """A copy of ``cfg`` with some keys changed, validated again."""
    return build_config({**cfg.as_dict(), **values}) if values else replace(cfg)


def _check_algorithm(cfg):
    algo = cfg.algorithm
    if algo in ("rmsprop", "adam") and cfg.c2 is None:
        raise ValueError(f"`c2` is required for algorithm {algo!r}")
    if algo == "adam" and cfg.c1 is None:
        raise ValueError("`c1` is required for algorithm 'adam'")
    if algo != "adam" and cfg.c1 is not None:
        raise ValueError(f"`c1` applies to adam only, not to algorithm {algo!r}")
    if algo == "sgd":
        if cfg.c2 is not None or cfg.u0 is not None or cfg.bias_correction:
            raise ValueError("`c2`, `u0` and `bias_correction` do not apply to algorithm 'sgd'")
    if cfg.bias_correction and cfg.u0 is not None and any(u != 0 for u in cfg.u0):
        raise ValueError(f"`u0` must be omitted (v0 = 0) with bias correction, got {list(cfg.u0)}")
    if algo in ("rmsprop", "adam") and cfg.eps0 == 0 and not cfg.bias_correction \
            and (cfg.u0 is None or any(u == 0 for u in cfg.u0)):
        raise ValueError("`eps0` = 0 with u0 = 0 makes the preconditioner singular at t = 0")
    for lr in cfg.lrs:
        for name in ("c1", "c2"):
            c = getattr(cfg, name)
            if algo != "sgd" and c is not None and c * lr * lr >= 1.0:
                beta = "beta1" if name == "c1" else "beta2"
                raise ValueError(
                    f"lr {lr:g} makes {beta} = 1 - {name}·lr² = {1 - c * lr * lr:.4g} "
                    f"{'negative' if c * lr * lr > 1 else 'zero'}; use lr < "
                    f"{1 / math.sqrt(c):.4g} or a smaller {name}")
        if cfg.n_steps(lr) < 1:
            raise ValueError(f"`horizon` {cfg.horizon:g} is shorter than one step at lr {lr:g}")
    _check_estimator(cfg)
    if cfg.estimator != "coupled" and (cfg.sde_dt is not None
                                       or cfg.reference in ("simulate", "extrapolated")):
        dt = cfg.reference_dt()
        for lr in cfg.lrs:
            t = cfg.sde_time(lr)
            k = t / (2 * dt)
            if abs(k - round(k)) > GRID_RTOL * max(k, 1.0):
                raise ValueError(f"`sde_dt` {dt:g}: twice it must divide the compared "
                                 f"SDE time {t:g} of lr {lr:g} into whole steps")


def _check_estimator(cfg):
    if cfg.sde_substeps % 2:
        raise ValueError(f"`sde_substeps` must be even (the coupled estimator's coarse SDE "
                         f"takes sde_substeps/2 steps), got {cfg.sde_substeps}")
    if cfg.estimator != "coupled":
        return
    if cfg.noise != "gaussian":
        raise ValueError(f"`estimator` = 'coupled' needs Gaussian noise: {cfg.noise!r} noise "
                         f"has no pathwise coupling with the Brownian motion; use "
                         f"'independent' (or 'auto', which falls back to it)")
    if cfg.reference in ("exact", "mlmc"):
        raise ValueError(f"`estimator` = 'coupled' compares with the SDE simulated on the same "
                         f"path: `reference` must be 'simulate', 'extrapolated' or 'auto', "
                         f"got {cfg.reference!r}")
    for key in ("sde_dt", "sde_paths"):
        if getattr(cfg, key) is not None:
            raise ValueError(f"`{key}` does not apply to the coupled estimator (its SDE runs "
                             f"on the discrete paths with `sde_substeps` steps per step)")


def _choice(v, key, options):
    if key in v and v[key] not in options:
        raise ValueError(f"`{key}` must be one of {', '.join(options)}; got {v[key]!r}")


def _int(x, key, minimum):
    if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
        raise ValueError(f"`{key}` must be an integer ≥ {minimum}, got {x!r}")
    return x


def _real(x, key, positive):
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) \
            or (x <= 0 if positive else x < 0):
        raise ValueError(f"`{key}` must be a finite number {'> 0' if positive else '≥ 0'}, "
                         f"got {x!r}")
    return float(x)


def _vector(x, key, dim, nonnegative):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        x = [x]
    if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
        raise ValueError(f"`{key}` must be a list of numbers, got {x!r}")
    vals = []
    for item in x:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) \
                or (nonnegative and item < 0):
            raise ValueError(f"`{key}` must hold finite numbers{' ≥ 0' if nonnegative else ''}, "
                             f"got {list(x)!r}")
        vals.append(float(item))
    if len(vals) == 1:
        vals = vals * dim
    if len(vals) != dim:
        raise ValueError(f"`{key}` must have 1 or dim = {dim} entries, got {len(vals)}")
    return tuple(vals)
