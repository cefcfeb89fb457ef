"""The shipped teaching kernel (engine/programs/kernel.s) running the sample user programs.

Everything here goes through the real assembler, loader, CPU and MMU: these are end-to-end tests of
the guest kernel. Runs use `Machine.run(n)` (no events); only the tests that look at traps step.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import pytest

from engine.asm import assemble, assemble_file, format_listing
from engine.asm_expr import tokenize
from engine.events import ControlRegisterWrite, Emulated, Event, HypercallMade, TlbFlush, TrapReturn, TrapTaken
from engine.isa import OPCODE_BY_NAME, OPCODE_BY_NUMBER, OPS_BY_MNEMONIC, PF_USER, PF_WRITE, InstrClass, Vector
from engine.machine import (
    BOOT_INFO_ADDRESS,
    BOOT_INFO_MAGIC,
    MODULE_BASE,
    MODULE_STRIDE,
    ConfigError,
    Machine,
    MachineConfig,
)
from engine.program import Program
from engine.programs import assemble_shipped, boot_kernel_machine, shipped_path
from engine.vmm import GuestSpec, Hypervisor

BUDGET = 2_000_000  # steps; every scenario here halts long before
USER_BASE = 0x0040_0000
HEAP_BASE = 0x0060_0000
# Frames the kernel's own address space takes at 1 MiB, by page_levels: the root table, tables on the
# way down, and the tables that map the kernel's 256 pages (2 levels: one table of 1024 entries;
# 3 levels: 4 tables of 64 entries under one level-1 table; 4 levels: 8 tables of 32 entries below
# one level-1 and one level-2 table).
KERNEL_FRAMES = {2: 2, 3: 6, 4: 11}

HELLO_COUNT_OUTPUT = """\
[kernel] booting: memory 1024 KiB, modules 2
[kernel] loaded hello as pid 1
[kernel] loaded count as pid 2
Hello from user space!
pid 2: count 0
[kernel] pid 1 exited with code 0
pid 2: count 1
pid 2: count 2
pid 2: count 3
pid 2: count 4
pid 2: count 5
pid 2: count 6
pid 2: count 7
pid 2: count 8
pid 2: count 9
[kernel] pid 2 exited with code 0
[kernel] all processes finished (2 exited, 0 killed); powering off
"""


def boot(*programs: str | Program, **config: object) -> Machine:
    return boot_kernel_machine(list(programs), MachineConfig(**config))  # type: ignore[arg-type]


def run_to_halt(machine: Machine) -> int:
    steps = machine.run(BUDGET)
    assert machine.halted, f"still running after {BUDGET} steps; console:\n{machine.console_output}"
    return steps


def kernel_word(machine: Machine, name: str) -> int:
    return machine.read_word(assemble_shipped("kernel").symbols[name])


def run_until_user_mode(machine: Machine) -> None:
    """Run (unrecorded) through boot until the first instruction of ring-3 code is next."""
    for _ in range(BUDGET):
        if machine.cpu.ring == 3:
            return
        machine.run(1)
    raise AssertionError("never reached ring 3")


def step_until(machine: Machine, predicate: Callable[[Event], bool],
               limit: int = 50_000) -> tuple[Event, list[Event]]:
    """Step with events until `predicate(event)` holds; return that event and every event so far."""
    seen: list[Event] = []
    for _ in range(limit):
        for event in machine.step().events:
            seen.append(event)
            if predicate(event):
                return event, seen
        assert not machine.halted, f"halted first: {machine.halt_reason}\n{machine.console_output}"
    raise AssertionError("event not seen")


def is_trap(vector: int) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, TrapTaken) and event.vector == vector


def is_iret(event: Event) -> bool:
    return isinstance(event, TrapReturn)


def user_program(name: str, body: str) -> Program:
    """Assemble a small user program (SYS_* constants predefined), named like a boot module."""
    header = "        .org 0x00400000\nSYS_WRITE = 1\nSYS_GETPID = 2\nSYS_YIELD = 3\nSYS_EXIT = 4\nSYS_SBRK = 5\n"
    return assemble(header + body, f"{name}.s")


# ------------------------------------------------------------------------------------ boot and exit
def test_hello_and_count_exact_output_and_clean_power_off() -> None:
    machine = boot("hello", "count")
    run_to_halt(machine)
    assert machine.console_output == HELLO_COUNT_OUTPUT
    assert machine.halt_reason == "power off"
    assert machine.exit_code == 0
    assert machine.cpu.ring == 0


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_every_frame_comes_back_after_all_processes_exit(levels: int) -> None:
    machine = boot("hello", "count", "pagefault", "privileged", page_levels=levels)
    run_to_halt(machine)
    assert "(3 exited, 1 killed)" in machine.console_output
    assert kernel_word(machine, "free_frames") == kernel_word(machine, "boot_free_frames") - KERNEL_FRAMES[levels]


def test_kernel_fits_below_the_module_area() -> None:
    kernel = assemble_shipped("kernel")
    assert kernel.origin == 0x1000 and kernel.entry == kernel.symbols["_start"] == 0x1000
    assert kernel.end <= 0x40000


def test_no_modules_powers_off_at_once() -> None:
    machine = boot()
    run_to_halt(machine)
    assert machine.console_output.endswith("(0 exited, 0 killed); powering off\n")
    assert machine.exit_code == 0


def test_more_modules_than_process_slots() -> None:
    machine = boot(*["hello"] * 9)
    run_to_halt(machine)
    out = machine.console_output
    assert "[kernel] only 8 processes: extra modules ignored\n" in out
    assert out.count("Hello from user space!\n") == 8
    assert "(8 exited, 0 killed)" in out and machine.exit_code == 0


# ------------------------------------------------------------------------------------ system calls
def test_syscall_traps_from_ring_3_to_ring_0_and_irets_back() -> None:
    machine = boot("hello")
    run_until_user_mode(machine)
    assert machine.cpu.pc == USER_BASE
    trap, _ = step_until(machine, lambda e: isinstance(e, TrapTaken))
    assert isinstance(trap, TrapTaken)
    kernel = assemble_shipped("kernel")
    hello = assemble_shipped("hello")
    assert trap.vector == Vector.SYSCALL
    assert (trap.from_ring, trap.to_ring) == (3, 0)
    assert trap.pc == USER_BASE + 3 * 8  # the syscall after three movs
    assert trap.return_pc == trap.pc + 8
    assert trap.handler == kernel.symbols["trap_syscall"]
    assert machine.cpu.ring == 0
    assert machine.cpu.regs[8] == machine.cpu.ksp - 20  # the CPU pushed 5 words on the kernel stack
    assert machine.cpu.pc == trap.handler
    back, _ = step_until(machine, is_iret)
    assert isinstance(back, TrapReturn)
    assert (back.to_ring, back.pc) == (3, trap.return_pc)
    assert machine.cpu.ring == 3
    assert machine.cpu.regs[0] == hello.symbols["message_end"] - hello.symbols["message"]  # write's result
    assert machine.console_output.endswith("Hello from user space!\n")


def test_syscall_results_and_rejected_buffers() -> None:
    # The program checks every result itself; its exit code is the number of the first wrong one.
    program = user_program("checks", """
        mov r0, SYS_WRITE           ; 1: kernel memory: refused
        mov r1, 0x1000
        mov r2, 16
        syscall
        st [results], r0
        mov r0, SYS_WRITE           ; 2: user range but nothing mapped there: refused (fixup)
        mov r1, 0x00500000
        mov r2, 4
        syscall
        st [results + 4], r0
        mov r0, SYS_WRITE           ; 3: wraps around the address space: refused
        mov r1, 0xfffffff0
        mov r2, 0x20
        syscall
        st [results + 8], r0
        mov r0, 99                  ; 4: no such system call
        syscall
        st [results + 12], r0
        mov r0, SYS_GETPID          ; 5
        syscall
        st [results + 16], r0
        mov r0, SYS_SBRK            ; 6: sbrk(0) = the heap start
        mov r1, 0
        syscall
        st [results + 20], r0
        mov r0, SYS_SBRK            ; 7: more than the heap can hold
        mov r1, 0x00200000
        syscall
        st [results + 24], r0
        mov r0, SYS_SBRK            ; 8: below the heap start
        mov r1, -4
        syscall
        st [results + 28], r0
        mov r0, SYS_SBRK            ; 9: a heap page nobody touched; the kernel's read of the
        mov r1, 4096                ;    buffer is the first touch, served like a user fault
        syscall
        mov r1, r0
        mov r0, SYS_WRITE
        mov r2, 3
        syscall
        st [results + 32], r0
        mov r0, SYS_YIELD           ; 10
        syscall
        st [results + 36], r0
        brk                         ; reported, not fatal
        mov r1, 0
