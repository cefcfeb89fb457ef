"""The virtualization view models without Textual: lanes, virtual CPU, VMM panel state, mode rebuilds, compare."""

from __future__ import annotations

from typing import cast

import pytest

from engine.events import Event, VmExit
from engine.machine import Machine
from engine.systems import build_system
from engine.vmm import Hypervisor
from tests.app.demo_machine import demo_machine
from tests.app.vmm_systems import DEMO_SYSCALL_STEP, demo_system, popf_program
from vizvm.compare_model import CompareSession
from vizvm.history import Recording, handler_depth_change
from vizvm.modes import guest_setup, rebuild
from vizvm.viewmodel import machine_title
from vizvm.vmm_state import vmm_state
from vizvm.vmm_view import VMM_LANE, first_step, full_reason, short_reason, timeline_state, vcpu_state


def recorded(mode: str, steps: int) -> tuple[object, Recording]:
    """The demo under `mode` after `steps` recorded steps."""
    system = demo_system(mode)
    recording = Recording(0)
    for _ in range(steps):
        recording.append(system.step())
    return system, recording


@pytest.mark.parametrize("mode", ["trap", "bt", "pv"])
def test_a_system_call_makes_four_transitions_under_a_software_vmm(mode: str) -> None:
    system, recording = recorded(mode, DEMO_SYSCALL_STEP + 5)  # the syscall, its handler and its iret
    state = timeline_state(system, recording)
    after = [(t.kind, t.label, t.from_ring, t.to_ring) for t in state.transitions if t.step >= DEMO_SYSCALL_STEP]
    syscall = after.index(("vm-exit", "system call", 3, VMM_LANE))
    assert after[syscall + 1] == ("vm-entry", "reflect syscall", VMM_LANE, 0)
    assert ("vm-entry", "resume", VMM_LANE, 3) in after[syscall + 2:]  # back to user after the emulated iret
    assert {0, 3} <= {span.ring for span in state.spans} <= {0, 3, VMM_LANE}  # bt: a step may start translating


def test_hardware_assist_handles_the_system_call_in_the_guest() -> None:
    system, recording = recorded("hw", DEMO_SYSCALL_STEP + 5)
    kinds = [(t.kind, t.label, t.from_ring, t.to_ring) for t in timeline_state(system, recording).transitions]
    assert ("trap", "syscall", 3, 0) in kinds  # through the guest's own trap table, no exit
    assert ("vm-exit", "I/O 0x10", 0, VMM_LANE) in kinds


def test_native_timeline_keeps_its_ring_lanes() -> None:
    machine = demo_machine()
    recording = Recording(0)
    for _ in range(DEMO_SYSCALL_STEP + 1):
        recording.append(machine.step())
    state = timeline_state(machine, recording)
    assert state.lanes == {} and ("trap", "syscall") in [(t.kind, t.label) for t in state.transitions]
    assert vcpu_state(machine) is None and vmm_state(machine, recording).mode == "native"


def test_short_and_full_reasons() -> None:
    assert short_reason("trap", "privileged instruction out") == "out"
    assert short_reason("hypercall", "hypercall 7") == "io_out"
    assert short_reason("vm-exit", "I/O instruction (port 0x10)") == "I/O 0x10"
    assert short_reason("vm-exit", "exception: page fault") == "#PF"
    assert short_reason("trap", "timer interrupt") == "timer"
    assert full_reason("hypercall 11") == "hypercall 11 mmu_update"


def test_step_out_counts_reflections_and_emulated_irets() -> None:
    system, recording = recorded("trap", DEMO_SYSCALL_STEP + 5)
    depth = 0
    for result in recording.results[DEMO_SYSCALL_STEP:]:
        depth += handler_depth_change(result)
    assert depth == 0  # reflected into the handler, then its iret emulated


def test_rebuild_keeps_the_guest_and_its_memory_size() -> None:
    system = build_system("trap", user_programs=("hello",))
    assert [p.name.rsplit("/", 1)[-1] for p in guest_setup(system).user_programs] == ["hello.s"]
    native = rebuild(system, "native")
    assert not isinstance(native, Hypervisor) and native.config.memory_size == 1 << 20
    assert machine_title(cast(Machine, rebuild(native, "hw"))) == "kernel + hello · hardware assist"
    bare = rebuild(demo_machine(), "pv")
    assert isinstance(bare, Hypervisor) and guest_setup(bare).bare is not None
    with pytest.raises(ValueError, match="mode must be one of"):
        rebuild(system, "vt-x")


def test_first_step_finds_the_kernels_first_system_call_exit() -> None:
    def syscall(event: Event) -> bool:
        return isinstance(event, VmExit) and event.reason == "system call"

    step = first_step(build_system("trap", user_programs=("hello",)), syscall, "reflected")
    assert step is not None and step > 10_000
    assert first_step(build_system("hw", user_programs=("hello",)), syscall, "vmm_entries") is None


def test_compare_session_finds_the_popf_divergence_and_moves_every_mode() -> None:
    session = CompareSession(lambda mode: build_system(mode, bare=popf_program()))
    first = session.divergence()
    assert first is not None and (first.text, first.step) == ("popf", 6)
    assert session.surveys["trap"].divergence == "register r2 differs (0x0 vs 0x9)"  # smsw saw the real ring
    assert session.surveys["bt"].divergence is None and session.surveys["hw"].divergence is None
    session.go_to(first.step + 1)
    columns = {column.mode: column for column in session.columns()}
    assert {column.steps for column in columns.values()} == {7}
    assert columns["trap"].diverged and not columns["bt"].diverged
    assert columns["trap"].figure("fidelity_violations") == 1
    assert columns["trap"].recent[-1][1][-1].startswith("✘")
    session.go_to(10_000)
    assert session.cursor == session.end == 12
