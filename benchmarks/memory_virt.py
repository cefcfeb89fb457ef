"""Memory virtualization: page-table references per TLB miss, VMM exits per guest page-table write, and
page-sharing savings, for native, shadow and nested paging.

Run: python3 benchmarks/memory_virt.py [--quick] [--levels L ...] [--host-levels M] [--nested-cache E ...]
                                       [--max-vms N] [--steps-per-vm S] [--share-interval I] [--share-batch B]
Every figure but the wall-clock times is an exact count from the engine (the same in every run):

1. heap (kernel + heap.s) natively, under hardware assist with shadow paging and with nested paging
   (and with the nested TLB on): page-table entries the MMU reads per TLB miss. A cold walk reads n
   entries natively and on the shadow, (n+1)(m+1)-1 for an n-level guest on an m-level host.
2. The same runs: guest page-table writes, the exits they cause, and all exits.
3. N identical VMs (kernel + hello + count) on one host with nested paging, measured after a fixed number
   of steps per VM while all still run (a VM that is off holds no frames): host frames used with
   content-based page sharing against guest pages backed without it. Each run then goes to completion
   and every VM must print what the guest prints natively.
The native, shadow and nested runs of 1 and 2 are stepped with events (to find page-table writes):
most of the wall clock. --quick is a smoke check (2 levels, one nested TLB size, up to 3 VMs).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.events import MemoryAccess, VmExit
from engine.hostmem import OvercommitConfig
from engine.isa import PAGE_SHIFT, PTE_FRAME_MASK, PTE_P
from engine.machine import Machine, MachineConfig
from engine.mmu import split_levels
from engine.systems import System, build_system
from engine.vmm import Hypervisor

WORKLOAD = "heap"
HEAP_DONE = "heap: 96 demand-zero pages written and read back"
SHARING_PROGRAMS = ("hello", "count")
MAX_STEPS = 20_000_000
PT_WRITE_EXIT = "guest page-table write"
QUANTUM = 20_000  # the Hypervisor's default time slice, in host steps


@dataclass
class PagingRun:
    """One run of the workload under one kind of paging: its engine counters and, if recorded, its events' figures."""

    label: str
    levels: int
    counters: dict[str, int]
    console: str
    finished: bool
    pt_writes: int = -1
    """Guest stores into live page-table pages (-1: not recorded)."""
    exit_reasons: Counter[str] = field(default_factory=Counter)

    def count(self, name: str) -> int:
        """An engine counter (0 if this system does not keep it)."""
        return self.counters.get(name, 0)

    @property
    def table_refs(self) -> int:
        """Entries read from the tables the MMU walks itself (native, shadow or guest tables)."""
        return self.count("pte_reads")

    @property
    def host_refs(self) -> int:
        """Entries read from the host's tables (nested paging's second dimension)."""
        return self.count("host_pte_reads")

    @property
    def refs_per_miss(self) -> float:
        """Page-table references per TLB miss."""
        return (self.table_refs + self.host_refs) / max(self.count("tlb_misses"), 1)

    @property
    def exits(self) -> int:
        """Every exit to the VMM."""
        return self.count("vmm_entries")


def make_system(paging: str, levels: int, host_levels: int, cache: int = 0) -> System:
    """The shipped kernel running the workload natively ("native") or under hw with "shadow"/"nested" memory."""
    config = MachineConfig(page_levels=levels)
    if paging == "native":
        return build_system("native", user_programs=(WORKLOAD,), config=config)
    return build_system("hw", user_programs=(WORKLOAD,), config=config, memory_mode=paging,
                        host_levels=host_levels, nested_cache=cache)


def guest_to_host(system: System) -> Callable[[int], int]:
    """Host-physical address of a guest-physical one (identity natively), or -1 where nothing backs it."""
    if isinstance(system, Machine):
        size = system.config.memory_size
        return lambda gpa: gpa if 0 <= gpa < size else -1
    vm = system.vms[0]
    nested = vm.nested
    if nested is not None:
        def through_host_tables(gpa: int) -> int:
            mapped = nested.mapping(gpa) if 0 <= gpa < vm.size else None
            return -1 if mapped is None else mapped[0] | (gpa & 0xFFF)
        return through_host_tables
    return lambda gpa: vm.base + gpa if 0 <= gpa < vm.size else -1


