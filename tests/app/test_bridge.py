"""The engine bridge without a UI: stepping, time travel, run-until conditions, breakpoints, the window."""

from __future__ import annotations

import time

import pytest

from engine.events import PortIO, TrapReturn, TrapTaken
from engine.machine import Machine
from tests.app.demo_machine import USER_VA, demo_machine, loop_machine
from vizvm.bridge import SPEEDS, EngineBridge
from vizvm.viewmodel import registers


def first_step(machine: Machine, predicate: type | tuple[type, ...], vector: int | None = None) -> int:
    """Reference answer: the first step whose events include `predicate` (stepping a fresh machine)."""
    while not machine.halted:
        result = machine.step()
        for event in result.events:
            if isinstance(event, predicate) and (vector is None or getattr(event, "vector", None) == vector):
                return result.step
    raise AssertionError("never happened")


def run_to_stop(bridge: EngineBridge, limit: float = 10.0) -> None:
    """Drive the timer by hand until the run stops."""
    deadline = time.perf_counter() + limit
    while bridge.running and time.perf_counter() < deadline:
        bridge.tick()
    assert not bridge.running


def test_step_records_events_and_changes() -> None:
    bridge = EngineBridge(demo_machine())
    assert bridge.step(3) == 3
    assert bridge.machine.steps == 3
    assert bridge.recording.hi == 3 and len(bridge.recording) == 3
    cpu = bridge.cpu_state()
    assert "pc" in cpu.changed and cpu.since_step == 2


def test_step_back_restores_exact_state_and_window() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.step(20)
    at_19 = None
    bridge.step_back()
    at_19 = registers(bridge.machine)
    bridge.step()
    bridge.step_back()
    assert registers(bridge.machine) == at_19
    assert bridge.machine.steps == 19 and bridge.recording.hi == 19


@pytest.mark.parametrize("target", [0, 5, 17, 40])
def test_go_to_visited_and_unvisited_steps(target: int) -> None:
    reference = demo_machine()
    reference.run(target)
    bridge = EngineBridge(demo_machine())
    bridge.step(30)
    bridge.go_to(target)
    if bridge.running:
        run_to_stop(bridge)
    assert bridge.machine.steps == target
    assert registers(bridge.machine) == registers(reference)


def test_reset_goes_to_step_zero_and_keeps_breakpoints() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.toggle_breakpoint(0x1008)
    bridge.step(10)
    bridge.reset()
    assert bridge.machine.steps == 0 and len(bridge.recording) == 0
    assert bridge.breakpoints == {0x1008}


@pytest.mark.parametrize(("goal", "event", "vector"), [
    ("trap", TrapTaken, None), ("page-fault", TrapTaken, 14), ("io", PortIO, None),
])
def test_run_until_stops_right_after_the_event(goal: str, event: type, vector: int | None) -> None:
    expected = first_step(demo_machine(), event, vector) + 1
    bridge = EngineBridge(demo_machine())
    assert bridge.run(goal) is None
    run_to_stop(bridge)
    assert bridge.machine.steps == expected
    last = bridge.recording.last()
    assert last is not None and any(isinstance(e, event) for e in last.events)
    assert bridge.last_stop


def test_run_until_trap_on_the_kernel_matches_headless_reference() -> None:
    from engine.programs import boot_kernel_machine

    expected = first_step(boot_kernel_machine(), TrapTaken) + 1
    bridge = EngineBridge(boot_kernel_machine())
    bridge.run("trap")
    run_to_stop(bridge)
    assert bridge.machine.steps == expected
    assert "system call" in bridge.last_stop


def test_breakpoint_stops_before_the_instruction_and_run_leaves_it() -> None:
    bridge = EngineBridge(demo_machine())
    target = USER_VA + 0x30  # the user's `cli`
    bridge.toggle_breakpoint(target)
    bridge.run("run")
    run_to_stop(bridge)
    assert bridge.machine.cpu.pc == target
    assert "breakpoint" in bridge.last_stop
    first_hit = bridge.machine.steps
    bridge.run("run")
    run_to_stop(bridge)
    assert bridge.machine.cpu.pc == target and bridge.machine.steps > first_hit


def test_step_out_runs_to_the_matching_iret() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.run("trap")
    run_to_stop(bridge)
    assert bridge.machine.cpu.ring == 0 and bridge.inside_handler()
    assert bridge.run("iret") is None
    run_to_stop(bridge)
    last = bridge.recording.last()
    assert last is not None and any(isinstance(e, TrapReturn) for e in last.events)
    assert bridge.machine.cpu.ring == 3


def test_step_out_outside_a_handler_is_refused() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.step(2)
    assert bridge.run("iret") is not None
    assert not bridge.running


def test_run_after_halt_is_refused_and_step_does_nothing() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.run("run")
    run_to_stop(bridge)
    assert bridge.machine.halted and "halted" in bridge.last_stop
    assert bridge.run("run") is not None
    assert bridge.step() == 0


def test_a_guest_that_loops_forever_never_blocks_a_tick() -> None:
    bridge = EngineBridge(loop_machine())
    bridge.run("run")
    slowest = 0.0
    for _ in range(10):
        started = time.perf_counter()
        bridge.tick()
        slowest = max(slowest, time.perf_counter() - started)
    assert bridge.running and bridge.machine.steps > 1000
    assert slowest < 0.1
    bridge.pause()
    assert not bridge.running and bridge.recording.hi == bridge.machine.steps


def test_slow_speeds_record_every_step_live() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.speed_index = SPEEDS.index(100)
    bridge.run("run")
    for _ in range(5):
        bridge.tick()
    assert 0 < bridge.machine.steps <= 20
    assert bridge.recording.hi == bridge.machine.steps and bridge.recording.lo == 0


def test_window_stays_bounded() -> None:
    bridge = EngineBridge(loop_machine(), window=100)
    bridge.step(250)
    assert len(bridge.recording) == 100 and bridge.recording.hi == 250


def test_cumulative_changes_since_the_mark() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.step()
    assert bridge.toggle_cumulative()
    bridge.step(3)
    cpu = bridge.cpu_state()
    assert cpu.cumulative and cpu.since_step == 1
    assert {"r1", "idtr"} <= cpu.changed


def test_panel_states_for_the_page_fault() -> None:
    bridge = EngineBridge(demo_machine())
    bridge.run("page-fault")
    run_to_stop(bridge)
    mapper = bridge.mapper_state()
    assert mapper.page_fault is not None and mapper.page_fault.fault_address == 0x401000
    assert mapper.last_walk is not None and mapper.last_walk.pa is None
    assert mapper.frames is not None and "table" in mapper.frames.owners
    timeline = bridge.timeline_state()
    assert [t.label for t in timeline.transitions][-1] == "#PF"
    code = bridge.code_state()
    assert any(line.label == "trap_page_fault" for line in code.lines)
