"""The error measure: |got - exact| / ulp(exact), in ULPs of the dtype (values derived by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from nnconform.reference.dtypes import info, ulp_error, ulp_of


@pytest.mark.parametrize("value, dtype, expected", [
    (1.0, "float64", 2.0 ** -52),        # [1, 2) has 52 fraction bits
    (1.5, "float32", 2.0 ** -23),
    (0.75, "float16", 2.0 ** -11),       # [0.5, 1): exponent -1, 10 fraction bits
    (3.0, "bfloat16", 2.0 ** -6),        # [2, 4): exponent 1, 7 fraction bits
    (0.0, "float64", 2.0 ** -1074),      # at zero: the smallest subnormal
    (1e-40, "float32", 2.0 ** -149),     # subnormal range: fixed spacing
    (-2.0, "float64", 2.0 ** -51),       # sign does not matter
])
def test_ulp_of(value: float, dtype: str, expected: float) -> None:
    assert ulp_of(np.array([value]), info(dtype))[0] == expected


def test_one_step_is_one_ulp() -> None:
    assert ulp_error(np.array([1.0 + 2.0 ** -52]), np.array([1.0]), info("float64"))[0] == 1.0


def test_error_is_linear_across_binades() -> None:
    # got 0 where the exact value is 2**-60: |0 - 2**-60| / 2**(-60-52) = 2**52 ULP, not the
    # ~4.6e18 representable numbers that lie between 0 and 2**-60.
    assert ulp_error(np.array([0.0]), np.array([2.0 ** -60]), info("float64"))[0] == 2.0 ** 52


def test_half_ulp_in_a_16_bit_format() -> None:
    # 1 + 2**-11 is not a float16; against the float16 value 1.0 it is half an ULP (2**-10) away.
    assert ulp_error(np.array([1.0 + 2.0 ** -11]), np.array([1.0]), info("float16"))[0] == 0.5