class PageTableTracker:
    """The host pages holding the guest's live page tables: every table reachable from a root the guest
    has loaded into cr3 with paging on, re-walked in software whenever a store lands in one of them."""

    def __init__(self, system: System, levels: int) -> None:
        self.system = system
        self.levels = levels
        self.bits = split_levels(levels)
        self.to_host = guest_to_host(system)
        self.roots: set[int] = set()
        self.pages: set[int] = set()

    def observe_cr3(self) -> None:
        """Note the guest's current root (cr3 holds the guest's own value in every mode)."""
        cpu = self.system.cpu
        root = cpu.cr3 & PTE_FRAME_MASK
        if cpu.paging and root not in self.roots:
            self.roots.add(root)
            self.rescan()

    def rescan(self) -> None:
        """Walk every known root's tables again (a store may have linked or unlinked a table)."""
        self.pages.clear()
        seen: set[int] = set()
        pending = [(root, 0) for root in self.roots]
        while pending:
            table, depth = pending.pop()
            if table in seen:
                continue
            seen.add(table)
            host = self.to_host(table)
            if host < 0:
                continue
            self.pages.add(host >> PAGE_SHIFT)
            if depth == self.levels - 1:
                continue  # a leaf table: its entries point at data pages
            for index in range(1 << self.bits[depth]):
                slot = self.to_host(table + 4 * index)
                entry = self.system.read_word(slot) if slot >= 0 else 0
                if entry & PTE_P:
                    pending.append((entry & PTE_FRAME_MASK, depth + 1))


def measure(label: str, paging: str, levels: int, host_levels: int, *, cache: int = 0,
            record: bool = False) -> PagingRun:
    """Run the workload to completion; with `record`, step it and count guest page-table writes and exits."""
    system = make_system(paging, levels, host_levels, cache)
    pt_writes = -1
    reasons: Counter[str] = Counter()
    if record:
        pt_writes = 0
        tracker = PageTableTracker(system, levels)
        steps = 0
        while not system.halted and steps < MAX_STEPS:
            result = system.step()
            steps += 1
            hit_table = False
            for event in result.events:
                if isinstance(event, MemoryAccess):
                    if event.write and event.pa >> PAGE_SHIFT in tracker.pages:
                        pt_writes += 1
                        hit_table = True
                elif isinstance(event, VmExit):
                    reasons[event.reason] += 1
            if hit_table:
                tracker.rescan()
            tracker.observe_cr3()
    else:
        system.run(MAX_STEPS)
    console = system.console_output
    return PagingRun(label, levels, system.counters(), console, system.halted and HEAP_DONE in console,
                     pt_writes, reasons)


def cold_walk(label: str, levels: int, host_levels: int) -> str:
    """References a cold walk makes (with a nested TLB, at most that)."""
    if label.startswith("nested"):
        full = (levels + 1) * (host_levels + 1) - 1
        return f"<={full}" if "+" in label else str(full)
    return str(levels)


def references_per_miss(runs: Sequence[PagingRun], host_levels: int) -> None:
    print(f"\n1. Page-table references per TLB miss: the shipped kernel running {WORKLOAD}.s to completion "
          f"(hw for shadow and nested; host {host_levels} levels)")
    print("   table refs: entries of the tables the MMU walks itself (native, shadow or the guest's); "
          "host refs: nested")
    print("   paging's second dimension. Nested misses include the guest's paging-off accesses (gPA -> hPA: m host "
          "refs each).")
    print("   The shadow VMM's own software walks of the guest's tables (on hidden faults) are not MMU references: "
          "they are exits, in 2.")
    print(f"   {'levels':>6} {'paging':<16} {'TLB misses':>10} {'table refs':>10} {'host refs':>10} "
          f"{'refs/miss':>9} {'cold walk':>9} {'vs native':>9} {'all refs vs native':>18}")
    native: dict[int, PagingRun] = {run.levels: run for run in runs if run.label == "native"}
    for run in runs:
        base = native[run.levels]
        total, base_total = run.table_refs + run.host_refs, base.table_refs + base.host_refs
        print(f"   {run.levels:>6} {run.label:<16} {run.count('tlb_misses'):>10,} {run.table_refs:>10,} "
              f"{run.host_refs:>10,} {run.refs_per_miss:>9.2f} {cold_walk(run.label, run.levels, host_levels):>9} "
              f"{run.refs_per_miss / base.refs_per_miss:>8.2f}x {total / max(base_total, 1):>17.2f}x")
        if run.label.startswith("nested+"):
            print(f"   {'':>6} {'':<16} nested TLB hits {run.count('nested_cache_hits'):,}, "
                  f"host walks {run.count('host_walks'):,}")


