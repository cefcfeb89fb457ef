"""The virtualization views through Pilot: mode selector, VMM lanes, the virtual CPU, the VMM panel, compare.

Actions are called directly (fast); one test per binding proves the keys reach them.
"""

from __future__ import annotations

import random
from typing import cast

from textual.widgets import OptionList

from engine.machine import Machine
from engine.vmm import Hypervisor
from tests.app.demo_machine import demo_machine
from tests.app.vmm_systems import DEMO_OUT_STEP, DEMO_SYSCALL_STEP, demo_system, popf_machine
from vizvm.app import VizVMApp, make_app
from vizvm.commands import MachineCommands, command_entries
from vizvm.scenarios import compare_ready, machine_screen, wait_stopped
from vizvm.screens.compare import CompareScreen
from vizvm.screens.machine import MachineScreen
from vizvm.screens.mode import ModeDialog
from vizvm.screens.vmm_actions import switch_mode
from vizvm.vmm_view import VMM_LANE
from vizvm.widgets.compare import ModeColumnView
from vizvm.widgets.cpu import CpuPanel
from vizvm.widgets.timeline import TrapTimeline
from vizvm.widgets.vmm import VmmPanel

SIZE = (160, 50)


def app_in(mode: str) -> VizVMApp:
    """The app on the demo guest under `mode`."""
    return make_app(cast(Machine, demo_system(mode)))


