"""ONNX Runtime: one single-node ONNX model per operator, run on the CPU execution provider.

What a model exported to ONNX computes is what these operators compute: each call builds
(and caches) a one-node graph of the operator with the spec's parameters as attributes, and
runs it with ONNX Runtime's default session options.  Two properties of the format show in
the results and are findings, not adapter bugs:

- attributes are float32 (AttributeProto has no double), so a float64 model computes with
  its parameters rounded to float32;
- which dtypes an operator runs in is the execution provider's choice: the CPU provider has
  float64 kernels for few operators, and none in bfloat16.  A missing kernel is read from
  ONNX Runtime's own NOT_IMPLEMENTED error and reported as not provided.

ONNX Runtime has no automatic differentiation for inference sessions (onnxruntime-training
builds gradient graphs separately), so gradients are not provided.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .base import Adapter, Missing, NativeDefault, NotProvided, Op, require_class_axis

OPSET = 24        # Swish (silu with beta) is new in 24; onnxruntime 1.32 runs up to 25
IR_VERSION = 10
NP = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
ELEM = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.float32): TensorProto.FLOAT,
        np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(ml_dtypes.bfloat16): TensorProto.BFLOAT16,
        np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL}


@functools.lru_cache(maxsize=1024)
def _session(op_type: str, elems: tuple[int, ...], attrs: tuple[tuple[str, Any], ...]) -> ort.InferenceSession:
    names = [f"in{i}" if e is not None else "" for i, e in enumerate(elems)]
    inputs = [helper.make_tensor_value_info(n, e, None) for n, e in zip(names, elems) if e is not None]
    node = helper.make_node(op_type, names, ["out"], **dict(attrs))
    graph = helper.make_graph([node], op_type, inputs, [helper.make_tensor_value_info("out", elems[0], None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:   # noqa: BLE001 - ORT raises its own pybind exception types
        dtype = TensorProto.DataType.Name(elems[0]).lower()
        if "NOT_IMPLEMENTED" in str(exc):
            raise NotProvided(f"onnxruntime {ort.__version__} CPU has no {dtype} kernel for {op_type}({OPSET})") from None
        if "INVALID_GRAPH" in str(exc) and "Type Error" in str(exc):
            raise NotProvided(f"the ONNX operator {op_type}({OPSET}) is not defined for {dtype}") from None
        raise


def run(op_type: str, *inputs: np.ndarray | None, **attrs: Any) -> np.ndarray:
    """Evaluate one ONNX operator; an input of None is an omitted optional input."""
    elems = tuple(None if a is None else ELEM[np.asarray(a).dtype] for a in inputs)
    key = tuple(sorted((k, _attr(v)) for k, v in attrs.items()))
    session = _session(op_type, elems, key)
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs) if a is not None}
    return session.run(None, feeds)[0]


def _attr(v: Any) -> Any:
    # ONNX attributes are float32, int64 or strings; numpy scalars are turned into the Python kind.
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return v


def _c(x: np.ndarray, v: float) -> np.ndarray:
    return np.asarray(v, dtype=x.dtype)


def schema_default(op_type: str, attribute: str, spec_name: str, note: str = "", **kw: Any) -> NativeDefault:
    """The default of an operator attribute, as the ONNX operator schema declares it."""
    def read() -> Any:
        proto = onnx.defs.get_schema(op_type, OPSET).attributes[attribute].default_value
        value = helper.get_attribute_value(proto) if proto.name else None
        return value.decode() if isinstance(value, bytes) else value
    return NativeDefault(f"{op_type}.{attribute}", spec_name, read, note=note, **kw)


_F32 = "ONNX attributes are float32: the default is the canonical value rounded to float32"
_NO_OPERATOR = "ONNX has no {} operator; exporters decompose it into elementwise operators"


def _dropout(x: np.ndarray, p: float, training: bool = True) -> np.ndarray:
    return run("Dropout", x, _c(x, p), np.asarray(bool(training)), seed=0)


def _sce(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
         label_smoothing: float = 0.0, ignore_index: int = -100) -> np.ndarray:
    require_class_axis(axis, input.ndim, 1, "SoftmaxCrossEntropyLoss")
    return run("SoftmaxCrossEntropyLoss", input, target, weight, reduction=reduction, ignore_index=int(ignore_index))


def _nll(input: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, reduction: str, axis: int,
         ignore_index: int = -100) -> np.ndarray:
    require_class_axis(axis, input.ndim, 1, "NegativeLogLikelihoodLoss")
    return run("NegativeLogLikelihoodLoss", input, target, weight, reduction=reduction, ignore_index=int(ignore_index))


def _op(op_type: str, extra: str = "", **kw: Any) -> Op:
    """An operator that takes x alone, with attributes named as the spec's parameters."""
    return Op(lambda x: run(op_type, x), op_type, f"{op_type}({{x}}{extra})", **kw)


