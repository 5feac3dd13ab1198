"""Inputs: Hypothesis strategies (strategies.py) and the deterministic sets every seed runs (grids.py)."""