check:
        ld r2, [r1 + results]
        ld r3, [r1 + expected]
        add r1, 4
        cmp r2, r3
        jnz done
        cmp r1, 40
        jb check
        mov r1, 0
done:
        shr r1, 2
        mov r0, SYS_EXIT
        syscall
        .align 4
expected:
        .word -1, -1, -1, -1, 1, 0x00600000, -1, -1, 3, 0
results:
        .space 40
""")
    machine = boot(program)
    run_to_halt(machine)
    out = machine.console_output
    brk_at = program.symbols["check"] - 16
    assert f"[kernel] pid 1 breakpoint at {brk_at:#010x}\n" in out
    assert "[kernel] pid 1 exited with code 0\n" in out
    assert "\0\0\0" in out  # the three zero bytes of the demand-zero heap page
    assert kernel_word(machine, "demand_zero_pages") == 1


# ------------------------------------------------------------------------------------ page faults
def test_demand_zero_page_fault_is_served_and_the_process_survives() -> None:
    machine = boot("pagefault")
    program = assemble_shipped("pagefault")
    run_until_user_mode(machine)
    fault, _ = step_until(machine, is_trap(Vector.PAGE_FAULT))
    assert isinstance(fault, TrapTaken)
    assert fault.pc == program.symbols["first_touch"]
    assert fault.from_ring == 3
    assert fault.fault_address == HEAP_BASE + 4096  # sbrk returned HEAP_BASE; the read is 4096 on
    assert fault.error_code == PF_USER  # a read, page not present, from user mode
    assert machine.cpu.cr2 == HEAP_BASE + 4096
    assert fault.handler == assemble_shipped("kernel").symbols["trap_page_fault"]
    back, _ = step_until(machine, is_iret)
    assert isinstance(back, TrapReturn)
    assert (back.to_ring, back.pc) == (3, fault.pc)  # the faulting load runs again ...
    # (A timer tick that came due during the handler may be delivered first; the load then retries.)
    retry = machine.step()
    while retry.pc != fault.pc or machine.cpu.ring != 3:
        retry = machine.step()
    assert not any(isinstance(e, TrapTaken) for e in retry.events)  # ... and succeeds
    assert machine.cpu.regs[0] == 0  # demand-zero
    second, _ = step_until(machine, is_trap(Vector.PAGE_FAULT))
    assert isinstance(second, TrapTaken)
    assert second.pc == program.symbols["second_touch"]
    assert (second.fault_address, second.error_code) == (HEAP_BASE, PF_USER | PF_WRITE)
    run_to_halt(machine)
    assert "pagefault: heap pages arrived on first touch, zero-filled\n" in machine.console_output
    assert "[kernel] pid 1 exited with code 0\n" in machine.console_output
    assert "killed" not in machine.console_output.replace("0 killed", "")
    assert kernel_word(machine, "demand_zero_pages") == 2


def test_stack_grows_on_demand_and_overflow_kills() -> None:
    deep = user_program("deep", """
        mov r1, 3000                ; 12000 bytes of pushes: the mapped top page and two more