def exits_per_pt_write(runs: Sequence[PagingRun]) -> None:
    print("\n2. VMM exits per guest page-table write (same runs; a page-table write is a guest store into a page "
          "holding")
    print("   a table reachable from a root the guest has loaded into cr3; \"traced\" exits are the shadow "
          "VMM's write traps)")
    print(f"   {'levels':>6} {'paging':<8} {'PT writes':>9} {'traced exits':>12} {'per PT write':>12} "
          f"{'all exits':>9} {'all exits per PT write':>22}")
    by_level: dict[int, dict[str, PagingRun]] = {}
    for run in runs:
        if run.pt_writes < 0:
            continue
        by_level.setdefault(run.levels, {})[run.label] = run
        traced = run.exit_reasons[PT_WRITE_EXIT]
        writes = max(run.pt_writes, 1)
        print(f"   {run.levels:>6} {run.label:<8} {run.pt_writes:>9,} {traced:>12,} {traced / writes:>12.2f} "
              f"{run.exits:>9,} {run.exits / writes:>22.2f}")
    for levels, modes in by_level.items():
        shadow, nested = modes.get("shadow"), modes.get("nested")
        if shadow is None or nested is None:
            continue
        same = len({run.pt_writes for run in modes.values()}) == 1
        print(f"   {levels} levels: all exits shadow / nested = {shadow.exits / max(nested.exits, 1):.2f}x; "
              f"guest page-table writes {'identical' if same else 'DIFFER'} in every mode")
    first = next(iter(by_level.values()), {})
    shadow, nested = first.get("shadow"), first.get("nested")
    if shadow is None or nested is None:
        return
    print(f"   Exits by reason at {shadow.levels} levels:")
    reasons = sorted(set(shadow.exit_reasons) | set(nested.exit_reasons),
                     key=lambda r: (-shadow.exit_reasons[r] - nested.exit_reasons[r], r))
    print(f"     {'reason':<40} {'shadow':>8} {'nested':>8}")
    for reason in reasons:
        print(f"     {reason:<40} {shadow.exit_reasons[reason]:>8,} {nested.exit_reasons[reason]:>8,}")


@dataclass(frozen=True)
class SharingRun:
    """N identical VMs on one host, measured after a fixed number of steps per VM, then run to completion."""

    counters: dict[str, int]
    """The host's counters at the measurement point."""
    guest_pages: int
    """Guest pages with a host frame behind them at the measurement point (over every VM)."""
    all_running: bool
    """No VM had stopped by the measurement point."""
    all_printed: bool
    """Every VM then ran to completion and printed what the guest prints natively."""
    full_scan_frames: int = -1
    """Host frames in use at the measurement point once the VMM has scanned every page (-1: not done)."""


def run_identical_vms(count: int, steps_per_vm: int, share_interval: int, share_batch: int,
                      expected: str) -> SharingRun:
    """`count` VMs, each the kernel with the sharing programs, on a host with a frame for every guest page."""
    config = MachineConfig()
    overcommit = OvercommitConfig(host_frames=count * (config.memory_size >> PAGE_SHIFT), share_interval=share_interval,
                                  share_batch=share_batch, reclaim_interval=0)  # plenty of frames: no ballooning
    hv = build_system("hw", vms=[SHARING_PROGRAMS] * count, config=config, memory_mode="nested",
                      overcommit=overcommit)
    assert isinstance(hv, Hypervisor) and hv.quantum == QUANTUM
    hv.run(count * steps_per_vm)  # round robin in whole time slices: every VM has run exactly steps_per_vm steps
    host = hv.hostmem
    assert host is not None
    counters = hv.counters()
    guest_pages = sum(len(pmap) for pmap in host.pmap)
    running = all(vm.stop_reason is None for vm in hv.vms)
    full = -1
    if share_interval:
        host.scan(everything=True)
        full = hv.counters()["host_frames_used"]
    hv.run(MAX_STEPS)
    printed = hv.halted and all(vm.stop_reason == "power off" and vm.console_text == expected for vm in hv.vms)
    return SharingRun(counters, guest_pages, running, printed, full)


