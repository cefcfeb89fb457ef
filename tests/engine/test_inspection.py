"""Engine services the app relies on: breakpoints in run, side-effect-free probes, iret counts,
program code maps and load addresses, cheap page-sharing snapshots."""

from __future__ import annotations

from engine.programs import assemble_shipped, boot_kernel_machine
from engine.systems import build_system


def test_run_stops_before_a_breakpoint_and_can_continue_past_it() -> None:
    machine = boot_kernel_machine(("hello",))
    target = assemble_shipped("kernel").symbols["handle_syscall"]
    machine.cpu.set_breakpoints(frozenset({target}))
    machine.run(1_000_000)
    assert machine.cpu.pc == target and not machine.halted
    before = machine.steps
    machine.run(1)  # the step we start on never stops: continuing works
    assert machine.steps == before + 1 and machine.cpu.pc != target


def test_breakpoints_do_not_change_the_outcome() -> None:
    plain, stopped = boot_kernel_machine(("hello",)), boot_kernel_machine(("hello",))
    plain.run(1_000_000)
    stopped.cpu.set_breakpoints(frozenset({assemble_shipped("kernel").symbols["trap_return"]}))
    while not stopped.halted:
        stopped.run(1_000_000)
    assert stopped.snapshot().memory == plain.snapshot().memory and stopped.console_output == plain.console_output


def test_probe_has_no_side_effects_and_agrees_with_translation() -> None:
    machine = boot_kernel_machine(("hello",))
    machine.cpu.set_breakpoints(frozenset({0x00400000}))  # hello's first instruction, in user mode
    machine.run(1_000_000)
    machine.cpu.set_breakpoints(frozenset())
    assert machine.cpu.paging and machine.cpu.ring == 3
    before = machine.snapshot()
    probed = machine.mmu.probe(0x00400000)
    assert machine.snapshot() == before
    assert probed is not None and probed == machine.mmu.translate(0x00400000, 0, False)
    assert machine.mmu.probe(0x7FFF0000) is None


def test_iret_counter_counts_native_and_emulated_returns() -> None:
    for mode in ("native", "trap"):
        system = build_system(mode, user_programs=("hello",))
        system.run(1_000_000)
        assert system.cpu.irets >= 3, mode


def test_programs_know_their_code_and_load_addresses() -> None:
    machine = boot_kernel_machine(("hello",))
    kernel, hello = machine.programs
    assert kernel.entry in kernel.code
    assert hello.symbols["message"] in hello.source_lines and hello.symbols["message"] not in hello.code
    assert machine.load_addresses[kernel.name] == kernel.origin
    assert machine.memory[machine.load_addresses[hello.name]:][:8] == hello.image[:8]


def test_snapshots_share_unchanged_pages() -> None:
    machine = boot_kernel_machine(("hello",))
    first = machine.snapshot()
    machine.run(50)
    second = machine.snapshot()
    shared = sum(a is b for a, b in zip(first.memory, second.memory, strict=True))
    assert shared > len(first.memory) * 0.9
