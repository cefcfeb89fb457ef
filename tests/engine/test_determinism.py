"""Determinism, snapshot/restore, step/run equivalence and time travel, on random instruction streams."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.isa import OPCODES, SP, Form, encode
from engine.machine import Machine, MachineConfig
from engine.program import Program
from engine.timetravel import TimeMachine
from tests.engine.helpers import ins

CODE, HANDLER, TABLE = 0x1000, 0x3000, 0x3800
IMMEDIATES = (0, 1, 4, 7, 8, 0x10, 0x20, 0x1000, 0x1008, 0x2000, 0x5000, 0xFFFFFFFF, 0x80000000, 3)


def random_program(seed: int, length: int = 64) -> bytes:
    """Random but well-formed instructions (some fault, some jump, some touch ports and control registers)."""
    rng = random.Random(seed)
    out = b""
    for _ in range(length):
        spec = rng.choice(OPCODES)
        a, b = rng.randrange(9), rng.randrange(9)
        imm = rng.choice(IMMEDIATES)
        if spec.form in (Form.CR_READ, Form.CR_WRITE):
            imm = rng.choice((0, 2, 3, 4))
        if spec.form in (Form.MEM_LOAD, Form.MEM_STORE, Form.MEM) and rng.random() < 0.5:
            a = 0xF if spec.form is not Form.MEM_LOAD else a
            b = 0xF if spec.form is Form.MEM_LOAD else b
        if spec.form is Form.I and spec.mnemonic.startswith(("j", "call")):
            imm = CODE + 8 * rng.randrange(length)
        out += encode(spec.opcode, a, b, imm)
    return out


def machine_for(seed: int, *, timer: int = 13) -> Machine:
    machine = Machine(MachineConfig(memory_size=1 << 16, timer_interval=timer, seed=seed, tlb_policy="random"))
    machine.load_bare(Program("random", CODE, random_program(seed), CODE))
    # Every vector: skip the faulting instruction and return (r7 is scratch for the handler).
    handler = ins("LD", 7, SP, 8) + ins("ADDI", 7, 0, 8) + ins("ST", SP, 7, 8) + ins("IRET")
    machine.write_memory(HANDLER, handler)
    machine.write_memory(TABLE, HANDLER.to_bytes(4, "little") * 256)
    machine.cpu.idtr = TABLE
    machine.cpu.regs[SP] = 0x9000
    machine.cpu.ksp = 0xA000
    return machine


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 400))
def test_random_streams_only_fault_architecturally(seed: int, steps: int) -> None:
    machine = machine_for(seed)
    for _ in range(steps):  # any Python exception here fails the test
        result = machine.step()
        if result.halted:
            assert machine.halt_reason
            break


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 300))
def test_run_equals_repeated_step(seed: int, steps: int) -> None:
    fast, recorded = machine_for(seed), machine_for(seed)
    fast.run(steps)
    for _ in range(steps):
        recorded.step()
    assert fast.snapshot() == recorded.snapshot()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), before=st.integers(0, 200), after=st.integers(1, 200))
def test_restore_then_run_equals_run(seed: int, before: int, after: int) -> None:
    machine = machine_for(seed)
    machine.run(before)
    saved = machine.snapshot()
    machine.run(after)
    expected = machine.snapshot()
    machine.restore(saved)
    machine.run(after)
    assert machine.snapshot() == expected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), forward=st.integers(1, 600), back=st.integers(1, 600))
def test_step_back_then_forward_is_exact(seed: int, forward: int, back: int) -> None:
    travel = TimeMachine(machine_for(seed), checkpoint_every=37, max_checkpoints=8)
    travel.run(forward)
    here = travel.machine.snapshot()
    position = travel.steps
    travel.step_back(back)
    assert travel.steps == max(position - back, 0)
    travel.go_to(position)
    assert travel.machine.snapshot() == here


def test_same_seed_same_event_stream() -> None:
    def stream(seed: int) -> list[str]:
        machine = machine_for(seed)
        return [repr(e) for _ in range(300) for e in machine.step().events]
    assert stream(7) == stream(7)
    assert stream(7) != stream(8)


def test_go_to_reproduces_the_recorded_step() -> None:
    travel = TimeMachine(machine_for(3), checkpoint_every=10)
    recorded = {}
    for _ in range(50):
        result = travel.step()
        recorded.setdefault(result.step, result)  # a halted machine repeats its last step number
    position = travel.steps
    replayed = travel.step_back(20)
    assert replayed is not None and replayed.step == position - 21
    assert replayed.events == recorded[position - 21].events
