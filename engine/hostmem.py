"""Host memory under overcommit: a pool of machine frames shared by every VM, backed on first touch,
reclaimed by ballooning, saved by content-based page sharing (Waldspurger, OSDI 2002).

Each VM has a pmap (guest-physical page -> host frame) that the VMM mirrors into the VM's nested
page tables. A guest page gets a frame only when something touches it (an EPT violation the VMM
fixes). The page-sharing scanner picks random backed pages, hashes each (64 bits), and on a hash
match compares the pages in full before it maps both read-only onto one frame with a reference
count; a store to a shared page is an EPT violation that gives the writer a private copy. When the
pool runs low, the VMM raises balloon targets: the guest's balloon driver hands back pages of its
own choosing, and the VMM frees their frames. A VM that needs a frame when none is left, even after
a full sharing scan, is stopped with a clear reason: no guest is ever corrupted.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.devices import UNMAPPED_READ
from engine.events import BalloonChange, CowBreak, HostFrameMapped, PageShared
from engine.isa import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

PORT_BALLOON_TARGET = 0x30  # read: the balloon target in pages (all ones on a machine without the device)
PORT_BALLOON_INFLATE = 0x31  # write: a guest-physical frame the driver gives to the host
PORT_BALLOON_DEFLATE = 0x32  # write: a guest-physical frame the driver takes back
BALLOON_PORTS = frozenset({PORT_BALLOON_TARGET, PORT_BALLOON_INFLATE, PORT_BALLOON_DEFLATE})
ZERO_PAGE = bytes(PAGE_SIZE)


def page_hash(data: bytes) -> int:
    """The 64-bit content hash the scanner files pages under."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


