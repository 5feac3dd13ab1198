"""The adapter protocol: how the suite calls one backend.

An adapter module is a table of `Op`s, one per spec function, each the
backend's public API configured to compute the spec's definition, plus what
differs about that framework (array conversion, autodiff, native defaults).
Everything else (which checks run, what is exact, what counts as a pass)
lives in the conformance suite; an adapter never imports the reference.

Why a table of small lambdas and not a class per function: adding a backend
should be one short module that an outside author can read top to bottom.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ALL_DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")


class NotProvided(Exception):
    """The backend does not offer this (function, dtype, parameter value or gradient); the reason says why."""


@dataclass(frozen=True)
class NativeDefault:
    """A parameter as the user meets it in the framework's public API.

    `spec_name` is the spec parameter or convention it corresponds to; `read` returns the
    framework's default as the framework states it (usually from inspect.signature: None, a
    string, a number), and that is what reports show.  `canonical` is the value that would make
    the framework compute the spec's canonical definition.  `means` maps a sentinel to what the
    framework documents it to do (tf.nn.softmax: axis=None is the last axis), and `source` says
    where it documents that: a meaning is for comparing, never for making a different behaviour
    look canonical (Keras's ignore_class=None ignores nothing, which is not torch's -100), and
    the defaults check refuses a meaning without its source.
    """

    framework_name: str
    spec_name: str
    read: Callable[[], Any]
    canonical: Any = None        # None: the spec parameter's own default
    means: Mapping[Any, Any] = field(default_factory=dict)
    source: str = ""             # where the framework documents `means`
    note: str = ""

    def meaning(self, value: Any) -> Any:
        """What the framework's stated default does, in the spec's terms (the value itself if it needs no reading)."""
        try:
            return self.means.get(value, value)
        except TypeError:          # unhashable default
            return value


REQUIRED = object()   # a parameter the framework makes the caller pass


def signature_default(fn: Callable[..., Any], name: str) -> Callable[[], Any]:
    """A reader of `fn`'s default for parameter `name` (REQUIRED if it has none)."""
    def read() -> Any:
        p = inspect.signature(fn).parameters[name]
        return REQUIRED if p.default is inspect.Parameter.empty else p.default
    return read


def native_default(fn: Callable[..., Any], name: str, spec_name: str | None = None, **kw: Any) -> NativeDefault:
    """The default of `fn`'s parameter `name`, standing for the spec's `spec_name` (the same name if omitted)."""
    return NativeDefault(name, spec_name or name, signature_default(fn, name), **kw)


@dataclass(frozen=True)
class Op:
    """One spec function in one backend.

    `call(**inputs, **params)` takes backend arrays and the spec's parameter names and returns
    a backend array.  `api` names the public function (for reports and repro snippets);
    `repro` is a format string over the same names that reproduces the call in the
    framework's own API.  `dtypes` restricts the supported formats, with the reason in `why`.
    """

    call: Callable[..., Any]
    api: str
    repro: str = ""
    native: tuple[NativeDefault, ...] = ()
    dtypes: tuple[str, ...] = ALL_DTYPES
    differentiable: bool = True
    why: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)   # params the API cannot change
    nondifferentiable: Mapping[str, str] = field(default_factory=dict)   # input -> why its gradient is not offered


@dataclass(frozen=True)
class Fixed:
    """A spec flag an optimizer API cannot change: the value it always uses, and where that is documented."""

    value: Any
    why: str


@dataclass(frozen=True)
class Optimizer:
    """One spec optimizer in one backend.

    `build(**hyper)` takes the spec's hyperparameter names (only those it declares are passed)
    and returns what the adapter's `optimizer_session` turns into a running optimizer.  `fixed`
    lists the spec's flags the API cannot set: the check still runs the canonical definition
    (the difference is the finding) and runs the framework's own choice as well.
    """

    build: Callable[..., Any]
    api: str
    native: tuple[NativeDefault, ...] = ()
    fixed: Mapping[str, Fixed] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ("float64", "float32")
    why: str = ""


class Session:
    """A running optimizer over one parameter vector: `step` applies one gradient at one learning rate."""

    def step(self, grad: np.ndarray, lr: float) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Missing:
    """A spec function this backend does not provide, and why."""

    reason: str


Table = Mapping[str, "Op | Optimizer | Missing"]


