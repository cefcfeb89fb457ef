"""Overcommit: frames on first touch, content-based page sharing with copy-on-write, ballooning driven by
the guest kernel's own driver, and a clear failure when the host runs out of frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.hostmem as hostmem_module
from engine.asm import assemble
from engine.events import BalloonChange, CowBreak, PageShared, VmExit
from engine.hostmem import OvercommitConfig
from engine.isa import PAGE_SHIFT, PAGE_SIZE
from engine.machine import Machine, MachineConfig
from engine.program import Program
from engine.programs import assemble_shipped
from engine.systems import build_system, guest_view
from engine.vmm import GuestSpec, Hypervisor

GUEST_MEMORY = 1 << 17
DATA_PAGES = range(16, 24)


def store_program(writes: list[tuple[int, int]], name: str = "stores", *, power_off: bool = True) -> Program:
    """A bare-metal guest that stores each (page, value) at the start of that guest-physical page, then powers off
    (or spins, keeping its memory: a VM that is off gives all its frames back)."""
    lines = ["        .org 0x1000"]
    for page, value in writes:
        lines += [f"        mov r1, {page << PAGE_SHIFT:#x}", f"        mov r2, {value:#x}", "        st [r1], r2",
                  "        ld r3, [r1]"]
    lines += ["        mov r0, 0", "        out 0xf4, r0"] if power_off else ["spin:   jmp spin"]
    return assemble("\n".join(lines), f"{name}.s")


def bare_hypervisor(programs: list[Program], config: OvercommitConfig, *, quantum: int = 5) -> Hypervisor:
    guests = [GuestSpec(p, name=f"g{i}", bare=True) for i, p in enumerate(programs)]
    return Hypervisor("hw", guests, guest_memory=GUEST_MEMORY, memory_mode="nested", overcommit=config,
                      quantum=quantum)


def alone(program: Program) -> bytes:
    machine = Machine(MachineConfig(memory_size=GUEST_MEMORY))
    machine.load_bare(program)
    machine.run(100_000)
    return bytes(machine.memory)


def check_invariants(hv: Hypervisor) -> None:
    """Isolation: a frame two guest pages map is read-only in both and holds what both see; free is free."""
    host = hv.hostmem
    assert host is not None
    mapped: dict[int, list[tuple[int, int]]] = {}
    for vm in hv.vms:
        assert vm.nested is not None
        for page, frame in host.pmap[vm.vm_id].items():
            mapped.setdefault(frame, []).append((vm.vm_id, page))
            assert vm.nested.mapping(page << PAGE_SHIFT) == (frame << PAGE_SHIFT, page not in vm.nested.readonly)
    for frame, sharers in mapped.items():
        assert host.refs[frame] == len(sharers) == len(host.rmap[frame])
        if len(sharers) > 1:
            for vm_id, page in sharers:
                mapping = hv.vms[vm_id].nested.mapping(page << PAGE_SHIFT)  # type: ignore[union-attr]
                assert mapping is not None and not mapping[1], "a shared frame must be read-only for every sharer"
    assert not set(host.free) & set(mapped), "a free frame is still mapped"
    assert len(host.free) + len(mapped) == host.config.host_frames


def test_identical_vms_boot_print_and_share_the_zero_page_most() -> None:
    native = build_system("native", user_programs=("hello", "count"))
    native.run(3_000_000)
    kernel, modules = assemble_shipped("kernel"), (assemble_shipped("hello"), assemble_shipped("count"))
    saved = []
    for count in (1, 2, 4):
        hv = Hypervisor("hw", [GuestSpec(kernel, modules, name=f"g{i}") for i in range(count)],
                        memory_mode="nested", overcommit=OvercommitConfig(host_frames=256, share_interval=500))
        most = 0
        while not hv.halted:
            hv.run(20_000)
            most = max(most, hv.counters()["frames_saved_by_sharing"])
            check_invariants(hv)
        for vm in hv.vms:
            assert vm.stop_reason == "power off" and vm.console_text == native.console_output
        assert hv.counters()["host_frames_used"] == 0, "VMs that are off hold no frames"
        saved.append(most)
    assert saved[0] < saved[1] < saved[2], f"savings must grow with identical VMs: {saved}"


def test_sharing_merges_identical_pages_and_a_write_breaks_the_share() -> None:
    first = store_program([(16, 0x1234), (17, 0x55)], power_off=False)
    second = store_program([(16, 0x1234), (17, 0x66)], power_off=False)
    hv = bare_hypervisor([first, second], OvercommitConfig(host_frames=64, share_interval=0))
    hv.run(1_000)
    host = hv.hostmem
    assert host is not None
    host.scan(everything=True)
    frame_a, frame_b = host.pmap[0][16], host.pmap[1][16]
    assert frame_a == frame_b and host.refs[frame_a] == 2, "identical pages collapse to one frame, refcount 2"
    assert host.pmap[0][17] != host.pmap[1][17], "pages that differ are never merged"
    assert hv.guest_memory(hv.vms[0]) == alone(first)[:GUEST_MEMORY]
    assert hv.guest_memory(hv.vms[1]) == alone(second)[:GUEST_MEMORY]
    check_invariants(hv)
    # A write by VM 1 (as its CPU would make it): an EPT violation gives it a private copy.
    vm1 = hv.vms[1]
    hv.switch_to(vm1)
    hv.machine.sink.events = []
    hpa = hv.machine.mmu.guest_physical(16 << PAGE_SHIFT, 1)
    events = hv.machine.sink.events
    hv.machine.sink.events = None
    assert hpa >> PAGE_SHIFT != frame_a and host.refs[frame_a] == 1
    assert any(isinstance(e, CowBreak) and e.refcount == 1 for e in events)
    assert any(isinstance(e, VmExit) and "copy-on-write" in e.reason for e in events)
    check_invariants(hv)


def test_a_hash_match_without_equal_contents_is_never_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem_module, "page_hash", lambda data: 7)  # every page collides
    programs = [store_program([(16, 1), (17, 2)], power_off=False), store_program([(16, 3), (17, 1)], power_off=False)]
    hv = bare_hypervisor(programs, OvercommitConfig(host_frames=64, share_interval=0))
    hv.run(1_000)
    host = hv.hostmem
    assert host is not None
    host.scan(everything=True)
    check_invariants(hv)
    assert host.counters["hash_collisions"] > 0
    for program, vm in zip(programs, hv.vms, strict=True):
        assert hv.guest_memory(vm) == alone(program)[:GUEST_MEMORY]
    contents = {}
    for frame, sharers in host.rmap.items():
        if len(sharers) > 1:
            for vm_id, page in sharers:
                contents.setdefault(frame, set()).add(hv.guest_memory(hv.vms[vm_id])[page * PAGE_SIZE:
                                                                                      (page + 1) * PAGE_SIZE])
    assert all(len(distinct) == 1 for distinct in contents.values())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(DATA_PAGES), st.sampled_from([0, 1, 2, 0xFFFF])),
                         min_size=1, max_size=12), min_size=2, max_size=3),
       st.integers(1, 7), st.integers(1, 9))
def test_isolation_and_equivalence_under_sharing(writes: list[list[tuple[int, int]]], interval: int,
                                                 quantum: int) -> None:
    programs = [store_program(w, f"g{i}") for i, w in enumerate(writes)]
    hv = bare_hypervisor(programs, OvercommitConfig(host_frames=96, share_interval=interval, share_batch=64),
                         quantum=quantum)
    while not hv.halted:
        hv.run(3)
        check_invariants(hv)
    for program, vm in zip(programs, hv.vms, strict=True):
        assert vm.stop_reason == "power off"
        assert hv.guest_memory(vm) == alone(program)[:GUEST_MEMORY], "a VM saw another VM's data"


def guest_word(hv: Hypervisor, vm_id: int, symbol: str) -> int:
    address = assemble_shipped("kernel").symbols[symbol]
    memory = hv.guest_memory(hv.vms[vm_id])
    return int.from_bytes(memory[address:address + 4], "little")


def test_the_guest_balloon_driver_inflates_on_request_and_deflates_when_asked() -> None:
    kernel, modules = assemble_shipped("kernel"), (assemble_shipped("count"),)
    hv = Hypervisor("hw", [GuestSpec(kernel, modules)], memory_mode="nested",
                    overcommit=OvercommitConfig(host_frames=256, share_interval=0, reclaim_interval=0))
    hv.run(30_000)  # booted: count is running
    assert not hv.halted
    free_before = guest_word(hv, 0, "free_frames")
    stack = assemble_shipped("kernel").symbols["free_stack"]
    memory = hv.guest_memory(hv.vms[0])
    top_of_free_stack = [int.from_bytes(memory[stack + 4 * i:stack + 4 * i + 4], "little")
                         for i in range(free_before - 20, free_before)]
    hv.set_balloon_target(0, 20)
    events = []
    while len(hv.ballooned_pages(0)) < 20 and not hv.halted:
        events += [e for e in hv.step().events if isinstance(e, BalloonChange)]
    assert len(hv.ballooned_pages(0)) == 20
    assert guest_word(hv, 0, "free_frames") == free_before - 20, "inflating by X lowers guest free memory by X"
    assert [e.action for e in events].count("inflate") == 20
    # The guest picked the pages: the 20 on top of its own free stack. No frame stays behind any of them.
    assert {page << PAGE_SHIFT for page in hv.ballooned_pages(0)} == set(top_of_free_stack)
    assert not hv.ballooned_pages(0) & hv.hostmem.pmap[0].keys()  # type: ignore[union-attr]
    hv.set_balloon_target(0, 5)
    while len(hv.ballooned_pages(0)) > 5 and not hv.halted:
        hv.step()
    assert len(hv.ballooned_pages(0)) == 5
    hv.run(3_000_000)
    assert hv.vms[0].stop_reason == "power off" and "count 9" in hv.vms[0].console_text


# A user process that never ends: it keeps the guest up after heap has exited and freed its pages.
SLEEPER = assemble("""
        .org 0x00400000
