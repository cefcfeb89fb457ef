"""Snapshots of the machine screen in its main states, and of help and the palette.

The states come from vizvm.scenarios, the same functions scripts/make_screenshots.py uses, so the README
screenshots and these baselines cannot drift apart. The machine is the test-owned demo (tests/app/
demo_machine.py), so an edit to the shipped kernel's source does not change these baselines; the README
screenshots show the shipped kernel. Update with `pytest tests/app --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.app.demo_machine import demo_machine
from vizvm.app import make_app
from vizvm.scenarios import SCENARIOS, Scenario, no_blink

SnapCompare = Callable[..., bool]


def with_no_blink(scenario: Scenario) -> Callable[[Pilot[Any]], Any]:
    """Run the scenario, then stop cursors blinking."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await scenario(pilot)
        no_blink(pilot.app)
        await pilot.pause()

    return run_before


class TestMachineScreen:
    """The machine screen at 160x50: a mini kernel, one user loop with a syscall, a page fault and a #GP."""

    @pytest.mark.parametrize("name", ["boot", "trap-taken", "page-walk", "halted"])
    def test_state(self, snap_compare: SnapCompare, name: str) -> None:
        """Boot, a system call just taken, the first user-mode page walk, and the halted machine."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS[name]), terminal_size=(160, 50))

    def test_compact_trap_taken(self, snap_compare: SnapCompare) -> None:
        """At 100x30 the compact layout keeps every panel but the event log readable."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS["trap-taken"]), terminal_size=(100, 30))

    def test_too_small(self, snap_compare: SnapCompare) -> None:
        """Below 80x24 a message replaces the panels."""
        app = make_app(demo_machine())
        assert snap_compare(app, terminal_size=(70, 20))


class TestHelpAndPalette:
    """F1 help and the Ctrl+P palette over the machine screen."""

    def test_help(self, snap_compare: SnapCompare) -> None:
        """Every key, grouped, generated from the bindings."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS["help"]), terminal_size=(160, 50))

    def test_palette(self, snap_compare: SnapCompare) -> None:
        """Commands found by typing part of their name."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS["palette"]), terminal_size=(160, 50))
