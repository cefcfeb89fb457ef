"""Named app states shared by the snapshot tests and scripts/make_screenshots.py.

Each scenario drives a running app (through a Pilot) from its start to one state a user sees. They
call actions directly (as a user's key would) and wait for runs to stop, so the result never depends
on timing. `SCENARIOS` lists them with the file name each screenshot gets.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input

from vizvm.screens.machine import MachineScreen
from vizvm.widgets.timeline import TrapTimeline

Scenario = Callable[[Pilot[None]], Awaitable[None]]


def machine_screen(app: App[None]) -> MachineScreen:
    """The machine screen, wherever it is on the screen stack."""
    for screen in reversed(app.screen_stack):
        if isinstance(screen, MachineScreen):
            return screen
    raise LookupError("no machine screen is open")


def no_blink(app: App[None]) -> None:
    """Stop every text cursor blinking so screenshots are deterministic."""
    for screen in app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False


async def wait_stopped(pilot: Pilot[None], limit: float = 300.0) -> None:
    """Let a run finish (it stops at its goal, a breakpoint or a halt).

    The limit is wall-clock seconds and generous: on a loaded machine a run takes longer, but it
    always ends in the same state, so waiting longer never changes a snapshot.
    """
    screen = machine_screen(pilot.app)
    deadline = time.monotonic() + limit
    while screen.bridge.running and time.monotonic() < deadline:
        await pilot.pause(0.02)
    if screen.bridge.running:
        raise TimeoutError(f"the run did not stop within {limit} s")
    await pilot.pause()


async def boot(pilot: Pilot[None]) -> None:
    """The screen as it opens: step 0 of the shipped kernel."""
    await pilot.pause()


async def trap_taken(pilot: Pilot[None]) -> None:
    """Run until the first trap: a user program's system call has just entered the kernel."""
    machine_screen(pilot.app).action_run_until("trap")
    await wait_stopped(pilot)


async def page_walk(pilot: Pilot[None]) -> None:
    """The first user instruction fetch: a TLB miss and a two-level walk (reached via the timeline)."""
    await trap_taken(pilot)
    timeline = machine_screen(pilot.app).query_one(TrapTimeline)
    timeline.focus()
    await pilot.pause()
    timeline.action_select(-1)  # the iret into user mode, just before the system call
    timeline.action_jump()
    await pilot.pause()
    machine_screen(pilot.app).action_step()
    await pilot.pause()


async def halted(pilot: Pilot[None]) -> None:
    """Run to the end: every process exited and the kernel powered off."""
    machine_screen(pilot.app).action_toggle_run()
    await wait_stopped(pilot)


async def help_screen(pilot: Pilot[None]) -> None:
    """F1: every key."""
    await pilot.press("f1")
    await pilot.pause()


async def palette(pilot: Pilot[None]) -> None:
    """Ctrl+P with 'trap' typed: commands found by name."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    no_blink(pilot.app)
    await pilot.press(*"trap")
    await pilot.pause(0.3)
    no_blink(pilot.app)
    await pilot.pause()


async def _virtualized_at(pilot: Pilot[None], mode: str, reason: str, counter: str, after: int = 1) -> None:
    """Run the loaded program under `mode`, `after` steps past its first exit to the VMM whose reason starts
    with `reason`."""
    from engine.events import Event, VmExit
    from vizvm.screens.vmm_actions import switch_mode
    from vizvm.vmm_view import first_step

    screen = machine_screen(pilot.app)
    switch_mode(screen, mode)
    await pilot.pause()
    pilot.app.clear_notifications()  # the "Running ... from step 0" toast would cover the VMM panel
    await pilot.pause()

    def matches(event: Event) -> bool:
        return isinstance(event, VmExit) and event.reason.startswith(reason)

    step = first_step(screen.bridge.machine, matches, counter)
    if step is not None:
        screen.bridge.go_to(step + after)
    await wait_stopped(pilot)


async def trap_syscall(pilot: Pilot[None]) -> None:
    """Trap-and-emulate: a user program's system call has just gone to the VMM and been reflected."""
    await _virtualized_at(pilot, "trap", "system call", "reflected")


async def bt_cache(pilot: Pilot[None]) -> None:
    """Binary translation: the system-call handler's first block has just been translated and entered."""
    await _virtualized_at(pilot, "bt", "system call", "reflected", after=2)


async def hw_exit(pilot: Pilot[None]) -> None:
    """Hardware assist: the guest kernel's first port write has just caused a VM exit."""
    await _virtualized_at(pilot, "hw", "I/O instruction", "vmm_entries")


async def compare_divergence(pilot: Pilot[None]) -> None:
    """The compare screen on the loaded program, at the step where trap-and-emulate diverges."""
    from vizvm.screens.compare import CompareScreen

    machine_screen(pilot.app).action_compare_modes()
    await compare_ready(pilot)
    screen = pilot.app.screen
    if isinstance(screen, CompareScreen):
        screen.action_divergence()
    await pilot.pause()


async def compare_ready(pilot: Pilot[None]) -> None:
    """Wait until the compare screen has run every mode to its end (a worker thread does)."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def popf_compare(pilot: Pilot[None]) -> None:
    """The POPF lesson's kernel fragment in every mode, at the popf that trap-and-emulate cannot see."""
    from engine.asm import assemble
    from engine.lesson import load_lesson
    from engine.machine import Machine
    from vizvm.locations import find_lesson

    lesson = load_lesson(find_lesson("05"))
    assert lesson.machine.source is not None
    machine = Machine()
    machine.load_bare(assemble(lesson.machine.source, "popf.s"))
    machine_screen(pilot.app).load_machine(machine)
    await pilot.pause()
    await compare_divergence(pilot)