_start: mov r0, 3                         ; yield, forever
        syscall
        jmp _start
""", "sleeper.s")


def test_inflating_over_memory_the_guest_freed_gives_host_frames_back() -> None:
    kernel, modules = assemble_shipped("kernel"), (assemble_shipped("heap"), SLEEPER)
    hv = Hypervisor("hw", [GuestSpec(kernel, modules)], memory_mode="nested",
                    overcommit=OvercommitConfig(host_frames=256, share_interval=0, reclaim_interval=0))
    for _ in range(3_000):  # heap touches 96 pages, then exits: the guest frees them, but the host still backs them
        if "pid 1 exited" in hv.vms[0].console_text:
            break
        hv.run(1_000)
    assert "pid 1 exited with code 0" in hv.vms[0].console_text
    hv.run(5_000)
    host = hv.hostmem
    assert host is not None
    used = host.counters["host_frames_used"]
    hv.set_balloon_target(0, 40)
    for _ in range(1_000):
        if len(hv.ballooned_pages(0)) >= 40:
            break
        hv.run(100)
    assert len(hv.ballooned_pages(0)) == 40
    assert host.counters["host_frames_used"] <= used - 30, "the balloon took frames the guest had freed"
    hv.set_balloon_target(0, 0)
    for _ in range(1_000):
        if not hv.ballooned_pages(0):
            break
        hv.run(100)
    assert not hv.ballooned_pages(0) and hv.vms[0].stop_reason is None, "deflated, and the guest runs on"


def test_a_host_short_of_frames_balloons_first_then_fails_clearly() -> None:
    kernel = assemble_shipped("kernel")
    guests = [GuestSpec(kernel, (assemble_shipped("heap"), assemble_shipped("hog")), name="a"),
              GuestSpec(kernel, (assemble_shipped("hog"),), name="b")]
    roomy = Hypervisor("hw", guests, memory_mode="nested", quantum=5000,
                       overcommit=OvercommitConfig(host_frames=260, share_interval=0))
    roomy.run(5_000_000)
    assert [vm.stop_reason for vm in roomy.vms] == ["power off", "power off"]
    tight = Hypervisor("hw", guests, memory_mode="nested", quantum=5000,
                       overcommit=OvercommitConfig(host_frames=180, share_interval=0))
    tight.run(5_000_000)
    reasons = [vm.stop_reason or "" for vm in tight.vms]
    assert any(reason.startswith("host out of memory: no free machine frame") for reason in reasons)
    assert all(vm.exit_code == 5 for vm in tight.vms if (vm.stop_reason or "").startswith("host out of memory"))
    counts = tight.counters()
    assert counts["balloon_inflated"] > 0, "ballooning was tried before giving up"
    for vm, clean in zip(tight.vms, roomy.vms, strict=True):  # whatever a VM printed before is intact
        assert clean.console_text.startswith(vm.console_text.split("[kernel] panic")[0][:60])


def test_overcommit_snapshots_restore_exactly() -> None:
    kernel, modules = assemble_shipped("kernel"), (assemble_shipped("hello"),)
    hv = Hypervisor("hw", [GuestSpec(kernel, modules), GuestSpec(kernel, modules)], memory_mode="nested",
                    overcommit=OvercommitConfig(host_frames=128, share_interval=300), quantum=700)
    hv.run(5_000)
    state = hv.snapshot()
    first = [hv.step().events for _ in range(3_000)]
    after = guest_view(hv), hv.counters(), hv.frame_owners()
    hv.restore(state)
    second = [hv.step().events for _ in range(3_000)]
    assert first == second
    assert (guest_view(hv), hv.counters(), hv.frame_owners()) == after


def test_events_and_views_name_shared_and_ballooned_memory() -> None:
    kernel, modules = assemble_shipped("kernel"), (assemble_shipped("hello"),)
    hv = Hypervisor("hw", [GuestSpec(kernel, modules), GuestSpec(kernel, modules)], memory_mode="nested",
                    overcommit=OvercommitConfig(host_frames=128, share_interval=200))
    shared = []
    for _ in range(20_000):
        shared += [e for e in hv.step().events if isinstance(e, PageShared)]
        if hv.halted:
            break
    assert shared and all(e.refcount >= 2 for e in shared)
    refcounts = hv.frame_refcounts()
    owners = hv.frame_owners()
    assert all(owners[frame] == "shared" for frame in refcounts)


def test_overcommit_is_refused_where_it_cannot_work() -> None:
    kernel = assemble_shipped("kernel")
    with pytest.raises(ValueError, match="nested"):
        Hypervisor("hw", [GuestSpec(kernel)], memory_mode="shadow", overcommit=OvercommitConfig(host_frames=64))
    with pytest.raises(ValueError, match="binary translation"):
        Hypervisor("bt", [GuestSpec(kernel)], memory_mode="nested", overcommit=OvercommitConfig(host_frames=64))
    with pytest.raises(ValueError, match="host_frames"):
        Hypervisor("hw", [GuestSpec(kernel)], memory_mode="nested", overcommit=OvercommitConfig(host_frames=0))
