"""The memory mapper under a VMM, driven by keys: address-space labels, walk sub-steps, and its snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from rich.style import Style
from textual.pilot import Pilot

from engine.machine import Machine, MachineConfig
from engine.systems import build_system
from tests.app.demo_machine import demo_machine, demo_program
from tests.app.test_snapshots import SnapCompare, with_no_blink
from vizvm.app import make_app
from vizvm.memview import HostFrames
from vizvm.scenarios import SCENARIOS, machine_screen, wait_stopped
from vizvm.widgets.mapper import FRAME_CHARS, MemoryMapper
from vizvm.widgets.walk_grid import BALLOON, host_frames_text

FIRST_NESTED_WALK = 9
"""The demo's first step with guest paging on (a cold fetch walk: 14 references, then a push: 14 more)."""


def nested_demo() -> Machine:
    """The demo as a bare guest under hardware assist with nested paging (2 guest levels on 4 host levels)."""
    return cast(Machine, build_system("hw", bare=demo_program(), config=MachineConfig(memory_size=1 << 20),
                                      memory_mode="nested"))


def _plain(mapper: MemoryMapper) -> str:
    """What the mapper's body shows, as plain text."""
    import io

    from rich.console import Console

    assert mapper.state is not None
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(mapper.build(mapper.state))
    return console.export_text()


async def test_labels_are_va_pa_natively_and_gva_gpa_hpa_under_a_vmm() -> None:
    """The same walk: VA/PA on bare metal; gVA, gPA and hPA (and no bare VA/PA) under nested paging."""
    for machine, virtual in ((demo_machine(), False), (nested_demo(), True)):
        app = make_app(machine)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            screen = machine_screen(app)
            screen.bridge.go_to(FIRST_NESTED_WALK + 1)
            await pilot.pause()
            text = _plain(screen.query_one(MemoryMapper))
            title = str(screen.query_one(MemoryMapper).border_title)
            if virtual:
                assert "gVA 0x" in text and "gPA 0" in text and "hPA 0" in text
                assert " VA 0x" not in text and "PA 0x" not in text.replace("gPA 0x", "").replace("hPA 0x", "")
                assert "gVA → gPA → hPA" in title
                assert "2-D walk: 14 references" in text
            else:
                assert "VA 0x" in text and "PA 0x" in text
                assert "gVA" not in text and "gPA" not in text and "hPA" not in text
                assert "VA → PA" in title


async def test_walk_step_reveals_one_reference_per_press_then_steps_on() -> None:
    """w: the first press runs the instruction and shows reference 1; each press one more; then the next step."""
    app = make_app(nested_demo())
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen = machine_screen(app)
        screen.bridge.go_to(FIRST_NESTED_WALK)
        await pilot.pause()
        screen.query_one(MemoryMapper).focus()
        await pilot.press("w")
        bridge = screen.bridge
        assert bridge.substep is not None
        total = bridge.substep.total
        assert (bridge.substep.step, bridge.substep.revealed, total) == (FIRST_NESTED_WALK, 1, 28)
        assert bridge.machine.steps == FIRST_NESTED_WALK + 1
        for expected in range(2, 5):
            await pilot.press("w")
            assert bridge.substep.revealed == expected
        mapper = screen.query_one(MemoryMapper)
        assert mapper.state is not None and mapper.state.grid is not None
        shown = [c.number for row in mapper.state.grid.cells for c in row if c.read is not None]
        assert shown == [1, 2, 3, 4]
        assert "reference 4 of 28, step 9" in str(screen.query_one("#status").render())
        for _ in range(total - 4):
            await pilot.press("w")
        assert bridge.substep.revealed == total and bridge.machine.steps == FIRST_NESTED_WALK + 1
        await pilot.press("w")  # after the last reference: a normal step (the next instruction)
        assert bridge.machine.steps == FIRST_NESTED_WALK + 2
        assert bridge.substep is None or bridge.substep.step == FIRST_NESTED_WALK + 1


@pytest.mark.parametrize("key", ["s", "b", "R", "r"])
async def test_any_other_step_command_finishes_the_sub_step(key: str) -> None:
    """Step, back, reset or run while revealing: the sub-step ends and the mapper shows whole walks again."""
    app = make_app(nested_demo())
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen = machine_screen(app)
        screen.bridge.go_to(FIRST_NESTED_WALK)
        await pilot.pause()
        await pilot.press("w", "w")
        assert screen.bridge.substep is not None and screen.bridge.substep.revealed == 2
        await pilot.press(key)
        if key == "r":
            await pilot.press("r")  # pause again
        await pilot.pause()
        assert screen.bridge.substep is None
        mapper = screen.query_one(MemoryMapper)
        assert mapper.state is not None and mapper.state.substep is None
        assert "sub-step" not in str(screen.query_one("#status").render())


async def test_walk_step_is_in_help_and_the_palette() -> None:
    """Like every command: a binding, an F1 help line and a palette entry."""
    from vizvm.commands import command_entries

    app = make_app(demo_machine())
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        entries = command_entries(app, machine_screen(app))
        walk = [e for e in entries if e.action == "substep"]
        assert walk and walk[0].keys == "w" and walk[0].description == "Walk step"


