"""The reference returns correctly rounded values, checked against independently derived ones."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from nnconform.reference import Reference
from nnconform.reference import evaluator as E
from nnconform.reference.dtypes import info, round_mpf
from nnconform.spec import load_all, parse_document

from .independent import round_to

SPECS = load_all(["activation", "loss"])
REF = Reference()


def ref1(name: str, x: float, dtype: str = "float64", **params: float) -> float:
    arr = np.array([x], dtype=np.float64).astype(info(dtype).np_dtype)
    return float(REF.value(SPECS[name], {"x": arr}, params, dtype).values[0])


# Each expected value was computed with mpmath at dps=300 from a formula that avoids the
# cancellation (erfc, log1p, exp(-x)/(1+exp(-x))), then rounded with fractions.Fraction
# and round() (half to even) in tests/independent.py.  Neither path shares code with the
# reference, which evaluates the spec's own formula.
@pytest.mark.parametrize("name, x, dtype, expected", [
    # gelu(-10) = -10/2 * erfc(10/sqrt(2)) = -7.619853024160526066e-23
    ("gelu", -10.0, "float64", "-0x1.7079362639d51p-74"),
    ("gelu", -10.0, "float32", "-0x1.7079360000000p-74"),
    # gelu(-3) = -3/2 * erfc(3/sqrt(2)) = -0.00404969409489028358
    ("gelu", -3.0, "bfloat16", "-0x1.0a00000000000p-8"),
    # log_sigmoid(40) = -log1p(exp(-40)) = -4.2483542552915889863e-18
    ("log_sigmoid", 40.0, "float64", "-0x1.39792499b1a24p-58"),
    # softplus(20.5) = log1p(exp(20.5)) = 20.500000001250152866 (torch's threshold returns 20.5)
    ("softplus", 20.5, "float64", "0x1.4800000055e8fp+4"),
    # sigmoid(-100) = 1/(1+exp(100)) = 3.720075976020835963e-44: a float32 subnormal
    ("sigmoid", -100.0, "float32", "0x1.b000000000000p-145"),
    # sigmoid(-745) = 2.8223507304719370764e-324 > 2**-1075: rounds up to the smallest subnormal
    ("sigmoid", -745.0, "float64", "0x0.0000000000001p-1022"),
    # tanh(0.5) = 0.4621171572600097585
    ("tanh", 0.5, "float16", "0x1.d940000000000p-2"),
    # elu(-1e-10) = expm1(-1e-10) = -9.9999999995000003643e-11 (exp(x)-1 would lose 7 digits)
    ("elu", -1e-10, "float64", "-0x1.b7cdfd9d1d693p-34"),
])
def test_published_value(name: str, x: float, dtype: str, expected: str) -> None:
    assert ref1(name, x, dtype).hex() == float.fromhex(expected).hex()


def test_one_minus_sigmoid_through_a_spec() -> None:
    # 1 - sigmoid(x) cancels completely in any fixed precision below ~190 bits at x = 100:
    # plain Ziv (compare two precisions) sees 0 twice and accepts it.
    doc = {"name": "complement", "family": "activation", "summary": "1 - sigmoid(x)",
           "inputs": {"x": {}}, "formula": "1 - sigmoid(x)", "derivatives": {"x": "-y * (1 - y)"},
           "tolerance": {d: {"ulp": 1, "gradient_ulp": 1} for d in ("float64", "float32", "float16", "bfloat16")}
           | {"why": "test spec: exact comparison of the reference only"},
           "sources": ["test"]}
    spec = parse_document(doc, "complement.yaml")
    got = REF.value(spec, {"x": np.array([40.0, 100.0])}).values
    # exp(-40)/(1+exp(-40)) = 4.2483542552915889773e-18; exp(-100)/(1+exp(-100)) = 3.720075976020835963e-44
    assert got[0].hex() == "0x1.39792499b1a24p-58"
    assert got[1].hex() == "0x1.a8c1f14e2af5dp-145"


def test_log_softmax_dominant_entry_is_not_zero() -> None:
    # log_softmax([50, 0])[0] = -log1p(exp(-50)) = -1.928749847963917783e-22 (mpmath, dps=300)
    got = REF.value(SPECS["log_softmax"], {"x": np.array([[50.0, 0.0]])}).values
    assert got[0, 0].hex() == "-0x1.d257d547e083fp-73"
    assert got[0, 1] == -50.0 + got[0, 0]


def _mp_formula(name: str):
    """The same functions written directly with mpmath's high-level API (not the spec's formula)."""
    return {
        "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
        "tanh": mpmath.tanh,
        "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
        "gelu": lambda x: x * mpmath.erfc(-x / mpmath.sqrt(2)) / 2,
        "silu": lambda x: x / (1 + mpmath.exp(-x)),
        "mish": lambda x: x * mpmath.tanh(mpmath.log1p(mpmath.exp(x))),
        "log_sigmoid": lambda x: -mpmath.log1p(mpmath.exp(-x)),
        "elu": lambda x: x if x > 0 else mpmath.expm1(x),
        "softsign": lambda x: x / (1 + abs(x)),
    }[name]


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "gelu", "silu", "mish", "log_sigmoid", "elu", "softsign"])
def test_correct_rounding_against_independent_evaluation(name: str, dtype: str) -> None:
    rng = np.random.default_rng(1234)
    xs = np.concatenate([rng.normal(0, 4, 60), rng.uniform(-60, 60, 20), -(10.0 ** rng.uniform(-30, 2, 10))])
    xs = xs.astype(info(dtype).np_dtype).astype(np.float64)
    got = REF.value(SPECS[name], {"x": xs.astype(info(dtype).np_dtype)}, dtype=dtype).values.astype(np.float64)
    fn = _mp_formula(name)
    with mpmath.workdps(400):
        expected = [round_to(fn(mpmath.mpf(float(x))), dtype) for x in xs]
    bad = [(x, g, e) for x, g, e in zip(xs, got, expected) if g != e]
    assert not bad, f"{len(bad)} differ, first (x, reference, independent): {bad[:3]}"


def test_final_precision_is_stable_at_twice_the_precision() -> None:
    rng = np.random.default_rng(7)
    for name in ["sigmoid", "softplus", "gelu", "gelu_tanh", "mish", "silu", "elu", "selu", "celu", "log_sigmoid"]:
        spec = SPECS[name]
        fn = E.compile_node(spec.formula)
        for dtype in ("float64", "float32", "bfloat16"):
            dt = info(dtype)
            for x in np.concatenate([rng.normal(0, 5, 20), [-10.0, -38.0, 40.0, 1e-20]]):
                x = float(np.float64(x).astype(dt.np_dtype))
                got = ref1(name, x, dtype)
                prec = 2 * REF.last_precision
                env = {"x": (mpmath.mpf(x)._mpf_, None)}
                for k, v in spec.defaults.items():
                    env[k] = E.constant(v, prec)
                v, _ = fn(env, prec)
                assert round_mpf(v, dt) == got, (name, dtype, x)


def test_uncertain_is_reported_never_guessed() -> None:
    # exp(log(x)) > x is false mathematically, but no finite precision can decide it from an
    # error bound: the reference must give up and say so.
    doc = {"name": "undecidable", "family": "activation", "summary": "a comparison of equal values",
           "inputs": {"x": {"differentiable": False}}, "formula": "where(exp(log(x)) > x, 1, 0)",
           "tolerance": {d: {"ulp": 1, "gradient_ulp": 1} for d in ("float64", "float32", "float16", "bfloat16")}
           | {"why": "test spec: exact comparison of the reference only"},
           "sources": ["test"]}
    spec = parse_document(doc, "undecidable.yaml")
    res = Reference(max_precision=512).value(spec, {"x": np.array([3.0, 0.5])})
    assert res.uncertain.all()
    assert np.isnan(res.values).all()


@pytest.mark.parametrize("name, x, params, expected", [
    ("sigmoid", math.inf, {}, 1.0),
    ("sigmoid", -math.inf, {}, 0.0),
    ("elu", -math.inf, {"alpha": 0.5}, -0.5),          # the limit is -alpha
    ("softplus", math.inf, {}, math.inf),
    ("tanh", -0.0, {}, -0.0),                          # zero_sign: preserve
    ("sigmoid", math.nan, {}, math.nan),
])
def test_special_values_follow_the_spec(name: str, x: float, params: dict, expected: float) -> None:
    got = ref1(name, x, **params)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected)


def test_vector_conventions() -> None:
    rows = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    sm = REF.value(SPECS["softmax"], {"x": rows}).values
    assert np.isnan(sm[0]).all()                        # all_neg_inf_row: nan
    assert list(sm[1]) == [1.0, 0.0]                    # a masked entry gets exactly 0
    lse = REF.value(SPECS["logsumexp"], {"x": rows}).values
    assert lse.shape == (2, 1) and lse[0, 0] == -np.inf and lse[1, 0] == 0.0


def test_softmax_overflow_row() -> None:
    # softmax([1000, 0, -1000]) = [1/(1+e^-1000+e^-2000), e^-1000/(...), ...] = [1, 0, 0] in float64
    got = REF.value(SPECS["softmax"], {"x": np.array([[1000.0, 0.0, -1000.0]])}).values
    assert list(got[0]) == [1.0, 0.0, 0.0]


def test_axis_parameter_moves_the_reduction() -> None:
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    by_rows = REF.value(SPECS["softmax"], {"x": x}, {"axis": 1}).values
    by_cols = REF.value(SPECS["softmax"], {"x": x.T}, {"axis": 0}).values
    assert np.array_equal(by_rows, by_cols.T)


def test_maxout_groups() -> None:
    got = REF.value(SPECS["maxout"], {"x": np.array([[1.0, 4.0, -2.0, -3.0, 7.0, 7.5]])}, {"k": 3}).values
    assert got.tolist() == [[4.0, 7.5]]


# exp_mpf takes mpmath's argument-reduction path where mpf_exp would square e thousands of
# times (prec > 600, integer argument).  The independent value is that repeated-squaring path
# itself, at 200 more bits: two algorithms, one answer, within one ulp at the target precision.
@pytest.mark.parametrize("x", [-(2**40), -(10**300), -(3 * 10**200 + 7), 2**20 + 1, 10**5])
@pytest.mark.parametrize("prec", [700, 2464])
def test_exp_of_huge_integer_within_one_ulp(x: int, prec: int) -> None:
    from mpmath.libmp import from_int, mpf_exp, mpf_sub
    arg = from_int(x)
    got = E.exp_mpf(arg, prec)
    slow = mpf_exp(arg, prec + 200, "n")
    assert E.mag(mpf_sub(got, slow)) <= E.mag(slow) - prec + 1


def test_gelu_derivative_far_left_is_negative_zero() -> None:
    # gelu'(x) = Phi(x) + x phi(x).  At x = -1e300 both terms are below 2**-(10**600); x phi(x)
    # is negative and 1e300 times larger than Phi(x) (Mills' ratio: Phi(x) ~ phi(x)/|x|), so
    # the exact value is a negative number far below the smallest subnormal: -0.0 in float64.
    s = SPECS["gelu"]
    g = REF.vjp(s, "x", {"x": np.array([-1e300])}, np.ones(1)).values[0]
    assert g == 0 and math.copysign(1.0, g) < 0