OPS: dict[str, Op | Missing] = {
    "sigmoid": _op("Sigmoid"),
    "log_sigmoid": Missing(_NO_OPERATOR.format("LogSigmoid")),
    "tanh": _op("Tanh"),
    "relu": _op("Relu"),
    "relu6": Op(lambda x: run("Clip", x, _c(x, 0), _c(x, 6)), "Clip", "Clip({x}, min=0, max=6)",
                why="ONNX has no Relu6; exporters emit Clip(0, 6)"),
    "leaky_relu": Op(lambda x, negative_slope: run("LeakyRelu", x, alpha=negative_slope), "LeakyRelu",
                     "LeakyRelu({x}, alpha={negative_slope})",
                     native=(schema_default("LeakyRelu", "alpha", "negative_slope", _F32),)),
    "elu": Op(lambda x, alpha: run("Elu", x, alpha=alpha), "Elu", "Elu({x}, alpha={alpha})",
              native=(schema_default("Elu", "alpha", "alpha"),)),
    "selu": Op(lambda x, alpha, scale: run("Selu", x, alpha=alpha, gamma=scale), "Selu",
               "Selu({x}, alpha={alpha}, gamma={scale})",
               native=(schema_default("Selu", "alpha", "alpha", _F32), schema_default("Selu", "gamma", "scale", _F32))),
    "celu": Op(lambda x, alpha: run("Celu", x, alpha=alpha), "Celu", "Celu({x}, alpha={alpha})",
               native=(schema_default("Celu", "alpha", "alpha"),)),
    "prelu": Op(lambda x, weight: run("PRelu", x, weight), "PRelu", "PRelu({x}, {weight})"),
    "gelu": Op(lambda x: run("Gelu", x, approximate="none"), "Gelu", "Gelu({x}, approximate='none')",
               native=(schema_default("Gelu", "approximate", "approximation", canonical="none"),)),
    "gelu_tanh": Op(lambda x: run("Gelu", x, approximate="tanh"), "Gelu", "Gelu({x}, approximate='tanh')"),
    "silu": Op(lambda x, beta: run("Swish", x, alpha=beta), "Swish", "Swish({x}, alpha={beta})",
               native=(schema_default("Swish", "alpha", "beta"),)),
    "mish": _op("Mish"),
    "softplus": _op("Softplus", fixed={"beta": 1.0}),
    "softsign": _op("Softsign"),
    "hardtanh": Op(lambda x, min_val, max_val: run("Clip", x, _c(x, min_val), _c(x, max_val)), "Clip",
                   "Clip({x}, min={min_val}, max={max_val})"),
    # The spec's hardsigmoid is relu6(x + 3) / 6; ONNX's is max(0, min(1, alpha x + beta)), the
    # same function at alpha = 1/6, beta = 1/2 (rounded to float32), and a different one at its defaults.
    "hardsigmoid": Op(lambda x: run("HardSigmoid", x, alpha=1 / 6, beta=0.5), "HardSigmoid",
                      "HardSigmoid({x}, alpha=1/6, beta=0.5)",
                      native=(schema_default("HardSigmoid", "alpha", "slope", canonical=1 / 6,
                                             note="ONNX's default is Keras 2's 0.2 (x / 5 + 1/2)"),)),
    "hardswish": _op("HardSwish"),
    "softmax": Op(lambda x, axis: run("Softmax", x, axis=int(axis)), "Softmax", "Softmax({x}, axis={axis})",
                  native=(schema_default("Softmax", "axis", "axis"),)),
    "log_softmax": Op(lambda x, axis: run("LogSoftmax", x, axis=int(axis)), "LogSoftmax", "LogSoftmax({x}, axis={axis})",
                      native=(schema_default("LogSoftmax", "axis", "axis"),)),
    "logsumexp": Op(lambda x, axis: run("ReduceLogSumExp", x, np.asarray([int(axis)], dtype=np.int64), keepdims=1),
                    "ReduceLogSumExp", "ReduceLogSumExp({x}, axes=[{axis}], keepdims=1)",
                    native=(NativeDefault("ReduceLogSumExp.axes", "axis", lambda: "all axes", canonical=-1,
                                          note="with no axes input, ONNX reduces over every axis"),)),
    "maxout": Missing(_NO_OPERATOR.format("Maxout")),
    "dropout": Op(_dropout, "Dropout", "Dropout({x}, ratio={p}, training_mode=True)", differentiable=False,
                  native=(NativeDefault("Dropout.ratio", "p", lambda: 0.5, note="ratio is an optional input, 0.5 when omitted"),),
                  why="the gradient of dropout depends on the random mask; checked through the kept values"),
    # ---- losses: ONNX has two loss operators; the rest are decomposed by exporters.
    "mse": Missing(_NO_OPERATOR.format("mean squared error")),
    "l1": Missing(_NO_OPERATOR.format("L1 loss")),
    "huber": Missing(_NO_OPERATOR.format("Huber loss")),
    "smooth_l1": Missing(_NO_OPERATOR.format("smooth L1 loss")),
    "binary_cross_entropy": Missing(_NO_OPERATOR.format("binary cross-entropy")),
    "binary_cross_entropy_with_logits": Missing(_NO_OPERATOR.format("binary cross-entropy with logits")),
    "cross_entropy": Op(_sce, "SoftmaxCrossEntropyLoss",
                        "SoftmaxCrossEntropyLoss({input}, {target}, reduction={reduction}, ignore_index={ignore_index})",
                        native=(schema_default("SoftmaxCrossEntropyLoss", "reduction", "reduction"),
                                schema_default("SoftmaxCrossEntropyLoss", "ignore_index", "ignore_index",
                                               note="no default: nothing is ignored unless it is set")),
                        fixed={"label_smoothing": 0.0}),
    "cross_entropy_soft": Missing("SoftmaxCrossEntropyLoss takes integer labels only, not probability targets"),
    "nll": Op(_nll, "NegativeLogLikelihoodLoss",
              "NegativeLogLikelihoodLoss({input}, {target}, reduction={reduction}, ignore_index={ignore_index})",
              native=(schema_default("NegativeLogLikelihoodLoss", "reduction", "reduction"),
                      schema_default("NegativeLogLikelihoodLoss", "ignore_index", "ignore_index",
                                     note="no default: nothing is ignored unless it is set"))),
    "kl_div": Missing(_NO_OPERATOR.format("KL divergence")),
}
_TRAINING = ("the ai.onnx.preview.training optimizer operators (Adagrad, Momentum, Adam) have no kernels in "
             "onnxruntime's inference package")
