"""`nnconform new-adapter NAME`: the first draft of a backend adapter, written from the specs.

The module it writes runs as it is: every spec function is `Missing`, so a conformance run
reports each one "not provided" and nothing fails.  The author then replaces entries with
`Op`s one at a time and reruns (docs/adding-a-backend.md walks through it).  Each entry
carries the spec's own formula and parameter defaults as a comment, so the author sees
what the suite will ask without opening the YAML.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from pathlib import Path

from nnconform.spec.loader import OptimizerSpec, Spec, load_all

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

HEADER = '''"""{name}: TODO say which public API this adapter calls and how gradients are obtained.

Written by `nnconform new-adapter {name}`.  Every spec function starts as Missing: replace an
entry with an Op (a call of the framework's public API under the spec's parameter names) and
run `pytest conformance --backend={name} --functions=<it>`.  See docs/adding-a-backend.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnconform.adapters.base import Adapter, Missing, Op, Optimizer, native_default  # noqa: F401

TODO = "not yet provided by the {name} adapter"

OPS: dict[str, Op | Optimizer | Missing] = {{
'''

FOOTER = '''}}


class {cls}(Adapter):
    name = "{name}"
    framework = "{name}"       # the pip distribution: its version goes into the report
    version = "0"              # TODO: the framework's __version__
    dtypes = ("float64", "float32", "float16", "bfloat16")   # TODO: what the framework supports
    gradient_reason = "TODO: say how gradients are obtained, or why there are none"
    ops = OPS

    def to_backend(self, a: np.ndarray, dtype: str) -> Any:
        # TODO: build the framework's array from the NumPy one (exact values, this dtype).
        import ml_dtypes
        return np.asarray(a).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)

    def to_numpy(self, t: Any) -> np.ndarray:
        # TODO: the framework's array as NumPy; reject what is not one of its arrays.
        return np.asarray(t)


def make_adapter(device: str = "cpu") -> {cls}:
    if device != "cpu":
        raise RuntimeError(f"the {name} adapter runs on the CPU only, not {{device!r}}")
    return {cls}(device)
'''

ENTRY_POINT = '''[project.entry-points."nnconform.adapters"]
{name} = "{module}:make_adapter"
'''


class ScaffoldError(ValueError):
    """A name that cannot become a backend module, or a file that would be overwritten."""


def _entry(spec: Spec | OptimizerSpec) -> str:
    if isinstance(spec, OptimizerSpec):
        steps = "; ".join(f"{target} = {spec.doc.step[target]}" for target in spec.doc.step)
        comment = f"{spec.doc.summary}  step: {steps}"
    else:
        args = ", ".join(spec.tensor_inputs)
        comment = f"{spec.name}({args}) = {spec.doc.formula}"
    params = ", ".join(f"{k}={v}" for k, v in spec.defaults.items())
    if params:
        comment += f"  [defaults: {params}]"
    lines = textwrap.wrap(comment, 96, break_long_words=False, break_on_hyphens=False)
    return "".join(f"    # {line}\n" for line in lines) + f'    "{spec.name}": Missing(TODO),\n'


def render(name: str) -> str:
    """The adapter module's text for a backend called `name`."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"backend name {name!r}: use lower case letters, digits and _, starting with a letter")
    specs = load_all()
    body = []
    for family, title in (("activation", "activations"), ("loss", "losses"), ("optimizer", "optimizers")):
        members = [s for s in specs.values() if s.family == family]
        if members:
            body.append(f"    # ---- {title} (spec/{title}/)\n")
            body.extend(_entry(s) for s in sorted(members, key=lambda s: s.name))
    cls = "".join(part.capitalize() for part in name.split("_")) + "Adapter"
    return HEADER.format(name=name) + "".join(body) + FOOTER.format(name=name, cls=cls)


def write(name: str, directory: Path, force: bool = False) -> tuple[Path, str]:
    """Write `<name>_adapter.py` into `directory`; returns the path and the entry-point stanza."""
    text = render(name)
    path = directory / f"{name}_adapter.py"
    if path.exists() and not force:
        raise ScaffoldError(f"{path} exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path, ENTRY_POINT.format(name=name, module=f"{name}_adapter")