@dataclass(frozen=True)
class OvercommitConfig:
    """How a host overcommits memory: its frame pool, the sharing scanner and the reclaim policy."""

    host_frames: int
    """Machine frames for all the VMs' memory together (their guest-physical sizes may add up to more)."""
    share_interval: int = 2_000
    """Host steps between page-sharing scans (0: no page sharing)."""
    share_batch: int = 32
    """Guest pages each scan looks at, picked at random (seeded)."""
    reclaim_interval: int = 1_000
    """Host steps between checks of free memory, which set balloon targets (0: no ballooning)."""
    soft_free_percent: int = 4
    """Below this share of the pool free, the VMM inflates balloons (ESX's "soft" state)."""
    high_free_percent: int = 6
    """Reclaim aims back up to this share free (ESX's "high" state); well above it balloons deflate."""
    seed: int = 0
    """Seed of the scanner's random page choice."""

    def validate(self) -> OvercommitConfig:
        """Raise ValueError naming the bad field."""
        if self.host_frames < 1:
            raise ValueError(f"host_frames must be at least 1, got {self.host_frames}")
        for name in ("share_interval", "share_batch", "reclaim_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.soft_free_percent <= self.high_free_percent <= 100:
            raise ValueError("need 0 <= soft_free_percent <= high_free_percent <= 100")
        return self


class HostMemory:
    """The host's frame pool, every VM's pmap, the sharing tables and the balloons."""

    def __init__(self, hv: Hypervisor, config: OvercommitConfig, first_frame: int) -> None:
        self.hv = hv
        self.config = config.validate()
        self.memory = hv.machine.memory
        self.first_frame = first_frame
        self.end_frame = first_frame + config.host_frames
        self.free: list[int] = list(range(self.end_frame - 1, first_frame - 1, -1))  # pop() = lowest frame
        count = len(hv.vms)
        self.pmap: list[dict[int, int]] = [{} for _ in range(count)]  # guest page -> host frame, per VM
        self.refs: dict[int, int] = {}  # host frame -> guest pages mapping it (2+ = shared copy-on-write)
        self.rmap: dict[int, set[tuple[int, int]]] = {}  # host frame -> (vm, guest page) mapping it
        self.shared: dict[int, int] = {}  # content hash -> shared frame
        self.shared_hash: dict[int, int] = {}  # shared frame -> its content hash
        self.hints: dict[int, tuple[int, int]] = {}  # content hash -> an unshared (vm, guest page) with it
        self.balloon: list[set[int]] = [set() for _ in range(count)]  # guest pages each balloon holds
        self.target: list[int] = [0] * count
        self.driver: list[bool] = [False] * count  # the guest probed the balloon device
        self.final: dict[int, bytes] = {}  # a stopped VM's guest memory as it was, once its frames are freed
        self.rng = random.Random(config.seed)
        self.next_scan = config.share_interval or -1
        self.next_reclaim = config.reclaim_interval or -1
        self.counters: dict[str, int] = {
            "host_frames_used": 0, "frames_backed": 0, "pages_shared": 0, "cow_breaks": 0,
            "hash_collisions": 0, "scanned_pages": 0, "balloon_inflated": 0, "balloon_deflated": 0,
            "balloon_refused": 0, "out_of_frames": 0, "memory_waits": 0,
        }

    # ------------------------------------------------------------------ frames
    @property
    def free_frames(self) -> int:
        """Machine frames nobody uses."""
        return len(self.free)

    def _take_frame(self, vm: VM) -> int | None:
        if not self.free and self.config.share_interval:
            self.scan(everything=True)  # last resort before failing: merge whatever is identical
        if not self.free:
            self.counters["out_of_frames"] += 1
            return None
        frame = self.free.pop()
        self._invalidate_decodes(frame)
        return frame

    def _release(self, frame: int) -> None:
        bisect.insort(self.free, frame, key=lambda f: -f)  # kept descending: pop() hands out the lowest frame

    def _invalidate_decodes(self, frame: int) -> None:
        icache = self.hv.machine.cpu.base_icache
        base = frame << PAGE_SHIFT
        for address in range(base, base + PAGE_SIZE, 8):
            icache.pop(address, None)

    def _frame_bytes(self, frame: int) -> bytes:
        base = frame << PAGE_SHIFT
        return bytes(self.memory[base:base + PAGE_SIZE])

    def _map(self, vm: VM, page: int, frame: int, writable: bool) -> None:
        assert vm.nested is not None
        self.pmap[vm.vm_id][page] = frame
        self.rmap.setdefault(frame, set()).add((vm.vm_id, page))
        vm.nested.map_page(page << PAGE_SHIFT, frame << PAGE_SHIFT, writable)
        self._flush(vm)

    def _unmap(self, vm: VM, page: int, *, flush: bool = True) -> int | None:
        """Drop vm's mapping of `page`; returns the frame if nobody maps it any more (now free)."""
        assert vm.nested is not None
        frame = self.pmap[vm.vm_id].pop(page, None)
        vm.nested.unmap_page(page << PAGE_SHIFT)
        if flush:
            self._flush(vm)
        if frame is None:
            return None
        sharers = self.rmap[frame]
        sharers.discard((vm.vm_id, page))
        self.refs[frame] -= 1
        if self.refs[frame] == 0:
            del self.refs[frame], self.rmap[frame]
            self._forget_shared(frame)
            self._release(frame)
            return frame
        return None

    def _forget_shared(self, frame: int) -> None:
        digest = self.shared_hash.pop(frame, None)
        if digest is not None and self.shared.get(digest) == frame:
            del self.shared[digest]

    def _flush(self, vm: VM) -> None:
        """Invalidate vm's cached translations (INVEPT): the TLB entries tagged with its VPID."""
        mmu = self.hv.machine.mmu
        if vm is self.hv.current:
            mmu.flush_all("ept")
        else:
            mmu.flush_vpid(vm.vm_id)

    def _used(self) -> None:
        self.counters["host_frames_used"] = self.config.host_frames - len(self.free)

    def back(self, vm: VM, page: int, data: bytes | None, why: str) -> bool:
        """Give guest `page` a private frame holding `data` (zeroes if None); False if the host is out of frames."""
        frame = self._take_frame(vm)
        if frame is None:
            return False
        base = frame << PAGE_SHIFT
        self.memory[base:base + PAGE_SIZE] = data if data is not None else ZERO_PAGE
        self.refs[frame] = 1
        self._map(vm, page, frame, True)
        self.counters["frames_backed"] += 1
        self._used()
        self._record(HostFrameMapped(self._step(), vm.vm_id, page << PAGE_SHIFT, base, why))
        return True

    def load(self, vm: VM, image: bytes | bytearray) -> None:
        """Back every page of a freshly loaded guest image that is not all zeroes (the rest arrive on touch)."""
        for page in range(len(image) // PAGE_SIZE):
            chunk = bytes(image[page * PAGE_SIZE:(page + 1) * PAGE_SIZE])
            if chunk != ZERO_PAGE and not self.back(vm, page, chunk, "load"):
                raise MemoryError(f"the host's {self.config.host_frames} frames cannot hold {vm.name}'s boot image")

    # ------------------------------------------------------------------ EPT violations
    def violation(self, vm: VM, gpa: int, write: bool, present: bool) -> bool:
        """An EPT violation on `vm`: back an untouched page or break a copy-on-write share. True if fixed."""
        page = gpa >> PAGE_SHIFT
        if gpa >= vm.size or vm.stop_reason is not None:
            return False  # outside the VM: the machine check stops it
        if present and write:
            return self._break_share(vm, page)
        if present:
            return False
        why = "demand"
        if page in self.balloon[vm.vm_id]:
            why = "balloon-touch"  # the driver gave this page away yet the guest touched it: back it again
            self.balloon[vm.vm_id].discard(page)
        self.hv.charge_ept_violation(vm, gpa, "EPT violation: first touch of a guest page")
        if self.back(vm, page, None, why):
            return True
        self._no_frame(vm, gpa)
        return False

    def _no_frame(self, vm: VM, gpa: int) -> None:
        """No frame for vm: it waits while balloons elsewhere give memory back, or fails if nobody can."""
        if self.config.reclaim_interval and any(other.ready and self.driver[other.vm_id]
                                                for other in self.hv.vms if other is not vm):
            vm.waiting_for_memory = gpa
            self.counters["memory_waits"] += 1
            self.reclaim()
            self._record(BalloonChange(self._step(), vm.vm_id, "wait", gpa, len(self.balloon[vm.vm_id]),
                                       self.target[vm.vm_id]))
            return
        self._out_of_memory(vm, gpa)

    def wake_waiters(self) -> None:
        """Let VMs waiting for memory retry once a frame is free; fail them if no VM is left to give one back."""
        waiting = [vm for vm in self.hv.vms if vm.waiting_for_memory >= 0 and vm.stop_reason is None]
        if not waiting:
            return
        if self.free:
            for vm in waiting:
                vm.waiting_for_memory = -1
            return
        if not any(vm.ready and self.driver[vm.vm_id] for vm in self.hv.vms):
            for vm in waiting:
                gpa, vm.waiting_for_memory = vm.waiting_for_memory, -1
                self._out_of_memory(vm, gpa)

    def _break_share(self, vm: VM, page: int) -> bool:
        old = self.pmap[vm.vm_id][page]
        self.hv.charge_ept_violation(vm, page << PAGE_SHIFT, "EPT violation: write to a copy-on-write shared page")
        if self.refs[old] == 1:  # the last sharer: keep the frame, make it writable again
            self._forget_shared(old)
            self._map(vm, page, old, True)
            new = old
        else:
            frame = self._take_frame(vm)
            if frame is None:
                self._no_frame(vm, page << PAGE_SHIFT)
                return False
            data = self._frame_bytes(old)
            self.memory[frame << PAGE_SHIFT:(frame + 1) << PAGE_SHIFT] = data
            self.refs[old] -= 1
            self.rmap[old].discard((vm.vm_id, page))
            self.refs[frame] = 1
            self._map(vm, page, frame, True)
            new = frame
        self.counters["cow_breaks"] += 1
        self._used()
        self._record(CowBreak(self._step(), vm.vm_id, page << PAGE_SHIFT, old << PAGE_SHIFT, new << PAGE_SHIFT,
                              self.refs.get(old, 0) if new != old else 1))
        return True

    def retire(self, vm: VM) -> None:
        """vm stopped for good: give every frame it held back to the pool (keeping a copy of what it held)."""
        if vm.vm_id in self.final:
            return
        self.final[vm.vm_id] = self.guest_memory(vm)
        for page in sorted(self.pmap[vm.vm_id]):
            self._unmap(vm, page, flush=False)
        self._flush(vm)  # once, not per page
        self.balloon[vm.vm_id].clear()
        self.target[vm.vm_id], self.driver[vm.vm_id] = 0, False
        self._used()
        self.wake_waiters()

    def _out_of_memory(self, vm: VM, gpa: int) -> None:
        held = sum(len(pages) for pages in self.balloon)
        self.hv.stop_vm(vm, f"host out of memory: no free machine frame for guest-physical {gpa:#x} "
                            f"({self.config.host_frames} frames all in use; balloons hold {held} pages, "
                            f"sharing saves {self.saved_frames()}): stopped by the VMM", 5)

    # ------------------------------------------------------------------ content-based page sharing
    def scan(self, *, everything: bool = False) -> int:
        """Look at `share_batch` random backed guest pages (or all of them); returns frames freed."""
        candidates = [(vm_id, page) for vm_id, pmap in enumerate(self.pmap) for page in sorted(pmap)]
        if not everything:
            candidates = self.rng.sample(candidates, min(self.config.share_batch, len(candidates)))
        freed = 0
        for vm_id, page in candidates:
            freed += self._consider(vm_id, page)
        self._used()
        return freed

    def _consider(self, vm_id: int, page: int) -> int:
        frame = self.pmap[vm_id].get(page)
        if frame is None or self.refs[frame] > 1:
            return 0
        self.counters["scanned_pages"] += 1
        data = self._frame_bytes(frame)
        digest = page_hash(data)
        shared = self.shared.get(digest)
        if shared is not None and shared != frame:
            if self._frame_bytes(shared) != data:  # a hash match is only a hint: compare in full
                self.counters["hash_collisions"] += 1
                return 0
            self._merge(vm_id, page, frame, shared)
            return 1
        hint = self.hints.get(digest)
        if hint is not None and hint != (vm_id, page):
            hint_frame = self.pmap[hint[0]].get(hint[1])
            if hint_frame is None or self.refs.get(hint_frame) != 1:
                self.hints[digest] = (vm_id, page)  # stale hint: the page went away or is shared already
                return 0
            hint_data = self._frame_bytes(hint_frame)
            if hint_data != data:
                if page_hash(hint_data) == digest:
                    self.counters["hash_collisions"] += 1  # same hash, different bytes: never merged
                else:
                    self.hints[digest] = (vm_id, page)  # the hinted page changed since it was hashed
                return 0
            del self.hints[digest]
            self.shared[digest], self.shared_hash[hint_frame] = hint_frame, digest
            hint_vm = self.hv.vms[hint[0]]
            self._map(hint_vm, hint[1], hint_frame, False)  # the hinted page turns copy-on-write too
            self._merge(vm_id, page, frame, hint_frame)
            return 1
        self.hints[digest] = (vm_id, page)
        return 0

    def _merge(self, vm_id: int, page: int, frame: int, shared: int) -> None:
        vm = self.hv.vms[vm_id]
        self.pmap[vm_id].pop(page)
        del self.refs[frame], self.rmap[frame]
        self._release(frame)
        self.refs[shared] += 1
        self._map(vm, page, shared, False)
        self.counters["pages_shared"] += 1
        self._record(PageShared(self._step(), vm_id, page << PAGE_SHIFT, shared << PAGE_SHIFT, frame << PAGE_SHIFT,
                                self.refs[shared], self._frame_bytes(shared) == ZERO_PAGE))

    def saved_frames(self) -> int:
        """Frames page sharing saves right now: guest pages mapped minus frames used for them."""
        return sum(refs - 1 for refs in self.refs.values())

    # ------------------------------------------------------------------ ballooning
    def port_read(self, vm: VM, port: int) -> int:
        """The balloon device's registers, as the guest's driver reads them."""
        if port != PORT_BALLOON_TARGET:
            return UNMAPPED_READ
        self.driver[vm.vm_id] = True
        return self.target[vm.vm_id]

    def port_write(self, vm: VM, port: int, value: int) -> str:
        """The driver reports a page given to the balloon (inflate) or taken back (deflate)."""
        page, balloon = value >> PAGE_SHIFT, self.balloon[vm.vm_id]
        if value & (PAGE_SIZE - 1) or value >= vm.size:
            self.counters["balloon_refused"] += 1
            return f"balloon: refused {value:#x} (not a page-aligned guest-physical address of this VM)"
        if port == PORT_BALLOON_INFLATE:
            if page in balloon:
                self.counters["balloon_refused"] += 1
                return f"balloon: gPA {value:#x} is already in the balloon"
            balloon.add(page)
            freed = self._unmap(vm, page)
            self.counters["balloon_inflated"] += 1
            self._used()
            self._record(BalloonChange(self._step(), vm.vm_id, "inflate", value, len(balloon), self.target[vm.vm_id]))
            where = f"host frame {freed << PAGE_SHIFT:#x} freed" if freed is not None else "no frame behind it"
            return f"balloon inflate: guest gives gPA {value:#x} ({where})"
        if page not in balloon:
            self.counters["balloon_refused"] += 1
            return f"balloon: gPA {value:#x} is not in the balloon"
        balloon.discard(page)  # backed again by the next touch
        self.counters["balloon_deflated"] += 1
        self._record(BalloonChange(self._step(), vm.vm_id, "deflate", value, len(balloon), self.target[vm.vm_id]))
        return f"balloon deflate: guest takes back gPA {value:#x}"

    def set_target(self, vm: VM, pages: int) -> None:
        """Ask `vm`'s balloon driver to hold `pages` pages (it moves there at its own pace)."""
        pages = max(0, min(pages, vm.size // PAGE_SIZE))
        if pages != self.target[vm.vm_id]:
            self.target[vm.vm_id] = pages
            self._record(BalloonChange(self._step(), vm.vm_id, "target", -1, len(self.balloon[vm.vm_id]), pages))

    def reclaim(self) -> None:
        """Set balloon targets from free memory: inflate below the soft mark, deflate well above the high one."""
        total = self.config.host_frames
        soft = total * self.config.soft_free_percent // 100
        high = max(total * self.config.high_free_percent // 100, soft + 1)
        free = len(self.free)
        running = [vm for vm in self.hv.vms if vm.stop_reason is None and self.driver[vm.vm_id]]
        if not running:
            return
        if free < soft:  # ask each VM for its share of the shortfall, by how much memory it holds
            held = {vm.vm_id: len(self.pmap[vm.vm_id]) for vm in running}
            weight = sum(held.values()) or 1
            need = high - free
            for vm in running:
                share = -(-need * held[vm.vm_id] // weight)
                # On top of what the balloon holds now: one that cannot grow (the guest has nothing left to
                # give) is not asked for ever more.
                self.set_target(vm, max(self.target[vm.vm_id], len(self.balloon[vm.vm_id]) + share))
        elif free > 2 * high:  # plenty again: let balloons shrink
            spare = (free - 2 * high) // len(running)
            for vm in running:
                if self.target[vm.vm_id]:
                    self.set_target(vm, self.target[vm.vm_id] - spare)

    # ------------------------------------------------------------------ periodic work
    def next_due(self) -> int:
        """Host step at which the scanner or the reclaimer runs next (-1: never)."""
        due = [step for step in (self.next_scan, self.next_reclaim) if step >= 0]
        return min(due) if due else -1

    def tick(self, steps: int) -> None:
        """Run the scanner and the reclaimer if their time has come (called between host steps)."""
        if 0 <= self.next_scan <= steps:
            self.scan()
            self.next_scan = steps + self.config.share_interval
        if 0 <= self.next_reclaim <= steps:
            self.reclaim()
            self.next_reclaim = steps + self.config.reclaim_interval

    # ------------------------------------------------------------------ views
    def owner_labels(self) -> dict[int, str]:
        """Host frame -> "vm0", "vm1", ... or "shared" for the frames of the pool in use."""
        labels = {}
        for frame, sharers in self.rmap.items():
            labels[frame] = "shared" if len(sharers) > 1 else f"vm{next(iter(sharers))[0]}"
        return labels

    def guest_memory(self, vm: VM) -> bytes:
        """vm's guest-physical memory as the guest sees it: untouched and ballooned pages read as zeroes."""
        if vm.vm_id in self.final:
            return self.final[vm.vm_id]
        memory = bytearray(vm.size)
        for page, frame in self.pmap[vm.vm_id].items():
            memory[page * PAGE_SIZE:(page + 1) * PAGE_SIZE] = self.memory[frame << PAGE_SHIFT:(frame + 1) << PAGE_SHIFT]
        return bytes(memory)

    def _step(self) -> int:
        return self.hv.machine.sink.step

    def _record(self, event: Any) -> None:
        events = self.hv.machine.sink.events
        if events is not None:
            events.append(event)

    # ------------------------------------------------------------------ snapshots
    def state(self) -> tuple[Any, ...]:
        """Everything outside host memory, for snapshots (the frames' contents are in memory)."""
        return (tuple(self.free), tuple(tuple(sorted(p.items())) for p in self.pmap), tuple(sorted(self.refs.items())),
                tuple(sorted((f, tuple(sorted(s))) for f, s in self.rmap.items())), tuple(sorted(self.shared.items())),
                tuple(sorted(self.hints.items())), tuple(tuple(sorted(b)) for b in self.balloon), tuple(self.target),
                tuple(self.driver), self.rng.getstate(), self.next_scan, self.next_reclaim,
                tuple(sorted(self.counters.items())), tuple(sorted(self.final.items())))

    def restore(self, state: tuple[Any, ...]) -> None:
        """Undo to a snapshot's state."""
        (free, pmap, refs, rmap, shared, hints, balloon, target, driver, rng, self.next_scan, self.next_reclaim,
         counters, final) = state
        self.final = dict(final)
        self.free = list(free)
        self.pmap = [dict(p) for p in pmap]
        self.refs = dict(refs)
        self.rmap = {f: set(s) for f, s in rmap}
        self.shared = dict(shared)
        self.shared_hash = {frame: digest for digest, frame in self.shared.items()}
        self.hints = dict(hints)
        self.balloon = [set(b) for b in balloon]
        self.target, self.driver = list(target), list(driver)
        self.rng.setstate(rng)
        self.counters = dict(counters)