push_more:
        push r1
        sub r1, 1
        jnz push_more
        mov r0, SYS_EXIT
        mov r1, 0
        syscall
""")
    runaway = user_program("runaway", """
forever:
        push r1
        jmp forever
""")
    machine = boot(deep, runaway)
    run_to_halt(machine)
    out = machine.console_output
    assert "[kernel] pid 1 exited with code 0\n" in out
    assert re.search(r"\[kernel\] pid 2 killed: page fault at 0x00400000 \(address 0x007efffc\)\n", out)
    assert kernel_word(machine, "demand_zero_pages") == 2 + 15  # runaway: the whole 64 KiB but the top page


def test_wild_pointers_kill_with_the_faulting_address() -> None:
    unmapped = user_program("unmapped", "        mov r1, 0x00500010\n        ld r0, [r1]\n")
    kernel_peek = user_program("peek", "        ld r0, [0x1000]\n")  # kernel memory: U=0
    past_break = user_program("pastbrk", "        mov r1, 0x00600000\n        st [r1], r1\n")
    machine = boot(unmapped, kernel_peek, past_break)
    run_to_halt(machine)
    out = machine.console_output
    assert "[kernel] pid 1 killed: page fault at 0x00400008 (address 0x00500010)\n" in out
    assert "[kernel] pid 2 killed: page fault at 0x00400000 (address 0x00001000)\n" in out
    assert "[kernel] pid 3 killed: page fault at 0x00400008 (address 0x00600000)\n" in out
    assert out.endswith("(0 exited, 3 killed); powering off\n") and machine.exit_code == 0


# ------------------------------------------------------------------------------------ faults that kill
def test_privileged_instruction_kills_only_that_process() -> None:
    machine = boot("privileged", "hello")
    run_to_halt(machine)
    cli_at = assemble_shipped("privileged").symbols["try_cli"]
    out = machine.console_output
    assert f"[kernel] pid 1 killed: privileged instruction at {cli_at:#010x}\n" in out
    assert "privileged: executing cli in ring 3\n" in out
    assert "cli did not fault" not in out
    assert "Hello from user space!\n[kernel] pid 2 exited with code 0\n" in out
    assert out.endswith("[kernel] all processes finished (1 exited, 1 killed); powering off\n")
    assert machine.exit_code == 0
    assert machine.cpu.trap_counts[Vector.PRIVILEGED] == 1


@pytest.mark.parametrize(("body", "message"), [
    ("        mov r1, 5\n        div r1, 0\n", "divide by zero at 0x00400008"),
    ("        hypercall 1\n", "invalid opcode at 0x00400000"),
    ("        mov r1, 0x00400002\n        ld r0, [r1]\n", "misaligned access at 0x00400008"),
    ("        nop\n        out 0xf4, r0\n", "privileged instruction at 0x00400008"),
])
def test_user_faults_kill_the_process(body: str, message: str) -> None:
    machine = boot(user_program("faulty", body), "hello")
    run_to_halt(machine)
    assert f"[kernel] pid 1 killed: {message}\n" in machine.console_output
    assert "[kernel] pid 2 exited with code 0\n" in machine.console_output
    assert machine.exit_code == 0


# ------------------------------------------------------------------------------------ scheduling
def _lines_of(output: str) -> list[tuple[int, int]]:
    return [(int(pid), int(n)) for pid, n in re.findall(r"^pid (\d): count (\d)$", output, re.M)]


def test_timer_preemption_interleaves_two_processes() -> None:
    machine = boot("count", "count")
    run_to_halt(machine)
    lines = _lines_of(machine.console_output)
    assert [n for pid, n in lines if pid == 1] == list(range(10))
    assert [n for pid, n in lines if pid == 2] == list(range(10))
    pids = [pid for pid, _ in lines]
    switches = sum(1 for a, b in zip(pids, pids[1:], strict=False) if a != b)
    assert switches >= 5  # neither ran to completion first: the timer took the CPU away
    assert machine.cpu.trap_counts[Vector.TIMER] > 10
    assert "(2 exited, 0 killed)" in machine.console_output


def test_without_the_timer_a_spinning_process_is_never_preempted() -> None:
    # count never yields: switch the timer off once the kernel is in user mode, and nothing interleaves.
    machine = boot("count", "count")
    run_until_user_mode(machine)
    machine.timer.interval = machine.timer.countdown = 0
    run_to_halt(machine)
    assert [pid for pid, _ in _lines_of(machine.console_output)] == [1] * 10 + [2] * 10


def test_yield_hands_the_cpu_to_the_other_process() -> None:
    machine = boot("yielder", "yielder")
    run_to_halt(machine)
    turns = re.findall(r"^pid (\d): turn (\d)$", machine.console_output, re.M)
    assert [t for p, t in turns if p == "1"] == list("01234")
    assert [t for p, t in turns if p == "2"] == list("01234")
    assert machine.exit_code == 0


def test_a_switch_loads_the_next_address_space_and_kernel_stack() -> None:
    machine = boot("count", "count")
    run_until_user_mode(machine)
    first_cr3, first_ksp = machine.cpu.cr3, machine.cpu.ksp
    assert first_cr3 & 0xFFF == 1  # pid 1 is the address-space id
    step_until(machine, is_trap(Vector.TIMER))
    _, events = step_until(machine, is_iret)
    writes = {e.register: e.new for e in events if isinstance(e, ControlRegisterWrite)}
    assert writes["cr3"] == machine.cpu.cr3 != first_cr3 and machine.cpu.cr3 & 0xFFF == 2
    assert writes["ksp"] == machine.cpu.ksp != first_ksp
    assert any(isinstance(e, TlbFlush) and e.scope == "cr3" for e in events)  # untagged TLB: flushed
    assert (machine.cpu.ring, machine.cpu.pc) == (3, USER_BASE)  # pid 2 starts at its first instruction


# ------------------------------------------------------------------------------------ configurations
@pytest.mark.parametrize("config", [
    {"tlb_tagged": True},
    {"tlb_entries": 1, "tlb_policy": "random", "seed": 3},
    {"memory_size": 4 << 20},
    {"memory_size": 8 << 20, "tlb_policy": "fifo"},
])
def test_same_output_under_other_machine_configurations(config: dict[str, object]) -> None:
    machine = boot("hello", "count", **config)
    run_to_halt(machine)
    expected = HELLO_COUNT_OUTPUT
    if "memory_size" in config:
        expected = expected.replace("1024 KiB", f"{int(config['memory_size']) >> 10} KiB")  # type: ignore[call-overload]
    assert machine.console_output == expected
    assert machine.exit_code == 0


def test_console_input_is_echoed_by_the_device_handler() -> None:
    machine = boot("hello", console_input="hi!")
    run_to_halt(machine)
    assert "hi!" in machine.console_output
    assert machine.cpu.trap_counts[Vector.DEVICE] == 1


def test_deterministic_output_and_step_count() -> None:
    runs = []
    for _ in range(2):
        machine = boot("count", "pagefault", "privileged", "count")
        steps = run_to_halt(machine)
        runs.append((machine.console_output, steps, machine.cpu.cycles, bytes(machine.memory)))
    assert runs[0] == runs[1]


# ------------------------------------------------------------------------------------ boot info v2, page levels
def test_boot_info_block_layout() -> None:
    hello, count = assemble_shipped("hello"), assemble_shipped("count")
    machine = boot(hello, count, page_levels=3)

    def word(offset: int) -> int:
        return machine.read_word(BOOT_INFO_ADDRESS + offset)

    assert [word(0), word(4), word(8), word(12)] == [BOOT_INFO_MAGIC, 1 << 20, 2, 3]
    for index, program in enumerate((hello, count)):
        record = 16 + 28 * index
        assert [word(record), word(record + 4), word(record + 8)] == [
            MODULE_BASE + MODULE_STRIDE * index, len(program.image), program.entry]
        name = bytes(machine.memory[BOOT_INFO_ADDRESS + record + 12:BOOT_INFO_ADDRESS + record + 28])
        assert name == Path(program.name).stem.encode().ljust(16, b"\0")


def test_boot_info_must_not_overlap_the_kernel() -> None:
    low_kernel = assemble("        .org 0x560\n_start: hlt\n", "low.s")
    machine = Machine()
    machine.load_kernel_image(low_kernel, [assemble_shipped("hello")], base=0, memory_size=1 << 20)  # ends at 0x52c
    with pytest.raises(ConfigError, match="overlaps the boot-info block"):
        Machine().load_kernel_image(low_kernel, [assemble_shipped("hello")] * 3, base=0, memory_size=1 << 20)


def test_a_process_starts_at_its_entry_point() -> None:
    program = user_program("entry", """
