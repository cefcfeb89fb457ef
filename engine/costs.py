"""The cycle cost model: what each transition, emulation, translation and exit costs.

Defaults are calibrated so the relative costs reproduce the ordering of Adams and Agesen's
nanobenchmarks (ASPLOS 2006, a Pentium 4 with first-generation VT-x; see
../shared/reference/virtualization-facts.md section 2):

| nanobenchmark | paper: native / BT / VT-x | this model |
|---|---|---|
| syscall | n / n + ~2000 / ~n | BT adds `bt_syscall`; hardware assist has no exit for system calls |
| in (port I/O) | 3209 / ~15x faster / 15826 | `port_io` natively; BT calls the virtual device; HW pays `hw_exit` |
| call/ret | 11 / 51 / 11 | BT adds `bt_indirect_branch` to call, ret and indirect jumps in translated code |
| divzero | 889 / 3223 / 1014 | BT and trap-and-emulate reflect through the VMM; HW delivers in the guest |
| pgfault | 1093 / 3927 / 11242 | first-generation VT-x exits on page faults (the default exception bitmap) |
| ptemod | ~1 / 391 / 12733 | shadow paging traces each guest page-table write: `bt_ptemod`, `vmm_trap`, `hw_exit` |

Trap-and-emulate is not in the paper: its world switch (`vmm_trap`) uses the ~2000-cycle exit cost
measured by SplitX (Landau et al. 2011). Every number can be changed: pass a CostModel to the VMM.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """Cycles charged per operation (instruction costs themselves come from the opcode table)."""

    trap_delivery: int = 20
    """Native: delivering a trap or interrupt through the trap table (the CPU charges this)."""
    port_io: int = 3209
    """Native: an IN or OUT reaching a physical device (Adams-Agesen 'in', port 0x80)."""
    vmm_trap: int = 2000
    """Trap-and-emulate, BT, PV: a guest fault or interrupt entering the VMM and returning."""
    emulate: int = 150
    """The VMM decoding and emulating one instruction on the virtual CPU."""
    virtual_device: int = 200
    """The VMM's emulated device handling one port access (no physical device latency)."""
    reflect: int = 300
    """Building a trap frame on the guest kernel stack and entering the guest handler."""
    bt_translate: int = 40
    """Translating one guest instruction into the translation cache."""
    bt_callout: int = 30
    """A translated sensitive or privileged instruction calling into the VMM (no trap)."""
    bt_indirect_branch: int = 40
    """call, ret and indirect jumps in translated code look up their target in the cache."""
    bt_ptemod: int = 391
    """BT: a guest page-table write caught by adaptive translation (Adams-Agesen 'ptemod')."""
    bt_syscall: int = 2000
    """BT: a system call and its return are intercepted by the VMM."""
    hypercall: int = 250
    """PV: one hypercall round trip."""
    hypercall_item: int = 30
    """PV: each entry of a batched hypercall."""
    hw_exit: int = 15000
    """Hardware assist (first-generation VT-x): one VM exit and re-entry."""

    def as_dict(self) -> dict[str, int]:
        """Every cost by name (for display and documentation)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
