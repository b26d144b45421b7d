"""A fixed simulation and its canary, declared once.

A canary runs the same requests against the known-buggy variant (the code
before the fix) and must be caught: it proves the invariants can see the bug.
Declaring it beside the fixed one repeats everything but the world; instead::

    @canary(world=shop("check_then_act"))          # the known-buggy variant
    @interlace.simulation(world=shop("fixed"), reset=reset_world,
                          invariants=SHOP_INVARIANTS, databases=("sqlite", "postgres"))
    async def two_buyers(world: World) -> None:
        ...

declares ``two_buyers`` (the fixed variant, must pass) and
``two_buyers_pre_fix``: the same body, reset, invariants, databases and
setup, on the canary's world, with ``expect_violation=True``. The canary is
assigned to the module under that name, where ``interlace run``, ``interlace
replay`` and pytest (when the name starts with ``test``) find it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import interlace
from interlace import Simulation, UsageError
from interlace.invariants import Invariant


def canary(
    *,
    world: Callable[..., AbstractAsyncContextManager[Any]],
    suffix: str = "_pre_fix",
    expect_violation: bool | Iterable[Invariant | str] = True,
) -> Callable[[Simulation], Simulation]:
    """Declare the canary of the simulation below it (see the module docstring)."""

    def declare(fixed: Simulation) -> Simulation:
        if not isinstance(fixed, Simulation):
            raise UsageError(
                "@canary(...) goes above @interlace.simulation(...): it copies that declaration"
            )
        name = fixed.attribute + suffix
        module = sys.modules.get(fixed.module)
        if module is None:
            raise UsageError(f"@canary: module {fixed.module} of {fixed.name} is not imported")
        if getattr(module, name, None) is not None:
            raise UsageError(
                f"@canary: {fixed.module}.{name} exists already; choose another suffix"
            )
        pre_fix = interlace.simulation(
            world=world,
            reset=fixed.reset,
            setup=fixed.setup,
            invariants=fixed.invariants,
            databases=fixed.databases,
            expect_violation=expect_violation,
            name=name,
        )(fixed.body)
        description = f"Canary of {fixed.attribute}" + (
            f": {fixed.description}" if fixed.description else ""
        )
        setattr(module, name, dataclasses.replace(pre_fix, description=description))
        return fixed

    return declare
