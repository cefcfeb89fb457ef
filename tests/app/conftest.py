"""App test fixtures: machines small and fast enough for many Pilot runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.machine import Machine
from engine.programs import boot_kernel_machine
from tests.app.demo_machine import demo_machine, loop_machine
from vizvm.app import VizVMApp, make_app


@pytest.fixture
def demo_app() -> VizVMApp:
    """The app on the hand-encoded demo machine (traps, a page fault, I/O, a halt at step 73)."""
    return make_app(demo_machine())


@pytest.fixture
def kernel_app() -> VizVMApp:
    """The app as `vizvm` opens it: the shipped kernel with hello and count."""
    return make_app(boot_kernel_machine())


@pytest.fixture
def app_for() -> Callable[[Machine], VizVMApp]:
    """Build the app for any machine."""
    return make_app


__all__ = ["loop_machine"]