class Adapter:
    """Base for adapters over an array framework.  Subclasses set the class attributes and
    implement `to_backend`, `to_numpy` and (if the framework differentiates) `vjp_call`."""

    name: str = ""
    framework: str = ""            # the pip distribution, for version and install messages
    version: str = ""
    dtypes: tuple[str, ...] = ALL_DTYPES
    gradient_reason: str = ""      # non-empty: the backend has no autodiff, and why
    ops: Table = {}

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    # ---- what subclasses provide
    def to_backend(self, a: np.ndarray, dtype: str) -> Any:
        raise NotImplementedError

    def to_numpy(self, t: Any) -> np.ndarray:
        raise NotImplementedError

    def to_backend_index(self, a: np.ndarray) -> Any:
        """Integer class targets (losses); the default keeps NumPy's int64."""
        return np.asarray(a, dtype=np.int64)

    def vjp_call(self, fn: Callable[..., Any], args: Sequence[Any], wrt: int, cotangent: Any) -> Any:
        raise NotProvided(self.gradient_reason or f"{self.name} has no automatic differentiation")

    def optimizer_session(self, built: Any, initial: np.ndarray, dtype: str) -> Session:
        raise NotProvided(f"{self.name} has no optimizers")

    def environment(self) -> dict[str, str]:
        """Settings that change numerics (thread counts, math libraries); shown in the run header."""
        return {}

    # How the framework's API spells an array of exact values, and a reshape of it.
    array_repro: str = "numpy.array([{values}], dtype='{dtype}')"
    reshape_repro: str = "{array}.reshape{shape}"

    def repro_array(self, a: np.ndarray, dtype: str) -> str:
        """An expression in the framework's API that rebuilds `a` exactly (hex floats)."""
        flat = np.asarray(a, dtype=np.float64)
        values = ", ".join(f"float.fromhex('{float(v).hex()}')" for v in flat.ravel())
        array = self.array_repro.format(values=values, dtype=dtype)
        return array if flat.ndim <= 1 else self.reshape_repro.format(array=array, shape=tuple(flat.shape))

    index_repro: str = "numpy.array({values})"

    def repro_index(self, a: np.ndarray) -> str:
        return self.index_repro.format(values=np.asarray(a).tolist())

    # ---- what the suite calls
    def op(self, function: str) -> Any:
        entry = self.ops.get(function)
        if entry is None:
            raise NotProvided(f"{self.name} adapter has no entry for {function!r}")
        if isinstance(entry, Missing):
            raise NotProvided(entry.reason)
        return entry

    def supports(self, function: str, dtype: str) -> str | None:
        """None when supported, else the reason it is not."""
        try:
            op = self.op(function)
        except NotProvided as exc:
            return str(exc)
        if dtype not in self.dtypes:
            return f"{self.name} does not support {dtype} on {self.device}"
        if dtype not in op.dtypes:
            return op.why or f"{op.api} does not support {dtype}"
        return None

    def _check_fixed(self, op: Op, params: Mapping[str, Any]) -> None:
        for k, v in op.fixed.items():
            if k in params and float(params[k]) != float(v):
                raise NotProvided(f"{op.api} has no parameter for {k} (always {v}); asked for {params[k]}")

    def _arg(self, a: np.ndarray, dtype: str) -> Any:
        arr = np.asarray(a)
        return self.to_backend_index(arr) if arr.dtype.kind in "iu" else self.to_backend(arr, dtype)

    def _check_inputs(self, op: Op, inputs: Mapping[str, Any]) -> None:
        """An input the call does not take (class weights a loss API lacks) is not provided, not ignored."""
        wanted = inspect.signature(op.call).parameters
        for name in inputs:
            if name not in wanted:
                raise NotProvided(f"{op.api} takes no {name}")

    def value(self, function: str, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any], dtype: str) -> np.ndarray:
        op = self.op(function)
        self._check_fixed(op, params)
        self._check_inputs(op, inputs)
        args = {k: self._arg(v, dtype) for k, v in inputs.items()}
        return self.to_numpy(op.call(**args, **self._call_params(op, params)))

    def vjp(self, function: str, wrt: str, inputs: Mapping[str, np.ndarray], cotangent: np.ndarray,
            params: Mapping[str, Any], dtype: str) -> np.ndarray:
        op = self.op(function)
        if not op.differentiable:
            raise NotProvided(op.why or f"{op.api} is not differentiable in {self.name}")
        if wrt in op.nondifferentiable:
            raise NotProvided(op.nondifferentiable[wrt])
        self._check_fixed(op, params)
        self._check_inputs(op, inputs)
        names = list(inputs)
        args = [self._arg(inputs[n], dtype) for n in names]
        kw = self._call_params(op, params)

        def fn(*xs: Any) -> Any:
            return op.call(**dict(zip(names, xs)), **kw)
        return self.to_numpy(self.vjp_call(fn, args, names.index(wrt), self.to_backend(cotangent, dtype)))

    def start(self, function: str, hyper: Mapping[str, Any], initial: np.ndarray, dtype: str) -> Session:
        """A fresh optimizer of `function` over parameters `initial` (dtype `dtype`)."""
        op = self.op(function)
        if not isinstance(op, Optimizer):
            raise NotProvided(f"{function} is not an optimizer in {self.name}")
        return self.optimizer_session(op.build(**_accepted(op.build, hyper)), np.asarray(initial), dtype)

    def repro(self, function: str, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any], dtype: str) -> str:
        op = self.op(function)
        if not op.repro:
            return f"{op.api}(...)"
        fields = {k: self.repro_index(v) if np.asarray(v).dtype.kind in "iu" else self.repro_array(v, dtype)
                  for k, v in inputs.items()}
        fields.update({k: repr(v) for k, v in self._call_params(op, params).items()})
        try:
            return op.repro.format(**fields)
        except (KeyError, IndexError):
            return f"{op.api}(...)"

    def _call_params(self, op: Op, params: Mapping[str, Any]) -> dict[str, Any]:
        return _accepted(op.call, params)


def _accepted(fn: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters `fn` takes (all of them if it takes **kwargs)."""
    wanted = inspect.signature(fn).parameters
    accepts_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in wanted.values())
    return {k: v for k, v in params.items() if accepts_all or k in wanted}


def require_class_axis(axis: Any, ndim: int, where: int, api: str) -> None:
    """Loss APIs that fix the class axis (torch: dim 1; tf.nn sparse: the last) cannot take another."""
    if int(axis) % max(ndim, 1) != where % max(ndim, 1):
        raise NotProvided(f"{api} takes the class axis at dim {where}, not {axis} of a {ndim}-D input")
