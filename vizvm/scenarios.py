"""Named app states shared by the snapshot tests and scripts/make_screenshots.py.

Each scenario drives a running app (through a Pilot) from its start to one state a user sees. They
call actions directly (as a user's key would) and wait for runs to stop, so the result never depends
on timing. `SCENARIOS` lists them with the file name each screenshot gets.
"""

from __future__ import annotations

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


async def wait_stopped(pilot: Pilot[None], limit: float = 30.0) -> None:
    """Let a run finish (it stops at its goal, a breakpoint or a halt)."""
    screen = machine_screen(pilot.app)
    waited = 0.0
    while screen.bridge.running and waited < limit:
        await pilot.pause(0.02)
        waited += 0.02
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


SCENARIOS: dict[str, Scenario] = {
    "boot": boot, "trap-taken": trap_taken, "page-walk": page_walk, "halted": halted, "help": help_screen,
    "palette": palette,
}
"""Scenario name (also the screenshot file name) -> scenario."""
