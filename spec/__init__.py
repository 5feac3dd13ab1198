"""Canonical definitions of the functions under test, as data (one YAML file each)."""

from .loader import DTYPES, Budget, OptimizerSpec, Spec, SpecError, load_all, load_spec, load_text, parse_document, spec_files

__all__ = ["Budget", "DTYPES", "OptimizerSpec", "Spec", "SpecError", "load_all", "load_spec", "load_text", "parse_document", "spec_files"]
