"""The pytest conformance suite and plugin."""