def test_host_frames_mark_shared_frames_and_ballooned_pages() -> None:
    """Shared host frames show their refcount; ballooned gPA pages a distinct glyph; the legend names both."""
    host = HostFrames(("vmm", "vm0", "shared", "vm1", "vm0 host tables", "free"), {2: 3}, (4, 4),
                      (frozenset({1}), frozenset({0, 3})), 0)
    styles = {name: Style() for name in (
        "heading", "muted", "owner-vmm", "owner-vm0", "owner-vm1", "owner-vm2", "owner-tables", "owner-free",
        "owner-shared", "balloon", *(f"frame-{o}" for o in FRAME_CHARS))}
    text = host_frames_text(host, styles, 64, None, FRAME_CHARS).plain
    assert "hPA 000000 M031H·" in text
    assert f"gPA 000000 ·{BALLOON}··" in text and f"gPA 000000 {BALLOON}··{BALLOON}" in text
    assert "shared: refcount" in text and "ballooned gPA page" in text and "vm1 memory" in text


async def test_an_overcommitted_host_shows_its_pool_shared_frames_and_balloons() -> None:
    """Two VMs on 120 frames: the title says so, the map shows the pool, shared frames and ballooned pages,
    all as the engine holds them."""
    from vizvm.scenarios import OVERCOMMIT_STEP

    app = make_app(demo_machine())
    async with app.run_test(size=(160, 50)) as pilot:
        await SCENARIOS["overcommit"](pilot)
        screen = machine_screen(app)
        host = screen.bridge.machine
        assert host.steps == OVERCOMMIT_STEP
        assert screen.bridge.title == "2 VMs: different guests · hardware assist · overcommit: 120 frames"
        text = _plain(screen.query_one(MemoryMapper))
        hostmem = host.hostmem  # type: ignore[attr-defined]
        used = hostmem.config.host_frames - hostmem.free_frames
        assert f"pool 120 frames for 512 gPA pages · {used} used · {hostmem.free_frames} free" in text
        ballooned = [len(host.ballooned_pages(vm.vm_id)) for vm in host.vms]  # type: ignore[attr-defined]
        assert sum(ballooned) > 0 and f"vm0 gPA pages · {ballooned[0]} ballooned" in text.replace(" (running)", "")
        assert text.count(BALLOON) >= sum(ballooned)
        assert host.frame_refcounts() and "shared: refcount" in text  # type: ignore[attr-defined]
        running = host.current  # type: ignore[attr-defined]
        io = screen.bridge.io_state()  # the console panel shows the running VM's console, and says whose
        assert (io.whose, io.console) == (f"vm{running.vm_id}", running.console_text)
        screen.bridge.go_to(OVERCOMMIT_STEP + 200_000)  # both VMs power off and give their frames back
        await wait_stopped(pilot)
        assert host.halted
        code = screen.bridge.code_state()
        assert [line.text for line in code.lines] == [f"(vm{host.current.vm_id} is off: its frames are back "  # type: ignore[attr-defined]
                                                      "in the host pool)"]


class TestMapperSnapshots:
    """The mapper under a VMM at 160x50: the nested grid mid-walk, the shadow view, the host frame map."""

    @pytest.mark.parametrize("name", ["nested-walk", "shadow-fill", "host-frames", "overcommit"])
    def test_state(self, snap_compare: SnapCompare, name: str) -> None:
        """A cold 2-D walk shown up to reference 7; a shadow entry a trap just filled; host frames by owner;
        two overcommitted VMs with shared frames and balloons."""
        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(SCENARIOS[name]), terminal_size=(160, 50))

    def test_compact_nested_walk(self, snap_compare: SnapCompare) -> None:
        """At 100x30 the mapper (shown with 3: the VMM panel takes its place) maximized keeps the grid readable."""
        async def run_before(pilot: Pilot[None]) -> None:
            await SCENARIOS["nested-walk"](pilot)
            await pilot.press("3")
            machine_screen(pilot.app).query_one(MemoryMapper).focus()
            await pilot.press("m")

        app = make_app(demo_machine())
        assert snap_compare(app, run_before=with_no_blink(run_before), terminal_size=(100, 30))


async def test_lesson_stops_show_the_walk_up_to_the_revealed_reference(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    """Lesson 11 in the player: the mapper's grid and the status line follow the lesson's sub-steps."""
    from tests.app.lesson_helpers import lesson_screen
    from vizvm.widgets.question import QuestionBox

    monkeypatch.setenv("VIZVM_DATA_DIR", str(tmp_path / "data"))
    app = make_app(home=True, lesson="11")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot, limit=60.0)
        box = screen.query_one(QuestionBox)
        box.post_message(QuestionBox.Answered("24"))
        await pilot.pause()
        shown = []
        for answer in (None, "20"):
            screen.action_lesson_next()
            await pilot.pause()
            if answer is not None:
                screen.query_one(QuestionBox).post_message(QuestionBox.Answered(answer))
                await pilot.pause()
            await pilot.pause()
            sub = screen.bridge.substep
            mapper = screen.query_one(MemoryMapper)
            assert sub is not None and mapper.state is not None and mapper.state.grid is not None
            shown.append((sub.revealed, sub.total, mapper.state.grid.current))
        assert shown == [(1, 24, 1), (5, 24, 5)]
        assert "reference 5 of 24" in str(screen.query_one("#status").render())