message:
        .ascii "started at the entry point\\n"
message_end:
        .align 8
        .word 0xffffffff, 0xffffffff      ; not code: executing it would be an invalid opcode
_start:
        mov r0, SYS_WRITE
        mov r1, message
        mov r2, message_end - message
        syscall
        mov r0, SYS_EXIT
        mov r1, 7
        syscall
""")
    assert program.entry == program.symbols["_start"] != USER_BASE
    machine = boot(program)
    run_until_user_mode(machine)
    assert machine.cpu.pc == program.entry
    run_to_halt(machine)
    assert "started at the entry point\n[kernel] pid 1 exited with code 7\n" in machine.console_output


@pytest.mark.parametrize("levels", [2, 3, 4])
@pytest.mark.parametrize("memory", [1 << 20, 4 << 20])
def test_same_output_with_two_three_and_four_page_levels(levels: int, memory: int) -> None:
    machine = boot("hello", "count", page_levels=levels, memory_size=memory)
    run_to_halt(machine)
    assert machine.console_output == HELLO_COUNT_OUTPUT.replace("1024 KiB", f"{memory >> 10} KiB")
    assert machine.exit_code == 0


@pytest.mark.parametrize("levels", [3, 4])
def test_faults_demand_paging_and_protection_with_more_levels(levels: int) -> None:
    kernel_peek = user_program("peek", "        ld r0, [0x1000]\n")  # kernel memory: U=0 at every level
    machine = boot("pagefault", kernel_peek, "privileged", page_levels=levels)
    run_to_halt(machine)
    out = machine.console_output
    assert "pagefault: heap pages arrived on first touch, zero-filled\n" in out
    assert "[kernel] pid 2 killed: page fault at 0x00400000 (address 0x00001000)\n" in out
    assert "[kernel] pid 3 killed: privileged instruction" in out
    assert kernel_word(machine, "demand_zero_pages") == 2


def test_a_process_shares_the_kernels_tables_below_its_own_upper_levels() -> None:
    machine = boot("hello", page_levels=3)
    run_until_user_mode(machine)
    kernel_root = kernel_word(machine, "kernel_cr3")
    own_root = machine.cpu.cr3 & 0xFFFFF000
    own_level1 = machine.read_word(own_root) & 0xFFFFF000
    kernel_level1 = machine.read_word(kernel_root) & 0xFFFFF000
    assert own_level1 != kernel_level1 and machine.read_word(own_root) & 0x7 == 0x7  # its own, user
    for index in range(16):  # entries 0-15 map the kernel's 4 MiB: the kernel's tables, no U bit
        assert machine.read_word(own_level1 + 4 * index) == machine.read_word(kernel_level1 + 4 * index)
    assert machine.read_word(kernel_level1) & 0x7 == 0x3


def test_one_page_level_is_refused_with_a_clear_message() -> None:
    machine = boot("hello", "count", page_levels=1, memory_size=16 << 20)
    run_to_halt(machine)
    assert machine.console_output == (
        "[kernel] cannot run with page_levels 1: only 2, 3 and 4 are supported (one level needs a 4 MiB "
        "table per address space, more than the kernel maps); powering off\n")
    assert (machine.halt_reason, machine.exit_code) == ("power off", 2)


def test_a_module_larger_than_a_page_is_copied_page_by_page() -> None:
    big = user_program("big", """
        ld r1, [far_word]           ; data in the third page of the image
        cmp r1, 0x600d
        jnz wrong
        call far_code               ; code in the third page too
        mov r0, SYS_EXIT
        mov r1, 0
        syscall
