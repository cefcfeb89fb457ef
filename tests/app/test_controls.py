"""Every control, through its action (fast); tests/app/test_keys.py proves the keys reach them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input, Static

from engine.machine import Machine
from tests.app.demo_machine import USER_VA, loop_machine
from vizvm.app import VizVMApp
from vizvm.commands import MachineCommands, command_entries
from vizvm.scenarios import machine_screen, wait_stopped
from vizvm.screens.dialogs import ErrorDialog, EventFilterDialog, GoToStepDialog
from vizvm.screens.help import HelpScreen
from vizvm.screens.load import LoadProgramDialog
from vizvm.screens.machine import PANEL_IDS, MachineScreen
from vizvm.widgets.code import CodePanel
from vizvm.widgets.cpu import CpuPanel
from vizvm.widgets.event_log import EventLog
from vizvm.widgets.scrubber import Scrubber
from vizvm.widgets.timeline import TrapTimeline

SIZE = (160, 50)


async def test_step_back_and_panels_follow(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        for _ in range(3):
            screen.action_step()
        await pilot.pause()
        assert screen.bridge.machine.steps == 3
        code, cpu = screen.query_one(CodePanel), screen.query_one(CpuPanel)
        assert code.state is not None and code.state.pc == screen.bridge.machine.cpu.pc
        assert cpu.state is not None and "pc" in cpu.state.changed
        assert screen.query_one(Scrubber).position == (3, 3)
        screen.action_step_back()
        await pilot.pause()
        assert screen.bridge.machine.steps == 2
        assert screen.query_one(Scrubber).position == (2, 3)


async def test_run_and_pause_stay_responsive_on_an_endless_guest(app_for: Callable[[Machine], VizVMApp]) -> None:
    app = app_for(loop_machine())
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.action_toggle_run()
        await pilot.pause(0.3)
        assert screen.bridge.running and screen.bridge.machine.steps > 10_000
        screen.action_toggle_panel(2)  # the app still handles input while running
        await pilot.pause()
        assert not screen.query_one(CpuPanel).display
        screen.action_toggle_run()
        await pilot.pause()
        assert not screen.bridge.running
        assert screen.query_one(EventLog).state is not None


async def test_run_until_trap_page_fault_io_and_continue(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        bridge = screen.bridge
        for goal, words in (("trap", "system call"), ("io", "I/O"), ("page-fault", "page fault")):
            screen.action_run_until(goal)
            await wait_stopped(pilot)
            assert words in bridge.last_stop
        bridge.toggle_breakpoint(USER_VA + 0x30)
        screen.action_run_until("breakpoint")
        await wait_stopped(pilot)
        assert bridge.machine.cpu.pc == USER_VA + 0x30


async def test_step_out_of_a_handler(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_run_until("trap")
        await wait_stopped(pilot)
        assert screen.bridge.machine.cpu.ring == 0
        screen.action_step_out()
        await wait_stopped(pilot)
        assert screen.bridge.machine.cpu.ring == 3
        assert "returned" in screen.bridge.last_stop


async def test_go_to_step_dialog(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_go_to_step()
        await pilot.pause()
        assert isinstance(demo_app.screen, GoToStepDialog)
        demo_app.screen.query_one(Input).value = "40"
        await demo_app.screen.query_one(Input).action_submit()
        await wait_stopped(pilot)
        assert screen.bridge.machine.steps == 40
        screen.action_go_to_step()
        await pilot.pause()
        demo_app.screen.query_one(Input).value = "12"
        await demo_app.screen.query_one(Input).action_submit()
        await pilot.pause()
        assert screen.bridge.machine.steps == 12


async def test_scrubber_and_timeline_jump(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_toggle_run()
        await wait_stopped(pilot)
        end = screen.bridge.machine.steps
        await pilot.click(Scrubber, offset=(26, 0))  # the left end of the bar
        await pilot.pause()
        assert screen.bridge.machine.steps == 0
        screen.query_one(Scrubber).action_to_end()
        await pilot.pause()
        assert screen.bridge.machine.steps == end
        timeline = screen.query_one(TrapTimeline)
        assert timeline.state is not None and timeline.state.transitions
        timeline.action_select(-1)
        timeline.action_jump()
        await pilot.pause()
        chosen = timeline.state.transitions[timeline.selected]
        assert screen.bridge.machine.steps == chosen.step + 1


async def test_reset_speed_cumulative_and_breakpoint(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_step()
        screen.action_toggle_cumulative()
        screen.action_step()
        await pilot.pause()
        assert screen.query_one(CpuPanel).state.cumulative  # type: ignore[union-attr]
        screen.action_toggle_breakpoint()
        await pilot.pause()
        assert screen.bridge.machine.cpu.pc in screen.bridge.breakpoints
        speed = screen.bridge.speed_index
        screen.action_speed(-1)
        assert screen.bridge.speed_index == speed - 1
        screen.action_reset()
        await pilot.pause()
        assert screen.bridge.machine.steps == 0


async def test_code_panel_click_toggles_a_breakpoint(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        code = screen.query_one(CodePanel)
        await pilot.pause()
        row = code._rows.index(screen.bridge.machine.cpu.pc)
        await pilot.click(CodePanel, offset=(3, row + 1))  # +1: the top border
        await pilot.pause()
        assert screen.bridge.breakpoints == {screen.bridge.machine.cpu.pc}


async def test_load_dialog_shows_assembler_errors_then_loads(demo_app: VizVMApp, tmp_path: Path) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text("_start:\n    mov r9, 1\n    frob r1\n")
    good = tmp_path / "good.s"
    good.write_text("_start:\n    mov r1, 7\n    hlt\n")
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_load_program()
        await pilot.pause()
        dialog = demo_app.screen
        assert isinstance(dialog, LoadProgramDialog)
        dialog.query_one("#program", Input).value = str(bad)
        dialog.submit()
        await pilot.pause()
        assert isinstance(demo_app.screen, ErrorDialog)
        assert "bad.s:2" in demo_app.screen.text and "error" in demo_app.screen.text
        demo_app.screen.action_close()
        await pilot.pause()
        dialog.query_one("#program", Input).value = str(good)
        dialog.submit()
        await pilot.pause()
        assert isinstance(demo_app.screen, MachineScreen)
        assert screen.bridge.title == "good (bare metal)" and screen.bridge.machine.steps == 0


async def test_load_a_shipped_sample_from_the_list(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_load_program()
        await pilot.pause()
        dialog = demo_app.screen
        assert isinstance(dialog, LoadProgramDialog)
        dialog._try("pagefault", True)  # what picking it from the list does
        await pilot.pause()
        assert screen.bridge.title == "kernel + pagefault"


async def test_help_lists_every_binding(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        demo_app.action_help()
        await pilot.pause()
        assert isinstance(demo_app.screen, HelpScreen)
        described = {entry.description for entry in demo_app.screen.entries}
        for binding in MachineScreen.BINDINGS:
            assert binding.description in described  # type: ignore[union-attr]
        assert {"Help", "Theme", "Screenshot", "Command palette", "Quit"} <= described
        demo_app.screen.action_close()
        await pilot.pause()
        assert isinstance(demo_app.screen, MachineScreen)


async def test_palette_offers_every_command_and_runs_it(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        entries = command_entries(demo_app, screen)
        assert {"Step", "Next trap", "Step out", "Load", "Theme"} <= {e.description for e in entries}
        provider = MachineCommands(screen)
        hits = [hit async for hit in provider.search("step out")]
        assert hits and "Step out" in str(hits[0].text)
        step = next(e for e in entries if e.description == "Step")
        await provider._run(step)
        await pilot.pause()
        assert screen.bridge.machine.steps == 1


async def test_themes_and_screenshot(app_for: Callable[[Machine], VizVMApp], tmp_path: Path) -> None:
    from tests.app.demo_machine import demo_machine
    from vizvm.app import make_app

    app = make_app(demo_machine(), screenshot_dir=str(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        for theme in ("vizvm-projector-dark", "vizvm-projector-light"):
            app.theme = theme
            await pilot.pause()
        app.action_change_theme()
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        app.action_save_svg()
        await pilot.pause()
        saved = list(tmp_path.glob("vizvm-step-*.svg"))
        assert saved and saved[0].read_text().startswith("<svg")


async def test_panels_hide_maximize_resize(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        for number, panel_id in PANEL_IDS.items():
            shown = screen.query_one(f"#{panel_id}").display  # the VMM panel starts hidden natively
            screen.action_toggle_panel(number)
            await pilot.pause()
            assert screen.query_one(f"#{panel_id}").display != shown
            screen.action_toggle_panel(number)
        screen.query_one("#mapper").focus()
        await pilot.pause()
        before = screen.widths["mapper"]
        screen.action_resize(1, 1)
        assert screen.widths["mapper"] == before + 1
        screen.action_toggle_maximize()
        await pilot.pause()
        assert screen.maximized is screen.query_one("#mapper")
        screen.action_toggle_maximize()
        screen.action_reset_layout()
        await pilot.pause()
        assert screen.maximized is None and screen.widths["mapper"] == before


async def test_event_filter_dialog(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_run_until("trap")
        await wait_stopped(pilot)
        screen.action_filter_events()
        await pilot.pause()
        dialog = demo_app.screen
        assert isinstance(dialog, EventFilterDialog)
        dialog.only_traps()
        dialog.submit()
        await pilot.pause()
        log = screen.query_one(EventLog)
        assert log.state is not None and {e.kind for e in log.state.events} <= {"trap", "iret", "irq", "halt"}


async def test_compact_and_too_small_layouts(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=(100, 30)) as pilot:
        screen = machine_screen(demo_app)
        await pilot.pause()
        assert screen.compact and not screen.query_one("#events").display
        assert all(screen.query_one(f"#{p}").display for p in ("code", "cpu", "mapper", "timeline", "io"))
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        message = screen.query_one("#too-small", Static)
        assert message.display and "at least 80×24" in str(message.render())
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert not screen.compact and screen.query_one("#events").display
