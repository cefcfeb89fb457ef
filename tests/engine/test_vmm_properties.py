"""Property tests over generated guest-kernel programs: equivalence, fidelity detection, isolation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.asm import assemble
from engine.events import FidelityViolation
from engine.machine import MachineConfig
from engine.systems import build_system, guest_view
from engine.vmm import VMM_RESERVED, Hypervisor

REG = st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6"])
VALUE = st.sampled_from(["0", "1", "7", "0x200", "0xffffffff", "0x5000", "0x4ff0", "123456"])
INNOCUOUS = st.one_of(
    st.builds(lambda r, s: f"add {r}, {s}", REG, REG),
    st.builds(lambda r, v: f"mov {r}, {v}", REG, VALUE),
    st.builds(lambda r, v: f"sub {r}, {v}", REG, VALUE),
    st.builds(lambda r, s: f"xor {r}, {s}", REG, REG),
    st.builds(lambda r, s: f"mul {r}, {s}", REG, REG),
    st.builds(lambda r, k: f"st [0x5000+{4 * k}], {r}", REG, st.integers(0, 15)),
    st.builds(lambda r, k: f"ld {r}, [0x5000+{4 * k}]", REG, st.integers(0, 15)),
    st.builds(lambda r: f"push {r}", REG),
    st.builds(lambda r: f"pop {r}", REG),
    st.builds(lambda r: f"div {r}, r0", REG),  # r0 is 0: a divide fault the handler skips
)
PRIVILEGED = st.one_of(
    st.just("cli"), st.just("sti"), st.just("tlbflush"),
    st.builds(lambda r: f"out 0x10, {r}", REG),
    st.builds(lambda r, p: f"in {r}, {p}", REG, st.sampled_from(["0x11", "0x21", "0x99"])),
    st.builds(lambda r: f"movcr cr2, {r}", REG), st.builds(lambda r: f"movrc {r}, cr2", REG),
    st.builds(lambda r: f"movcr ksp, {r}", REG), st.builds(lambda r: f"movrc {r}, ksp", REG),
    st.builds(lambda r: f"invlpg [{r}]", REG),
)
SENSITIVE = st.one_of(st.just("pushf"), st.just("popf"), st.builds(lambda r: f"smsw {r}", REG),
                      st.builds(lambda r: f"sidt {r}", REG))

HANDLERS = """
skip_fault:            ; faults: resume after the faulting instruction (r7 is the handler's scratch)
    ld r7, [sp+8]
    add r7, 8
    st [sp+8], r7
    iret
interrupt:
    iret
.org 0x3000
trap_table:
"""


def program(body: list[str], timer: int) -> str:
    table = "\n".join(f"    .word {'interrupt' if v in (32, 33) else 'skip_fault'}" for v in range(256))
    return (".org 0x1000\n_start:\n    mov sp, 0x8000\n    mov r0, 0\n    mov r1, trap_table\n    lidt r1\n"
            f"    mov r1, {timer}\n    out 0x20, r1\n    mov r1, 0\n" + "\n".join(f"    {line}" for line in body)
            + "\n    mov r0, 0\n    out 0xf4, r0\n" + HANDLERS + table + "\n")


def run(mode: str, source: str, record: bool = False) -> tuple[object, list[FidelityViolation]]:
    system = build_system(mode, bare=assemble(source, "generated.s"), config=MachineConfig(memory_size=1 << 16))
    fidelity: list[FidelityViolation] = []
    if record:
        while not system.halted and system.steps < 20_000:
            fidelity += [e for e in system.step().events if isinstance(e, FidelityViolation)]
    else:
        system.run(20_000)
    assert system.halted, f"{mode}: generated program did not finish"
    return system, fidelity


@settings(max_examples=25, deadline=None)
@given(body=st.lists(st.one_of(INNOCUOUS, PRIVILEGED), min_size=1, max_size=40), timer=st.integers(3, 40))
def test_without_sensitive_instructions_every_mode_equals_native(body: list[str], timer: int) -> None:
    source = program(body, timer)
    native = guest_view(run("native", source)[0])  # type: ignore[arg-type]
    for mode in ("trap", "bt", "hw"):
        system, _ = run(mode, source)
        assert native.first_difference(guest_view(system)) is None, mode  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(body=st.lists(st.one_of(INNOCUOUS, PRIVILEGED, SENSITIVE), min_size=1, max_size=40),
       extra=SENSITIVE, timer=st.integers(3, 40))
def test_with_sensitive_instructions_only_trap_and_emulate_diverges_and_says_why(
        body: list[str], extra: str, timer: int) -> None:
    source = program([*body, extra], timer)
    native = guest_view(run("native", source)[0])  # type: ignore[arg-type]
    for mode in ("bt", "hw"):
        assert native.first_difference(guest_view(run(mode, source)[0])) is None, mode  # type: ignore[arg-type]
    system, fidelity = run("trap", source, record=True)
    if native.first_difference(guest_view(system)) is not None:  # type: ignore[arg-type]
        assert fidelity, "trap-and-emulate diverged without reporting a fidelity violation"


@settings(max_examples=20, deadline=None)
@given(body=st.lists(st.one_of(INNOCUOUS, PRIVILEGED, SENSITIVE), min_size=1, max_size=40),
       mode=st.sampled_from(["trap", "bt", "hw"]))
def test_no_guest_program_changes_memory_outside_its_region(body: list[str], mode: str) -> None:
    source = program(body, 11)
    system = build_system(mode, bare=assemble(source, "generated.s"), config=MachineConfig(memory_size=1 << 16))
    assert isinstance(system, Hypervisor)
    outside_before = bytes(system.machine.memory[:VMM_RESERVED])
    system.run(20_000)
    assert bytes(system.machine.memory[:VMM_RESERVED]) == outside_before