async def test_mode_selector_rebuilds_the_system_at_step_0(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        screen.action_step()
        assert not screen.query_one(VmmPanel).display  # natively there is no VMM to show
        screen.action_choose_mode()
        await pilot.pause()
        dialog = demo_app.screen
        assert isinstance(dialog, ModeDialog)
        options = dialog.query_one(OptionList)
        assert options.highlighted == 0  # native, the current mode
        options.highlighted = 1
        options.action_select()  # what enter does: trap-and-emulate
        await pilot.pause()
        system = screen.bridge.machine
        assert isinstance(system, Hypervisor) and system.mode == "trap"
        assert system.steps == 0 and len(screen.bridge.recording) == 0
        assert screen.bridge.title == "demo (bare metal) · trap-and-emulate"
        assert screen.query_one(VmmPanel).display and screen.has_class("-virtual")
        switch_mode(screen, "native")
        await pilot.pause()
        assert not isinstance(screen.bridge.machine, Hypervisor)
        assert not screen.query_one(VmmPanel).display


async def test_mode_and_compare_keys_palette_and_help(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        described = {entry.description for entry in command_entries(demo_app, screen)}
        assert {"Mode", "Compare modes", "VMM panel"} <= described
        hits = [hit async for hit in MachineCommands(screen).search("compare")]
        assert hits and "Compare modes" in str(hits[0].text)
        await pilot.press("v")
        assert isinstance(demo_app.screen, ModeDialog)
        await pilot.press("down", "down", "enter")  # binary translation
        await pilot.pause()
        assert getattr(screen.bridge.machine, "mode", "") == "bt"
        await pilot.press("V")
        await compare_ready(pilot)
        assert isinstance(demo_app.screen, CompareScreen)
        await pilot.press("s", "s", "b")
        assert demo_app.screen.session is not None and demo_app.screen.session.cursor == 1
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(demo_app.screen, MachineScreen)


async def test_trap_timeline_has_a_vmm_lane_and_the_four_syscall_transitions() -> None:
    app = app_in("trap")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.bridge.step(DEMO_SYSCALL_STEP + 1)
        await pilot.pause()
        state = screen.query_one(TrapTimeline).state
        assert state is not None
        assert state.lanes == {3: "guest user", 0: "guest kernel", VMM_LANE: "VMM"}
        syscall = next(t for t in state.transitions if t.label == "system call")
        assert (syscall.kind, syscall.from_ring, syscall.to_ring) == ("vm-exit", 3, VMM_LANE)
        assert syscall.step == DEMO_SYSCALL_STEP
        reflect = state.transitions[state.transitions.index(syscall) + 1]
        assert (reflect.kind, reflect.label, reflect.to_ring) == ("vm-entry", "reflect syscall", 0)
        screen.bridge.step(4)  # cmp, jz, out (emulated), iret: the return also traps to the VMM
        await pilot.pause()
        state = screen.query_one(TrapTimeline).state
        assert state is not None
        kinds = [(t.label, t.to_ring) for t in state.transitions if t.step > DEMO_SYSCALL_STEP]
        assert ("iret", VMM_LANE) in kinds and ("resume", 3) in kinds
        screen.query_one(TrapTimeline).focus()
        await pilot.press("left", "enter")  # jump to the exit before the last entry
        await pilot.pause()
        assert screen.bridge.machine.steps == state.transitions[-2].step + 1


async def test_cpu_panel_shows_the_virtual_cpu_beside_the_real_one() -> None:
    app = app_in("trap")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.bridge.step(DEMO_SYSCALL_STEP + 1)  # inside the guest kernel's system-call handler
        await pilot.pause()
        state = screen.query_one(CpuPanel).state
        assert state is not None and state.vcpu is not None
        rows = {row.name: row for row in state.vcpu.rows}
        assert (rows["ring"].real, rows["ring"].virtual, rows["ring"].differs) == ("1", "0", True)
        assert rows["idtr"].differs and rows["cr3"].real == rows["cr3"].virtual
        assert "≠" in str(screen.query_one(CpuPanel).render())
        switch_mode(screen, "hw")  # guest mode: the real CPU holds the guest's state
        screen.bridge.step(DEMO_SYSCALL_STEP + 1)
        await pilot.pause()
        state = screen.query_one(CpuPanel).state
        assert state is not None and state.vcpu is not None
        assert not any(row.differs for row in state.vcpu.rows)


async def test_run_until_trap_and_step_out_under_the_vmm() -> None:
    app = app_in("trap")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.action_run_until("trap")
        await wait_stopped(pilot)
        assert "exit to the VMM" in screen.bridge.last_stop and "lidt" in screen.bridge.last_stop
        screen.bridge.go_to(DEMO_SYSCALL_STEP + 2)
        await wait_stopped(pilot)
        screen.action_step_out()
        await wait_stopped(pilot)
        assert screen.bridge.last_stop.startswith("returned from the handler")
        screen.action_run_until("io")
        await pilot.pause()
        assert not screen.bridge.running


async def test_translation_cache_panel_under_bt() -> None:
    app = app_in("bt")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.bridge.step(3)
        await pilot.pause()
        panel = screen.query_one(VmmPanel)
        state = panel.state
        assert state is not None and state.mode == "bt" and state.block_count >= 1
        block = state.blocks[0]
        assert block.mark == "translated and entered" and block.guest_pc == 0x1000 and block.mark_step == 0
        assert any("call VMM" in line for line in block.listing)  # lidt became a callout
        text = str(panel.render())
        assert "translation cache" in text and "-> call VMM (privileged)" in text


async def test_vm_control_panel_shows_an_io_exit_under_hw() -> None:
    app = app_in("hw")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.bridge.step(DEMO_OUT_STEP + 1)
        await pilot.pause()
        state = screen.query_one(VmmPanel).state
        assert state is not None and {"IN", "OUT", "HLT"} <= set(state.exit_controls)
        assert state.exception_bitmap == ("page fault (14)",)
        last = state.last_exit
        assert last is not None and last.step == DEMO_OUT_STEP
        assert last.reason == "I/O instruction (port 0x10)" and last.via == "vm-exit"
        assert last.guest_pc == 0x2050 and "virtual console prints 'h'" in last.qualification
        assert ("I/O instruction (port 0x10)", 1) in state.reasons
        assert "VM-control structure" in str(screen.query_one(VmmPanel).render())


async def test_hypercalls_and_fidelity_in_the_vmm_panel() -> None:
    app = make_app(popf_machine())
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        switch_mode(screen, "trap")
        screen.bridge.step(8)
        await pilot.pause()
        state = screen.query_one(VmmPanel).state
        assert state is not None and [f.text for f in state.fidelity] == ["popf"]
        assert "fidelity violations  1" in str(screen.query_one(VmmPanel).render())


async def test_compare_screen_steps_every_mode_and_finds_the_popf_divergence() -> None:
    app = make_app(popf_machine())
    async with app.run_test(size=SIZE) as pilot:
        machine_screen(app).action_compare_modes()
        await pilot.pause()
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await compare_ready(pilot)  # every mode has run to its end
        assert compare.session is not None and compare.session.cursor == 0
        compare.action_step(3)
        await pilot.pause()
        assert {c.column.steps for c in compare.query(ModeColumnView) if c.column} == {3}
        compare.action_divergence()
        await pilot.pause()
        divergence = compare.session.divergence()
        assert divergence is not None and divergence.text == "popf" and divergence.step == 6
        assert compare.session.cursor == 7
        columns = {view.column.mode: view for view in compare.query(ModeColumnView) if view.column}
        assert columns["trap"].has_class("-diverged") and not columns["bt"].has_class("-diverged")
        assert not columns["native"].has_class("-diverged") and not columns["hw"].has_class("-diverged")
        assert compare.query_one("#divergence").has_class("-reached")
        assert compare.session.surveys["trap"].divergence is not None  # what the guest saw differs
        assert compare.session.surveys["bt"].divergence is None
        compare.action_step(-1)
        await pilot.pause()
        assert not compare.query_one("#divergence").has_class("-reached")
        compare.action_end()
        compare.action_reset()
        await pilot.pause()
        assert compare.session.cursor == 0


async def test_random_keys_on_the_virtualization_screens_never_crash() -> None:
    app = make_app(demo_machine())
    rng = random.Random(5)
    keys = ["v", "V", "7", "s", "b", "d", "f", "B", "e", "R", "t", "o", "down", "up", "enter", "escape", "left",
            "right", "pagedown", "pageup", "tab"]
    async with app.run_test(size=(120, 40)) as pilot:
        for key in [rng.choice(keys) for _ in range(30)]:
            await pilot.press(key)
        assert machine_screen(app).is_attached


def test_command_line_mode_flags() -> None:
    from vizvm.__main__ import build_parser
    from vizvm.screens.load import build_machine

    parser = build_parser()
    args = parser.parse_args(["run", "hello", "--mode", "trap"])
    assert (args.command, args.program, args.mode) == ("run", "hello", "trap")
    assert parser.parse_args(["--mode", "hw"]).mode == "hw"
    assert parser.parse_args(["--mode", "pv", "run", "hello"]).mode == "pv"  # before the command too
    assert parser.parse_args(["run", "hello"]).mode is None
    system, title = build_machine("hello", True, "bt")
    assert isinstance(system, Hypervisor) and system.mode == "bt"
    assert title == "kernel + hello · binary translation"


async def test_loading_another_program_keeps_the_mode() -> None:
    from vizvm.screens.load import LoadProgramDialog

    app = app_in("pv")
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        screen.action_load_program()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, LoadProgramDialog)
        dialog._try("pagefault", True)
        await pilot.pause()
        assert getattr(screen.bridge.machine, "mode", "") == "pv"
        assert screen.bridge.title == "kernel + pagefault · paravirtualization"
