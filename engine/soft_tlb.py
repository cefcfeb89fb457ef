"""A software-managed TLB under the VMM: OSTEP's Table B.5 flow, and Disco's VMM software TLB.

With `MachineConfig(tlb_managed="software")` the MMU never walks page tables: a miss traps (TLB_MISS)
and the OS installs the entry with the privileged `tlbwr`. Under trap-and-emulate (and binary
translation; the paravirtual kernel calls the `tlb_write` and `iret` hypercalls instead of trapping)
one guest-user miss goes:

1. the user access misses and traps to the VMM (VMM entry 1);
2. the VMM reflects it to the guest OS's miss handler, which runs deprivileged;
3. the OS walks its page table and tries to install VPN -> PFN with `tlbwr`;
4. that traps (VMM entry 2): the VMM installs VPN -> **MFN** (the host frame backing the guest frame);
5. the OS returns from the trap with `iret`;
6. that traps too (VMM entry 3) and the VMM does the real return;
7. the retried access hits.

Disco's fix is a second-level TLB kept by the VMM (`Hypervisor(..., software_tlb=N)`): the VPN -> MFN
mappings it installed, per VM and per address-space id. A later miss on one it still holds is refilled
by the VMM directly: one VMM entry, and the guest OS never runs. It forgets what the guest invalidates
(tlbflush, invlpg, a cr3 load when TLB entries are not tagged) and what a guest tlbwr replaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.events import SoftwareTlbRefill, TlbWriteEmulated
from engine.isa import PAGE_SHIFT, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, Vector
from engine.mmu import VPN_BITS

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

SOFT_TLB_MODES = ("trap", "bt", "pv")
COUNTERS = ("tlb_miss_traps", "tlbwr_emulated", "software_tlb_hits")


def check_supported(mode: str, memory_mode: str, software_tlb: int, tlb_managed: str = "software") -> None:
    """Raise ValueError for a combination a software-managed TLB (or Disco's software TLB) cannot run in."""
    if tlb_managed != "software":
        raise ValueError("Disco's software TLB (software_tlb) needs a software-managed TLB: "
                         "MachineConfig(tlb_managed='software')")
    if mode not in SOFT_TLB_MODES:
        why = (" (hardware assist runs the guest's tlbwr in guest ring 0 against a hardware-walked TLB: "
               "no real machine combines VT-x with a software-managed TLB)") if mode == "hw" else ""
        raise ValueError(f"a software-managed TLB runs under the VMM modes {', '.join(SOFT_TLB_MODES)} only, "
                         f"not {mode!r}{why}")
    if memory_mode != "relocation":
        raise ValueError(f"a software-managed TLB needs memory_mode 'relocation' (the VMM relocates each "
                         f"frame the guest installs), not {memory_mode!r}")
    if software_tlb < 0:
        raise ValueError(f"software_tlb must be >= 0 entries, got {software_tlb}")


class SoftTlbVmm:
    """The VMM's side of a software-managed TLB: miss traps, tlbwr emulation and Disco's software TLB."""

    def __init__(self, hv: Hypervisor, capacity: int) -> None:
        self.hv = hv
        self.capacity = capacity
        """Entries of Disco's software TLB per VM (0 = none: every miss goes to the guest OS)."""
        self.caches: dict[int, dict[int, int]] = {vm.vm_id: {} for vm in hv.vms}
        """Per VM: (asid << 20 | vpn) -> host TLB entry (host frame | W | U | D), oldest first."""
        for vm in hv.vms:  # shown from the start (hv.counters(), the compare table), not only once non-zero
            for name in COUNTERS:
                vm.counters.setdefault(name, 0)

    # ------------------------------------------------------------------ steps 1, 2 (and Disco's refill)
    def on_miss(self, vm: VM, error: int, address: int, fault_pc: int, return_pc: int) -> None:
        """A TLB miss trapped to the VMM: refill from the software TLB, or reflect it to the guest OS."""
        hv = self.hv
        mmu = hv.machine.mmu
        vm.count("tlb_miss_traps")
        hv._exit(vm, "trap", "TLB miss", fault_pc)
        hv._charge(vm, hv.costs.vmm_trap)
        key = (address >> PAGE_SHIFT) | (mmu.asid << VPN_BITS)
        entry = self.caches[vm.vm_id].get(key) if self.capacity else None
        if entry is not None:
            mmu.install(address, entry | PTE_P)
            vm.count("software_tlb_hits")
            hv._record(SoftwareTlbRefill(hv.machine.sink.step, vm.vm_id, address >> PAGE_SHIFT, mmu.asid,
                                         entry >> PAGE_SHIFT))
        else:
            hv._reflect(vm, Vector.TLB_MISS, error, address, return_pc)
        hv._entry(vm)

    # ------------------------------------------------------------------ step 4
    def write(self, vm: VM, va: int, guest_entry: int) -> str:
        """Emulate the guest's `tlbwr va, entry`: install VPN -> host frame in the real TLB; returns the effect."""
        hv = self.hv
        mmu = hv.machine.mmu
        vpn = va >> PAGE_SHIFT
        key = vpn | (mmu.asid << VPN_BITS)
        cache = self.caches[vm.vm_id]
        if not guest_entry & PTE_P:
            mmu.flush_page(va)
            cache.pop(key, None)
            return f"TLB entry for {va:#x} dropped (entry not present)"
        guest_frame = guest_entry & PTE_FRAME_MASK
        if guest_frame + (1 << PAGE_SHIFT) > vm.size:
            hv.stop_vm(vm, f"guest tlbwr named guest-physical frame {guest_frame:#x}, outside its "
                           f"{vm.size:#x} bytes", 4)
            return "refused: the frame is not the guest's"
        host_frame = mmu.relocate(guest_frame)
        flags = guest_entry & (PTE_W | PTE_U)
        mmu.install(va, host_frame | flags | PTE_P)
        vm.count("tlbwr_emulated")
        hv._record(TlbWriteEmulated(hv.machine.sink.step, vm.vm_id, vpn, mmu.asid, guest_frame >> PAGE_SHIFT,
                                    host_frame >> PAGE_SHIFT, flags | PTE_P))
        if self.capacity:
            cache.pop(key, None)  # a tlbwr for a page replaces what the VMM held for it
            if len(cache) >= self.capacity:
                del cache[next(iter(cache))]  # FIFO
            cache[key] = mmu.tlb[(va >> PAGE_SHIFT) | mmu.asid_key]
        return (f"guest asked for vpn {vpn:#x} -> guest frame {guest_frame >> PAGE_SHIFT:#x}; "
                f"installed vpn {vpn:#x} -> host frame {host_frame >> PAGE_SHIFT:#x}")

    # ------------------------------------------------------------------ invalidation
    def forget(self, vm: VM, va: int | None) -> None:
        """The guest invalidated one page (invlpg) or everything (tlbflush, va None)."""
        cache = self.caches[vm.vm_id]
        if va is None:
            cache.clear()
        else:
            cache.pop((va >> PAGE_SHIFT) | (self.hv.machine.mmu.asid << VPN_BITS), None)

    def cr3_loaded(self, vm: VM) -> None:
        """The guest loaded cr3: without address-space tags that flushes its TLB, so the VMM forgets too."""
        if not self.hv.machine.mmu.tlb_tagged:
            self.caches[vm.vm_id].clear()

    # ------------------------------------------------------------------ display and snapshots
    def entries(self, vm_id: int) -> list[tuple[int, int, int]]:
        """Disco's software TLB of one VM, oldest first: (asid, vpn, host frame)."""
        return [(key >> VPN_BITS, key & ((1 << VPN_BITS) - 1), value >> PAGE_SHIFT)
                for key, value in self.caches[vm_id].items()]

    def state(self) -> tuple[Any, ...]:
        """Everything needed to restore the software TLBs exactly (insertion order included)."""
        return tuple((vm_id, tuple(cache.items())) for vm_id, cache in sorted(self.caches.items()))

    def restore(self, state: tuple[Any, ...]) -> None:
        """Return to a `state()`."""
        self.caches = {vm_id: dict(items) for vm_id, items in state}