wrong:
        mov r0, SYS_EXIT
        mov r1, 1
        syscall
        .space 9000, 0x5a
        .align 4
far_word:
        .word 0x600d
far_code:
        ret
""")
    assert len(big.image) > 2 * 4096
    machine = boot(big)
    run_to_halt(machine)
    assert "[kernel] pid 1 exited with code 0\n" in machine.console_output


# ------------------------------------------------------------------------------------ the paravirtual build
PARAVIRT = {"PARAVIRT": 1}


@lru_cache(maxsize=1)
def paravirtual_kernel() -> Program:
    return assemble_file(shipped_path("kernel"), defines=PARAVIRT)


def instruction_classes(program: Program) -> dict[int, InstrClass]:
    """The class of every instruction in `program`, found through its source lines (data is skipped)."""
    lines = program.source.splitlines()
    classes: dict[int, InstrClass] = {}
    for address, line in program.source_lines.items():
        tokens = tokenize(lines[line - 1])
        i = 0
        while tokens[i].kind == "ident" and tokens[i + 1].text == ":":
            i += 2
        if tokens[i].kind == "ident" and tokens[i].text.lower() in OPS_BY_MNEMONIC:
            spec = OPCODE_BY_NUMBER[program.image[address - program.origin]]
            assert spec.mnemonic == tokens[i].text.lower()
            classes[address] = spec.klass
    return classes


def pv_hypervisor(*programs: str | Program, **config: object) -> Hypervisor:
    modules = tuple(assemble_shipped(p) if isinstance(p, str) else p for p in programs)
    return Hypervisor("pv", [GuestSpec(paravirtual_kernel(), modules)],
                      config=MachineConfig(**config))  # type: ignore[arg-type]


def build_lines(source: str, *, paravirt: bool) -> list[str]:
    """The source lines one build assembles (the kernel's conditionals all test PARAVIRT)."""
    taken: list[bool] = []
    lines = []
    for line in source.splitlines():
        words = line.split(";")[0].split()
        directive = words[0].lower() if words else ""
        if directive in (".ifdef", ".ifndef"):
            assert words[1] == "PARAVIRT"
            taken.append(paravirt == (directive == ".ifdef"))
        elif directive == ".else":
            taken[-1] = not taken[-1]
        elif directive == ".endif":
            taken.pop()
        elif all(taken):
            lines.append(line)
    return lines


def test_paravirtual_build_assembles_and_lists_with_its_define() -> None:
    native, paravirt = assemble_shipped("kernel"), paravirtual_kernel()
    assert paravirt.end <= 0x40000 and paravirt.entry == paravirt.symbols["_start"]
    assert "pv_console_out" in paravirt.symbols and "pv_console_out" not in native.symbols
    assert format_listing(paravirt).splitlines()[0].endswith(", defines PARAVIRT=1")
    assert assemble_file(shipped_path("kernel"), defines={}).image == native.image


def test_paravirtual_build_has_no_privileged_or_sensitive_instruction() -> None:
    native = instruction_classes(assemble_shipped("kernel"))
    paravirt = instruction_classes(paravirtual_kernel())
    assert sum(1 for k in native.values() if k is InstrClass.PRIVILEGED) >= 20  # the check can fail
    assert len(paravirt) > 500 and set(paravirt.values()) == {InstrClass.INNOCUOUS}
    badges = {line[35:38] for line in format_listing(paravirtual_kernel()).splitlines()[1:]}
    assert not badges & {"PRV", "SEN"}
    hypercall = OPCODE_BY_NAME["HYPERCALL"].opcode
    assert hypercall not in {assemble_shipped("kernel").image[a - 0x1000] for a in native}


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_paravirtual_kernel_prints_what_the_native_kernel_prints(levels: int) -> None:
    hypervisor = pv_hypervisor("hello", "count", page_levels=levels)
    hypervisor.run(BUDGET)
    assert hypervisor.halted and hypervisor.current.stop_reason == "power off"
    assert hypervisor.console_output == HELLO_COUNT_OUTPUT
    assert hypervisor.exit_code == 0
    counters = hypervisor.counters()
    assert counters["hypercalls"] > 100
    assert counters.get("emulated", 0) == counters.get("trapped_instructions", 0) == 0  # nothing to emulate


def test_paravirtual_kernel_runs_every_sample_like_the_native_one() -> None:
    # The PV kernel's code paths are longer (hypercalls, saved registers), and the timer counts
    # instructions, so processes interleave differently; each process's own lines are the same.
    programs = ("hello", "count", "pagefault", "privileged", "yielder")
    hypervisor = pv_hypervisor(*programs)
    hypervisor.run(BUDGET)
    native = boot(*programs)
    run_to_halt(native)
    assert sorted(hypervisor.console_output.splitlines()) == sorted(native.console_output.splitlines())
    assert hypervisor.console_output.endswith("(4 exited, 1 killed); powering off\n")


def test_paravirtual_page_table_writes_go_through_mmu_update_in_batches() -> None:
    hypervisor = pv_hypervisor("pagefault")
    calls: list[HypercallMade] = []
    for _ in range(BUDGET):
        result = hypervisor.step()
        calls += [e for e in result.events if isinstance(e, HypercallMade)]
        assert not any(isinstance(e, Emulated) for e in result.events)
        if hypervisor.halted:
            break
    assert "heap pages arrived on first touch" in hypervisor.console_output
    names = {call.name for call in calls}
    # io_in: the balloon driver's probe at boot (no balloon device here: it reads all ones)
    assert names == {"set_trap_table", "set_cr3", "set_cr0", "stack_switch", "iret", "io_out", "io_in",
                     "read_cr2", "read_cr3", "mmu_update"}
    batches = [call.args[1] for call in calls if call.name == "mmu_update"]
    assert all(call.result == call.args[1] for call in calls if call.name == "mmu_update")
    assert max(batches) == 32  # the kernel's identity map, 32 entries per hypercall
    faults = [i for i, call in enumerate(calls) if call.name == "read_cr2"]
    assert len(faults) == 2  # two demand-zero faults, each mapped by one mmu_update before iret
    for index in faults:
        after = [call.name for call in calls[index:]]
        assert after.index("mmu_update") < after.index("iret")


def test_paravirtual_kernel_refuses_one_page_level_too() -> None:
    hypervisor = pv_hypervisor("hello", page_levels=1)
    hypervisor.run(BUDGET)
    assert hypervisor.console_output.startswith("[kernel] cannot run with page_levels 1")
    assert hypervisor.exit_code == 2


def test_the_size_of_the_port_quoted_in_the_docs() -> None:
    source = shipped_path("kernel").read_text()
    native, paravirt = build_lines(source, paravirt=False), build_lines(source, paravirt=True)
    changed = [line for line in difflib.unified_diff(native, paravirt, lineterm="", n=0)
               if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    added = sum(1 for line in changed if line.startswith("+"))
    removed = len(changed) - added
    docs = (Path(__file__).parents[2] / "docs" / "kernel.md").read_text()
    assert f"{removed} lines removed and {added} added" in " ".join(docs.split())
    assert f"{len(native):,} lines of the native build" in " ".join(docs.split())
