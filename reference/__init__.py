"""The exact reference: mpmath evaluation of any spec, correctly rounded to each dtype."""

from .cache import ReferenceCache
from .dtypes import DTYPE_INFO, info, round_mpf, ulp_error
from .engine import MAX_PRECISION, Reference, RefResult
from .losses import REDUCTIONS, LossReference
from .optimizers import OptimizerReference, Problem, Trajectory, running_error_bound

__all__ = ["DTYPE_INFO", "LossReference", "MAX_PRECISION", "OptimizerReference", "Problem", "REDUCTIONS", "Reference", "RefResult", "ReferenceCache", "Trajectory", "info", "round_mpf", "running_error_bound", "ulp_error"]
