"""The exact reference: mpmath evaluation of any spec, correctly rounded to each dtype."""

from .cache import ReferenceCache
from .dtypes import DTYPE_INFO, info, round_mpf, ulp_error
from .engine import MAX_PRECISION, Reference, RefResult
from .losses import REDUCTIONS, LossReference

__all__ = ["DTYPE_INFO", "LossReference", "MAX_PRECISION", "REDUCTIONS", "Reference", "RefResult", "ReferenceCache", "info", "round_mpf", "ulp_error"]
