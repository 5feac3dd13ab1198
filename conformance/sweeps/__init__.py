"""Measurement sweeps: the largest error over fixed input sets, measured rather than judged (sweep.py),
all 2**32 float32 inputs of one function (float32.py), and the shipped 16-bit reference tables (shipped_tables.py)."""
