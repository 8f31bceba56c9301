"""Options declared once: each option's default, range or choices and help text sit on its
dataclass field (:func:`option`); the command line, the ComfyUI nodes and the range checks are
all built from that one declaration (``cli.py``, ``nodes/common.py``, ``checks.check_fields``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Spec:
    """How an option is shown and checked."""
    help: str                           # one text: the CLI's help and the node's tooltip
    low: Optional[float] = None         # numbers: the allowed range
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()       # text: the allowed values
    zero: str = ""                      # 0 is allowed below ``low`` and means this (e.g. "no tiling")
    key: str = ""                       # the name users see (node input, CLI dest); default: the field's
    flag: str = ""                      # the CLI flag where it is not --key
    step: Optional[float] = None        # a node widget's step (floats)
    cli: bool = True                    # False: for library callers and nodes only, no CLI flag

    def label(self, name: str) -> str:
        """How messages name the option: its key with spaces."""
        return (self.key or name).replace("_", " ")

    def allowed(self) -> str:
        """The numbers it takes, in words: "a value from 32 to 16384", with its 0 where it has one."""
        span = f"a value from {_number(self.low)} to {_number(self.high)}"
        return f"0 ({self.zero}) or {span}" if self.zero else span

    def describe(self, kind: type) -> str:
        """The one help text of the CLI and the nodes' tooltips: the help, and a number's range."""
        return self.help if kind is bool or self.choices else f"{self.help} ({self.allowed()})"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def option(default, help: str, **spec):
    """A dataclass field with its :class:`Spec`."""
    return dataclasses.field(default=default, metadata={"spec": Spec(help, **spec)})


def specs(cls) -> Dict[str, Spec]:
    """``{field name: Spec}`` of a dataclass (or instance), in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls) if "spec" in f.metadata}


def spec_of(cls, name: str) -> Spec:
    return specs(cls)[name]


def key_of(cls, name: str) -> str:
    """The public name of a field (node input, CLI flag)."""
    return spec_of(cls, name).key or name


def by_key(cls) -> Dict[str, str]:
    """``{public name: field name}`` of a dataclass's options."""
    return {(s.key or n): n for n, s in specs(cls).items()}


def kind(cls, name: str) -> type:
    """bool, int, float or str: the type of a field's default."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return type(f.default)
