"""Binary translation: guest-kernel code is translated block by block into a translation cache.

Innocuous instructions are copied unchanged; privileged and sensitive ones become callouts into the
VMM's emulation (no trap); call, ret and indirect jumps pay for a target lookup. Guest user code is
not translated: it runs directly. Writes to translated code invalidate the blocks on that page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.cpu import PLAIN, SPECIAL, Decoded
from engine.disasm import format_instruction
from engine.events import BtBlockEntered, BtInvalidated, BtTranslated
from engine.isa import PAGE_SHIFT, InstrClass, OpSpec
from engine.mmu import FETCH, Fault

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

MAX_BLOCK = 16
ENDS_BLOCK = frozenset({"JMP", "JMPR", "JZ", "JNZ", "JL", "JGE", "JLE", "JG", "JB", "JAE", "CALL", "CALLR",
                        "RET", "IRET", "SYSCALL", "BRK", "HYPERCALL", "HLT"})
INDIRECT = frozenset({"CALL", "CALLR", "RET", "JMPR"})


@dataclass(frozen=True)
class Block:
    """One translated block, as the translation-cache panel shows it."""

    guest_pc: int
    start_pa: int
    pas: tuple[int, ...]
    listing: tuple[str, ...]
    callouts: int


class TranslationCache:
    """A VM's translation cache, keyed by the host-physical address of each guest instruction."""

    def __init__(self, hv: Hypervisor, vm: VM) -> None:
        self.hv = hv
        self.vm = vm
        self.entries: dict[int, Decoded] = {}
        self.blocks: dict[int, Block] = {}
        self.page_blocks: dict[int, set[int]] = {}
        self.order: list[int] = []  # block start addresses in translation order (for exact restore)

    # ------------------------------------------------------------------ wiring into the CPU
    def select(self, *, kernel: bool) -> None:
        """Point the CPU at the translation cache (guest kernel) or at its plain decoder (guest user)."""
        cpu = self.hv.machine.cpu
        if kernel:
            cpu.icache, cpu.decode_miss = self.entries, self.translate_at
        else:
            cpu.icache, cpu.decode_miss = cpu.base_icache, cpu._decode

    def translate_at(self, pa: int, pc: int) -> Decoded:
        """Translate the block starting at `pc` (physical `pa`) and return its first instruction."""
        self._translate(pa, pc, record=True)
        return self.entries[pa]

    # ------------------------------------------------------------------ translation
    def _translate(self, pa: int, pc: int, *, record: bool) -> None:
        hv, vm = self.hv, self.vm
        cpu, mmu = hv.machine.cpu, hv.machine.mmu
        pas: list[int] = []
        listing: list[str] = []
        decoded_block: list[Decoded] = []
        callouts = 0
        address, physical = pc, pa
        for index in range(MAX_BLOCK):
            if index:
                if address >> PAGE_SHIFT != pc >> PAGE_SHIFT:
                    break  # blocks never cross a page: the next page may be mapped differently
                physical = (pa & ~0xFFF) | (address & 0xFFF)
            try:
                decoded = cpu.decode_at(physical, address)
            except Fault:
                if index == 0:
                    raise
                break
            handler, a, b, imm, cycles, _special, spec = decoded
            text = format_instruction(spec, a, b, imm)
            if spec.klass is not InstrClass.INNOCUOUS:
                decoded = (self._callout(spec), a, b, imm, cycles + hv.costs.bt_callout, SPECIAL, spec)
                listing.append(f"{address:#010x}  {text:<24} -> call VMM ({spec.klass.value})")
                callouts += 1
            elif spec.name in INDIRECT:
                decoded = (handler, a, b, imm, cycles + hv.costs.bt_indirect_branch, decoded[5], spec)
                listing.append(f"{address:#010x}  {text:<24} -> via cache lookup")
            else:
                listing.append(f"{address:#010x}  {text}")
            pas.append(physical)
            decoded_block.append(decoded)
            address += 8
            if spec.name in ENDS_BLOCK:
                break
        first = decoded_block[0]
        decoded_block[0] = (self._entered(first[0], pc), *first[1:])
        for physical, decoded in zip(pas, decoded_block, strict=True):
            self.entries[physical] = decoded
        block = Block(pc, pa, tuple(pas), tuple(listing), callouts)
        self.blocks[pa] = block
        self.order.append(pa)
        for physical in pas:
            self.page_blocks.setdefault(physical >> PAGE_SHIFT, set()).add(pa)
        hv.update_watch()
        if record:
            vm.count("bt_blocks")
            vm.count("bt_instructions", len(pas))
            hv._charge(vm, hv.costs.bt_translate * len(pas))
            hv._record(BtTranslated(hv.machine.sink.step, vm.vm_id, pc, len(pas), callouts, block.listing))
        del mmu

    def _callout(self, spec: OpSpec) -> Any:
        hv, vm = self.hv, self.vm

        def callout(a: int, b: int, imm: int) -> None:
            hv.callout(vm, spec, a, b, imm)

        return callout

    def _entered(self, handler: Any, guest_pc: int) -> Any:
        hv, vm = self.hv, self.vm

        def entered(a: int, b: int, imm: int) -> None:
            vm.count("bt_hits")
            hv._record(BtBlockEntered(hv.machine.sink.step, vm.vm_id, guest_pc))
            handler(a, b, imm)

        return entered

    def code_written(self, pa: int) -> None:
        """The guest stored into a page holding translated code: drop every block on that page."""
        page = pa >> PAGE_SHIFT
        starts = self.page_blocks.pop(page, set())
        for start in starts:
            block = self.blocks.pop(start, None)
            if block is None:
                continue
            for physical in block.pas:
                self.entries.pop(physical, None)
                other = self.page_blocks.get(physical >> PAGE_SHIFT)
                if other is not None:
                    other.discard(start)
        self.order = [start for start in self.order if start in self.blocks]
        self.hv.update_watch()
        if starts:
            self.vm.count("bt_invalidations")
            self.hv._record(BtInvalidated(self.hv.machine.sink.step, self.vm.vm_id, page, len(starts)))

    # ------------------------------------------------------------------ snapshots
    def state(self) -> tuple[tuple[int, int], ...]:
        """The cache as (start pa, guest pc) pairs in translation order: enough to rebuild it exactly."""
        return tuple((start, self.blocks[start].guest_pc) for start in self.order)

    def restore(self, state: tuple[tuple[int, int], ...]) -> None:
        """Rebuild the cache from memory as it was (memory must already be restored)."""
        self.entries.clear()
        self.blocks.clear()
        self.page_blocks.clear()
        self.order = []
        for start, guest_pc in state:
            self._translate(start, guest_pc, record=False)


__all__ = ["Block", "PLAIN", "TranslationCache", "FETCH"]
