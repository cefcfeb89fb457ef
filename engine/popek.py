"""Popek and Goldberg's Theorem 1 applied to this ISA: is every sensitive instruction privileged?"""

from __future__ import annotations

from dataclasses import dataclass

from engine.isa import OPCODES, InstrClass

# Sensitive = control-sensitive (changes the machine's configuration or mode) or behaviour-sensitive
# (result depends on the mode or configuration). In the opcode table every privileged instruction is
# control-sensitive; the SENSITIVE class marks the behaviour-sensitive ones that do not trap.
_WHY = {
    "PUSHF": "behaviour-sensitive: pushes the real IF",
    "POPF": "control-sensitive: changes IF in ring 0, silently does nothing elsewhere",
    "SMSW": "behaviour-sensitive: reveals the real ring and paging state",
    "SIDT": "behaviour-sensitive: reveals where the real trap table is",
}


@dataclass(frozen=True)
class Virtualizability:
    """The verdict of Theorem 1 for one way of running a guest kernel."""

    virtualizable: bool
    sensitive: tuple[str, ...]
    privileged: tuple[str, ...]
    witnesses: tuple[tuple[str, str], ...]  # (mnemonic, why) for sensitive instructions that do not trap
    explanation: str


def theorem_1(mode: str = "trap") -> Virtualizability:
    """Check 'sensitive is a subset of privileged' for classic deprivileging, or for hardware assist."""
    privileged = tuple(s.mnemonic for s in OPCODES if s.klass is InstrClass.PRIVILEGED)
    unprivileged_sensitive = [s for s in OPCODES if s.klass is InstrClass.SENSITIVE]
    sensitive = privileged + tuple(s.mnemonic for s in unprivileged_sensitive)
    if mode == "hw":
        return Virtualizability(
            True, sensitive, privileged, (),
            "In guest mode the guest kernel really runs in (guest) ring 0 and every sensitive instruction acts on "
            "guest state; the instructions that must reach the VMM cause VM exits. The hardware closes the hole.")
    witnesses = tuple((s.mnemonic, _WHY[s.name]) for s in unprivileged_sensitive)
    return Virtualizability(
        False, sensitive, privileged, witnesses,
        "Theorem 1 needs every sensitive instruction to be privileged, so that a deprivileged guest kernel traps "
        f"on each of them. {', '.join(m for m, _ in witnesses)} are sensitive but do not trap: a trap-and-emulate "
        "VMM never sees them run. Binary translation, paravirtualization or hardware assist are needed.")
