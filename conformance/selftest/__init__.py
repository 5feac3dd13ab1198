"""The suite checking itself: mutant backends that must be killed (mutation.py), verdicts that must not
depend on the Hypothesis seed (determinism.py)."""
