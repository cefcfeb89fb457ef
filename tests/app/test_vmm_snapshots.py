"""Snapshots of the virtualization views: the machine screen under trap, bt and hw, and the compare screen.

The states come from vizvm.scenarios (shared with scripts/make_screenshots.py); the guests are test-owned
(the demo machine and a copy of the POPF lesson's fragment), so editing the shipped kernel or the lesson
does not change these baselines. Update with `pytest tests/app --snapshot-update`.
"""

from __future__ import annotations

import pytest

from tests.app.demo_machine import demo_machine
from tests.app.test_snapshots import SnapCompare, with_no_blink
from tests.app.vmm_systems import popf_machine
from vizvm.app import make_app
from vizvm.scenarios import SCENARIOS


class TestVirtualizedMachineScreen:
    """The demo guest under a VMM: VMM lane, virtual CPU, VMM panel."""

    @pytest.mark.parametrize("name", ["trap-syscall", "bt-cache", "hw-exit"])
    def test_mode(self, snap_compare: SnapCompare, name: str) -> None:
        """A system call reflected by trap-and-emulate, the handler's block translated, a port write's VM exit."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS[name]), terminal_size=(160, 50))

    def test_compact_trap(self, snap_compare: SnapCompare) -> None:
        """At 100x30 the VMM panel takes the memory mapper's place and the timeline keeps its three lanes."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS["trap-syscall"]), terminal_size=(100, 30))


class TestCompareScreen:
    """The POPF fragment in every mode, at the step trap-and-emulate diverges."""

    def test_divergence(self, snap_compare: SnapCompare) -> None:
        """Columns per mode, the diverged ones marked, cost bars and the divergence banner."""
        app = make_app(popf_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS["compare-divergence"]), terminal_size=(160, 50))