def _first_step(system: object, wanted: Callable[[object], bool], limit: int = 200_000) -> int | None:
    """The first step of a fresh copy of `system` whose events satisfy `wanted` (recorded, so keep it short)."""
    from engine.timetravel import TimeMachine
    from vizvm.modes import rebuild
    from vizvm.vmm_view import mode_of

    copy = rebuild(system, mode_of(system))
    tm = TimeMachine(copy)
    while not copy.halted and copy.steps < limit:
        result = tm.step()
        if wanted(result):
            return result.step
    return None


async def _under_memory(pilot: Pilot[None], mode: str, memory: str) -> MachineScreen:
    """Rebuild the loaded guest under `mode` with the VMM virtualizing memory by `memory`, at step 0."""
    from typing import cast

    from engine.machine import Machine
    from engine.systems import build_system
    from vizvm.modes import guest_setup

    screen = machine_screen(pilot.app)
    setup = guest_setup(screen.bridge.machine)
    if setup.bare is not None:
        system = build_system(mode, bare=setup.bare, config=setup.config, memory_mode=memory)
    else:
        system = build_system(mode, user_programs=setup.user_programs, config=setup.config, memory_mode=memory)
    screen.load_machine(cast(Machine, system))
    await pilot.pause()
    return screen


def _has_dimension(dimension: str) -> Callable[[object], bool]:
    from engine.events import PageWalkRead

    def wanted(result: object) -> bool:
        events = getattr(result, "events", ())
        return any(isinstance(e, PageWalkRead) and e.dimension == dimension for e in events) and any(
            isinstance(e, PageWalkRead) and e.dimension not in ("host", "native") and e.outcome == "leaf"
            for e in events)

    return wanted


async def _maximize_mapper(pilot: Pilot[None], end: bool = False) -> None:
    from vizvm.widgets.mapper import MemoryMapper

    screen = machine_screen(pilot.app)
    mapper = screen.query_one(MemoryMapper)
    mapper.focus()
    await pilot.pause()
    screen.action_toggle_maximize()
    await pilot.pause()
    if end:
        mapper.scroll_end(animate=False, immediate=True)
    await pilot.pause()


async def nested_walk(pilot: Pilot[None]) -> None:
    """Hardware assist with nested paging: a cold 2-D walk revealed by walk steps up to its 7th reference."""
    screen = await _under_memory(pilot, "hw", "nested")
    step = _first_step(screen.bridge.machine, _has_dimension("host"))
    if step is not None:
        screen.bridge.go_to(step)
    await wait_stopped(pilot)
    for _ in range(7):
        screen.action_substep()
    await pilot.pause()


async def shadow_fill(pilot: Pilot[None]) -> None:
    """Trap-and-emulate with shadow paging: a hidden fault's trap has just filled a shadow entry (mapper maximized)."""
    from engine.events import ShadowUpdate

    screen = await _under_memory(pilot, "trap", "shadow")

    def filled(result: object) -> bool:
        return any(isinstance(e, ShadowUpdate) and e.action == "fill" for e in getattr(result, "events", ()))

    step = _first_step(screen.bridge.machine, filled)
    if step is not None:
        screen.bridge.go_to(step + 1)
    await wait_stopped(pilot)
    await _maximize_mapper(pilot)


async def host_frames(pilot: Pilot[None]) -> None:
    """Nested paging: the host frame map by owner and the VM's gPA pages (mapper maximized, scrolled down)."""
    await nested_walk(pilot)
    screen = machine_screen(pilot.app)
    screen.action_step()
    await pilot.pause()
    await _maximize_mapper(pilot, end=True)


OVERCOMMIT_STEP = 470_000
"""Two overcommitted VMs (heap, hog on 120 frames): pages shared, balloons inflating under pressure."""


def overcommitted_host() -> object:
    """Lesson 13's host: vm0 runs heap and vm1 hog, on 120 machine frames for 512 guest pages."""
    from engine.hostmem import OvercommitConfig
    from engine.systems import build_system

    return build_system("hw", vms=[["heap"], ["hog"]], memory_mode="nested",
                        overcommit=OvercommitConfig(host_frames=120))


async def overcommit(pilot: Pilot[None]) -> None:
    """Two VMs on an overcommitted host: frames by owner, shared frames, ballooned pages (mapper maximized)."""
    from typing import cast

    from engine.machine import Machine

    screen = machine_screen(pilot.app)
    screen.load_machine(cast(Machine, overcommitted_host()))
    await pilot.pause()
    screen.bridge.go_to(OVERCOMMIT_STEP)
    await wait_stopped(pilot)
    await _maximize_mapper(pilot, end=True)


SCENARIOS: dict[str, Scenario] = {
    "boot": boot, "trap-taken": trap_taken, "page-walk": page_walk, "halted": halted, "help": help_screen,
    "palette": palette, "trap-syscall": trap_syscall, "bt-cache": bt_cache, "hw-exit": hw_exit,
    "compare-divergence": compare_divergence, "popf-compare": popf_compare, "nested-walk": nested_walk,
    "shadow-fill": shadow_fill, "host-frames": host_frames, "overcommit": overcommit,
}
"""Scenario name (also the screenshot file name) -> scenario."""