OPS.update({name: Missing(_TRAINING) for name in ("sgd", "sgd_momentum", "sgd_nesterov", "adagrad", "rmsprop",
                                                  "rmsprop_centered", "adam", "amsgrad", "adamw")})


class OnnxruntimeAdapter(Adapter):
    name = "onnxruntime"
    framework = "onnxruntime"
    version = ort.__version__
    gradient_reason = "ONNX Runtime inference sessions have no automatic differentiation"
    ops = OPS

    def to_backend(self, a: np.ndarray, dtype: str) -> np.ndarray:
        return np.asarray(a).astype(NP[dtype])

    def to_numpy(self, t: Any) -> np.ndarray:
        if not isinstance(t, np.ndarray):
            raise TypeError(f"expected a numpy array from onnxruntime, got {type(t).__name__}")
        return t

    def environment(self) -> dict[str, str]:
        options = ort.SessionOptions()
        return {"execution_provider": "CPUExecutionProvider", "opset": str(OPSET),
                "graph_optimization_level": str(options.graph_optimization_level).split(".")[-1],
                "intra_op_threads": str(options.intra_op_num_threads or f"default ({os.cpu_count()} cores)")}


def make_adapter(device: str = "cpu") -> OnnxruntimeAdapter:
    if device != "cpu":
        raise RuntimeError("this adapter runs ONNX Runtime's CPU execution provider only")
    return OnnxruntimeAdapter(device)
