"""The queued steps in pipeline order, and what `watch` needs to know about each."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from contimg.steps.runner import DoOne


@dataclass(frozen=True)
class StepSpec:
    name: str
    module: str          # module holding ``<name>_one``
    uses_casa: bool      # start CASA (offline) in the worker process first
    writes_staging: bool = True  # needs disk space on staging (checked before it starts)

    def do_one(self) -> DoOne:
        return getattr(importlib.import_module(self.module), f"{self.name}_one")


PIPELINE: tuple[StepSpec, ...] = (
    StepSpec("convert", "contimg.steps.convert", uses_casa=False),
    StepSpec("calibrate", "contimg.steps.calibrate", uses_casa=True),
    StepSpec("image", "contimg.steps.image", uses_casa=True),
    StepSpec("mosaic", "contimg.steps.mosaic", uses_casa=False),
    StepSpec("publish", "contimg.steps.publish", uses_casa=False, writes_staging=False),
)

BY_NAME = {s.name: s for s in PIPELINE}


def available() -> tuple[StepSpec, ...]:
    """Steps whose implementation is importable here."""
    out = []
    for spec in PIPELINE:
        try:
            spec.do_one()
        except ImportError:
            continue
        out.append(spec)
    return tuple(out)