def page_sharing(max_vms: int, steps_per_vm: int, share_interval: int, share_batch: int) -> None:
    native = build_system("native", user_programs=SHARING_PROGRAMS)
    native.run(MAX_STEPS)
    expected = native.console_output
    print(f"\n3. Page sharing: N identical VMs (kernel + {' + '.join(SHARING_PROGRAMS)}, {native.steps:,} steps each "
          "alone), hw with nested paging, on a host")
    print(f"   with a frame for every guest page (no ballooning), measured after {steps_per_vm:,} steps per VM "
          f"(round robin, {QUANTUM:,}-step slices).")
    print(f"   Without sharing every backed guest page holds a frame of its own; with it the VMM scans {share_batch} "
          f"random pages every {share_interval:,} host steps.")
    print(f"   {'N':>3} {'pages backed':>12} {'frames used':>11} {'saved':>6} {'saving':>7} {'merges':>6} "
          f"{'COW breaks':>10} {'full scan: used':>15} {'saving':>7} {'ok':>3}")
    for count in range(1, max_vms + 1):
        alone = run_identical_vms(count, steps_per_vm, 0, share_batch, expected)
        shared = run_identical_vms(count, steps_per_vm, share_interval, share_batch, expected)
        backed = alone.counters["host_frames_used"]
        used = shared.counters["host_frames_used"]
        saved = backed - used
        consistent = (alone.guest_pages == backed == shared.guest_pages
                      and saved == shared.counters["frames_saved_by_sharing"])
        ok = all((alone.all_running, shared.all_running, alone.all_printed, shared.all_printed, consistent))
        full_saving = (backed - shared.full_scan_frames) / max(backed, 1)
        print(f"   {count:>3} {backed:>12,} {used:>11,} {saved:>6,} {saved / max(backed, 1):>7.1%} "
              f"{shared.counters['pages_shared']:>6,} {shared.counters['cow_breaks']:>10,} "
              f"{shared.full_scan_frames:>15,} {full_saving:>7.1%} {'yes' if ok else 'NO':>3}")
    print("   ok: every VM was still running at the measurement point, then ran to completion printing what the "
          "guest prints")
    print("   natively, and the frame counts agree with the engine's frames_saved_by_sharing. full scan: the VMM "
          "then looks at")
    print("   every backed page once (HostMemory.scan(everything=True)).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: guest page_levels 2 only, one nested-TLB size, up to 3 VMs")
    parser.add_argument("--levels", type=int, nargs="+", help="guest page-table levels (default 2 3 4)")
    parser.add_argument("--host-levels", type=int, default=4, help="host page-table levels for nested paging")
    parser.add_argument("--nested-cache", type=int, nargs="+",
                        help="nested TLB (page-walk cache) sizes in entries (default 16 128)")
    parser.add_argument("--max-vms", type=int, help="identical VMs for page sharing, 1 up to this (default 8)")
    parser.add_argument("--steps-per-vm", type=int, default=60_000,
                        help="page sharing is measured after this many steps per VM (a multiple of the 20,000-step "
                             "time slice, before any VM finishes)")
    parser.add_argument("--share-interval", type=int, default=500, help="host steps between page-sharing scans")
    parser.add_argument("--share-batch", type=int, default=32, help="guest pages each page-sharing scan looks at")
    args = parser.parse_args()
    levels = args.levels or ((2,) if args.quick else (2, 3, 4))
    caches = args.nested_cache or ((16,) if args.quick else (16, 128))
    max_vms = args.max_vms or (3 if args.quick else 8)
    host_levels = args.host_levels
    if args.share_interval < 1:
        parser.error("--share-interval must be at least 1 (the comparison run is the one without sharing)")
    if args.steps_per_vm < QUANTUM or args.steps_per_vm % QUANTUM:
        parser.error(f"--steps-per-vm must be a positive multiple of {QUANTUM:,} (whole time slices)")

    start = time.perf_counter()
    runs: list[PagingRun] = []
    for level in levels:
        native = measure("native", "native", level, host_levels, record=True)
        if not native.finished:
            first_line = native.console.strip().splitlines()[-1:] or ["no output"]
            print(f"page_levels {level}: skipped, the guest did not finish natively ({first_line[0]})")
            continue
        level_runs = [native, measure("shadow", "shadow", level, host_levels, record=True),
                      measure("nested", "nested", level, host_levels, record=True)]
        level_runs += [measure(f"nested+TLB{size}", "nested", level, host_levels, cache=size) for size in caches]
        for run in level_runs:
            if not run.finished or run.console != native.console:
                print(f"warning: {run.label} at {level} levels did not behave as natively "
                      f"(finished={run.finished})")
        runs += level_runs
    if runs:
        references_per_miss(runs, host_levels)
        exits_per_pt_write(runs)
    paging_time = time.perf_counter() - start
    page_sharing(max_vms, args.steps_per_vm, args.share_interval, args.share_batch)
    total = time.perf_counter() - start
    print(f"\nWall clock (varies between runs): paging runs {paging_time:.1f} s (native, shadow and nested stepped "
          f"with events), page sharing {total - paging_time:.1f} s, total {total:.1f} s")


if __name__ == "__main__":
    main()
