"""The machine screen: every panel at once, driven through one EngineBridge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from engine.machine import Machine
from vizvm.bridge import EngineBridge
from vizvm.messages import BreakpointToggled, JumpToStep, MachineChanged, RunStateChanged
from vizvm.screens.vmm_actions import VMM_BINDINGS, choose_mode, follow_mode, keep_mode, mode_hidden, open_compare
from vizvm.vmm_state import vmm_state
from vizvm.vmm_view import is_virtual
from vizvm.widgets.code import CodePanel
from vizvm.widgets.cpu import CpuPanel
from vizvm.widgets.event_log import EventLog
from vizvm.widgets.io import IoPanel
from vizvm.widgets.mapper import MemoryMapper
from vizvm.widgets.scrubber import Scrubber
from vizvm.widgets.status import StatusLine
from vizvm.widgets.timeline import TrapTimeline
from vizvm.widgets.vmm import VmmPanel

MIN_SIZE = (80, 24)
"""Below this the screen shows a message instead of the panels."""

RUN = Binding.Group("Run and step")
MOVE = Binding.Group("Time travel")
VIEW = Binding.Group("Panels and layout")
MISC = Binding.Group("Program and breakpoints")

PANEL_IDS: dict[int, str] = {1: "code", 2: "cpu", 3: "mapper", 4: "timeline", 5: "events", 6: "io", 7: "vmm"}
PANEL_CLASSES: dict[str, type[Widget]] = {"code": CodePanel, "cpu": CpuPanel, "mapper": MemoryMapper,
                                          "timeline": TrapTimeline, "events": EventLog, "io": IoPanel,
                                          "vmm": VmmPanel}


@dataclass(frozen=True)
class Layout:
    """Rows of panels with their default width and height shares, and panels hidden at first."""

    rows: tuple[tuple[str, tuple[str, ...]], ...]
    widths: dict[str, int]
    heights: dict[str, int]
    hidden: frozenset[str] = frozenset()


WIDE = Layout(
    (("top-row", ("code", "cpu", "mapper")), ("timeline-row", ("timeline",)),
     ("bottom-row", ("events", "io", "vmm"))),
    {"code": 4, "cpu": 3, "mapper": 7, "timeline": 1, "events": 3, "vmm": 4, "io": 2},
    {"top-row": 6, "timeline-row": 2, "bottom-row": 4},
)
COMPACT = Layout(
    (("top-row", ("code", "cpu")), ("middle-row", ("mapper", "io", "vmm")), ("timeline-row", ("timeline", "events"))),
    {"code": 5, "cpu": 3, "mapper": 5, "vmm": 5, "io": 3, "timeline": 3, "events": 2},
    {"top-row": 5, "middle-row": 5, "timeline-row": 3},
    frozenset({"events"}),
)
"""Below 140x40: two panels per row, the event log hidden until 5 shows it."""
COMPACT_SIZE = (140, 40)


class MachineScreen(Screen[None]):
    """Code, CPU, memory mapper, trap timeline, event log and I/O for one machine."""

    CSS_PATH = "../styles/machine.tcss"
    AUTO_FOCUS = "#code"
    # The footer merges neighbouring shown bindings of one group into one item without descriptions,
    # so shown bindings alternate groups here; the help screen regroups everything.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "step", "Step", tooltip="Run one instruction (or one interrupt delivery)", group=RUN),
        Binding("w", "substep", "Walk step",
                tooltip="Step one instruction, showing its page-walk references one at a time (w again: the next)",
                group=RUN, show=False),
        Binding("b", "step_back", "Back", tooltip="Go back one step (exactly: the engine replays)", group=MOVE),
        Binding("r", "toggle_run", "Run/Pause", tooltip="Run until paused, a breakpoint or a halt", group=RUN),
        Binding("g", "go_to_step", "Go to", tooltip="Go to step N (back or forward)", group=MOVE),
        Binding("t", "run_until('trap')", "Next trap", tooltip="Run until the next trap or interrupt", group=RUN),
        Binding("l", "load_program", "Load", tooltip="Load another program (.s file or shipped sample)",
                group=MISC),
        Binding("o", "step_out", "Step out", tooltip="Run until this trap handler's iret", group=RUN),
        Binding("p", "run_until('page-fault')", "Next #PF", tooltip="Run until the next page fault", group=RUN,
                show=False),
        Binding("i", "run_until('io')", "Next I/O", tooltip="Run until the next port access", group=RUN,
                show=False),
        Binding("c", "run_until('breakpoint')", "Continue", tooltip="Run until a breakpoint", group=RUN,
                show=False),
        Binding("plus,equals_sign", "speed(1)", "Faster", tooltip="Raise the run speed", group=RUN, show=False,
                key_display="+"),
        Binding("minus", "speed(-1)", "Slower", tooltip="Lower the run speed", group=RUN, show=False),
        Binding("R", "reset", "Reset", tooltip="Back to step 0 of the loaded program", group=MOVE, show=False),
        Binding("f9,x", "toggle_breakpoint", "Breakpoint", tooltip="Toggle a breakpoint on the code cursor line",
                group=MISC, show=False),
        Binding("f", "filter_events", "Filter log", tooltip="Choose which event kinds the log shows",
                group=VIEW, show=False),
        Binding("C", "toggle_cumulative", "Cumulative", tooltip="CPU: highlight everything changed since now",
                group=VIEW, show=False),
        Binding("m", "toggle_maximize", "Maximize", tooltip="Maximize or restore the focused panel", group=VIEW,
                show=False),
        Binding("1", "toggle_panel(1)", "Code", tooltip="Show or hide the code panel", group=VIEW, show=False),
        Binding("2", "toggle_panel(2)", "CPU", tooltip="Show or hide the CPU panel", group=VIEW, show=False),
        Binding("3", "toggle_panel(3)", "Mapper", tooltip="Show or hide the memory mapper", group=VIEW,
                show=False),
        Binding("4", "toggle_panel(4)", "Timeline", tooltip="Show or hide the trap timeline", group=VIEW,
                show=False),
        Binding("5", "toggle_panel(5)", "Log", tooltip="Show or hide the event log", group=VIEW, show=False),
        Binding("6", "toggle_panel(6)", "I/O", tooltip="Show or hide the I/O panel", group=VIEW, show=False),
        Binding("right_square_bracket", "resize(1, 0)", "Wider", tooltip="Make the focused panel wider",
                group=VIEW, show=False, key_display="]"),
        Binding("left_square_bracket", "resize(-1, 0)", "Narrower", tooltip="Make the focused panel narrower",
                group=VIEW, show=False, key_display="["),
        Binding("right_curly_bracket", "resize(0, 1)", "Taller", tooltip="Make the focused panel's row taller",
                group=VIEW, show=False, key_display="}"),
        Binding("left_curly_bracket", "resize(0, -1)", "Shorter",
                tooltip="Make the focused panel's row shorter", group=VIEW, show=False, key_display="{"),
        Binding("0", "reset_layout", "Layout", tooltip="Show every panel at its default size", group=VIEW,
                show=False),
        *VMM_BINDINGS,
    ]

    def __init__(self, machine: Machine, title: str | None = None) -> None:
        super().__init__()
        self.bridge = EngineBridge(machine, title)
        self.event_kinds: frozenset[str] | None = None
        self.compact = False
        self._use_layout(WIDE)

    def _use_layout(self, layout: Layout) -> None:
        self.layout_spec = layout
        self.widths = dict(layout.widths)
        self.heights = dict(layout.heights)
        self.hidden = mode_hidden(self.bridge.machine, layout.hidden, layout is COMPACT)
        self.row_of = {panel: row for row, panels in layout.rows for panel in panels}

    def compose(self) -> ComposeResult:
        """Status line, three rows of panels, scrubber, footer."""
        width, height = self.app.size
        compact = width < COMPACT_SIZE[0] or height < COMPACT_SIZE[1]
        if compact != self.compact:
            self.compact = compact
            self._use_layout(COMPACT if compact else WIDE)
        yield StatusLine(id="status")
        with Vertical(id="panels"):
            for row_id, panel_ids in self.layout_spec.rows:
                with Horizontal(id=row_id, classes="row"):
                    for panel_id in panel_ids:
                        yield PANEL_CLASSES[panel_id](id=panel_id)
        yield Scrubber(id="scrubber")
        yield Static(id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        """Attach the bridge and draw the first state."""
        self.bridge.attach(self)
        self._apply_layout()
        self.refresh_panels()

    # ------------------------------------------------------------------ state down
    @on(MachineChanged)
    def on_machine_changed(self, message: MachineChanged) -> None:
        """Push the new state down to the visible panels."""
        self.refresh_panels(live=message.live)

    @on(RunStateChanged)
    def on_run_state_changed(self, message: RunStateChanged) -> None:
        """Grey out stepping keys once halted."""
        self.refresh_bindings()

    def _visible(self, widget: Widget) -> bool:
        if self.maximized is not None:
            return widget is self.maximized
        return widget.display and bool(widget.parent and widget.parent.display)

    def refresh_panels(self, live: bool = False) -> None:
        """Compute each visible panel's state from the bridge and set it."""
        bridge = self.bridge
        if is_virtual(bridge.machine) != self.has_class("-virtual"):
            follow_mode(self)  # another system was loaded: natively <-> under the VMM
        status = bridge.status()
        self.query_one(StatusLine).state = status
        self.query_one(Scrubber).position = (status.step, status.furthest)
        code = self.query_one(CodePanel)
        if self._visible(code):
            code.state = bridge.code_state()
            if not live and code.cursor is not None and not code.has_focus:
                code.follow_pc()
        cpu = self.query_one(CpuPanel)
        if self._visible(cpu):
            cpu.state = bridge.cpu_state()
        mapper = self.query_one(MemoryMapper)
        self._ticks = getattr(self, "_ticks", 0) + 1
        if self._visible(mapper) and (not live or self._ticks % 8 == 0):
            mapper.state = bridge.mapper_state()
        recorded = bridge.recording.hi
        if live and recorded == getattr(self, "_pushed_recording", -1):
            return  # running fast: the recorded window has not moved, so these panels would not change
        self._pushed_recording = recorded
        timeline = self.query_one(TrapTimeline)
        if self._visible(timeline):
            timeline.state = bridge.timeline_state()
        log = self.query_one(EventLog)
        if self._visible(log):
            log.state = bridge.event_state(self.event_kinds)
        io = self.query_one(IoPanel)
        if self._visible(io):
            io.state = bridge.io_state()
        vmm = self.query_one(VmmPanel)
        if self._visible(vmm):
            vmm.state = vmm_state(bridge.machine, bridge.recording)

    # ------------------------------------------------------------------ messages up
    @on(JumpToStep)
    def on_jump_to_step(self, message: JumpToStep) -> None:
        """A panel asked to go to a step."""
        self.bridge.go_to(message.step)

    @on(BreakpointToggled)
    def on_breakpoint_toggled(self, message: BreakpointToggled) -> None:
        """The code panel asked to toggle a breakpoint."""
        now_set = self.bridge.toggle_breakpoint(message.address)
        self.notify(f"Breakpoint {'set' if now_set else 'cleared'} at {message.address:#010x}", timeout=2)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stepping and running are greyed out once the machine halts."""
        if action == "substep" and self.bridge.machine.halted and not self._revealing():
            return None
        if action in ("step", "run_until", "step_out") and self.bridge.machine.halted:
            return None
        return True

    def _refuse(self, problem: str | None) -> None:
        if problem:
            self.notify(problem, severity="warning", timeout=4)

    def action_step(self) -> None:
        """Run one step."""
        if self.bridge.machine.halted:
            self._refuse(f"The machine has halted: {self.bridge.machine.halt_reason}.")
            return
        self.bridge.step()

    def action_substep(self) -> None:
        """Step one instruction a walk reference at a time: each press reveals the next entry read."""
        if self.bridge.machine.halted and not self._revealing():
            self._refuse(f"The machine has halted: {self.bridge.machine.halt_reason}.")
            return
        if self.bridge.substep_forward() is None:
            self.notify("That step read no page-table entry: it ran as a normal step.", timeout=2)

    def _revealing(self) -> bool:
        """A sub-step has references left to show."""
        sub = self.bridge.substep
        return sub is not None and sub.revealed < sub.total

    def action_step_back(self) -> None:
        """Go back one step."""
        self.bridge.step_back()

    def action_toggle_run(self) -> None:
        """Run or pause."""
        if self.bridge.running:
            self.bridge.pause("paused")
        else:
            self._refuse(self.bridge.run("run"))

    def action_run_until(self, goal: str) -> None:
        """Run until a trap, page fault, I/O or breakpoint."""
        if self.bridge.running:
            self.bridge.pause("paused")
        self._refuse(self.bridge.run(goal))

    def action_step_out(self) -> None:
        """Run until the current trap handler returns."""
        self._refuse(self.bridge.run("iret"))

    def action_speed(self, delta: int) -> None:
        """Change the run speed."""
        from vizvm.widgets.status import speed_text

        self.notify(f"Run speed: {speed_text(self.bridge.change_speed(delta))}", timeout=1.5)

    def action_reset(self) -> None:
        """Back to step 0."""
        self.bridge.reset()
        self.refresh_bindings()

    def action_go_to_step(self) -> None:
        """Ask for a step number and go there."""
        from vizvm.screens.dialogs import GoToStepDialog

        def chosen(step: int | None) -> None:
            if step is not None:
                self.bridge.go_to(step)

        self.app.push_screen(GoToStepDialog(self.bridge.machine.steps, self.bridge.furthest), chosen)

    def action_toggle_breakpoint(self) -> None:
        """Toggle a breakpoint on the code panel's cursor line (pc if the cursor follows pc)."""
        self.post_message(BreakpointToggled(self.query_one(CodePanel).cursor_address))

    def action_filter_events(self) -> None:
        """Choose the event kinds the log shows."""
        from vizvm.screens.dialogs import EventFilterDialog

        def chosen(kinds: frozenset[str] | None) -> None:
            if kinds is not None:
                from engine.events import EVENT_KINDS

                self.event_kinds = None if kinds >= frozenset(EVENT_KINDS) else kinds
                self.refresh_panels()

        self.app.push_screen(EventFilterDialog(self.event_kinds), chosen)

    def action_choose_mode(self) -> None:
        """Run the program natively or under the VMM (rebuilds it at step 0)."""
        choose_mode(self)

    def action_compare_modes(self) -> None:
        """Open the compare screen: every mode side by side."""
        open_compare(self)

    def action_toggle_cumulative(self) -> None:
        """CPU panel: last step's changes or everything since now."""
        on = self.bridge.toggle_cumulative()
        self.notify("CPU: highlighting changes since now" if on else "CPU: highlighting the last step's changes",
                    timeout=2)

    def action_load_program(self) -> None:
        """Open the load dialog."""
        from vizvm.screens.load import LoadProgramDialog

        self.app.push_screen(LoadProgramDialog(), self._loaded)

    def _loaded(self, result: tuple[Machine, str] | None) -> None:
        if result is not None:
            machine, title = keep_mode(self.bridge.machine, *result)  # a new program runs in the same mode
            self.bridge.load(machine, title)
            self.refresh_bindings()

    def load_machine(self, machine: Machine, title: str | None = None) -> None:
        """Drive another machine (used by the app and lessons)."""
        self.bridge.load(machine, title)
        self.refresh_bindings()

    # ------------------------------------------------------------------ layout
    def _focused_panel(self) -> Widget | None:
        focused = self.focused
        while focused is not None and focused.id not in self.row_of:
            focused = focused.parent if isinstance(focused.parent, Widget) else None
        return focused

    def action_toggle_maximize(self) -> None:
        """Maximize the focused panel, or restore."""
        if self.maximized is not None:
            self.minimize()
        else:
            panel = self._focused_panel()
            if panel is not None:
                self.maximize(panel, container=False)
        self.refresh_panels()

    def action_toggle_panel(self, number: int) -> None:
        """Show or hide panel `number`."""
        panel_id = PANEL_IDS[number]
        self.hidden.symmetric_difference_update({panel_id})
        if panel_id in self.hidden and self.maximized is self.query_one(f"#{panel_id}"):
            self.minimize()
        self._apply_layout()
        self.refresh_panels()

    def action_resize(self, wider: int, taller: int) -> None:
        """Grow or shrink the focused panel's width share or its row's height share."""
        panel = self._focused_panel()
        if panel is None or panel.id is None:
            self.notify("Focus a panel first (Tab or click)", timeout=2)
            return
        if wider:
            self.widths[panel.id] = max(1, min(12, self.widths[panel.id] + wider))
        if taller:
            row = self.row_of[panel.id]
            self.heights[row] = max(1, min(12, self.heights[row] + taller))
        self._apply_layout()

    def action_reset_layout(self) -> None:
        """Every panel visible at its default size."""
        self._use_layout(self.layout_spec)
        self.hidden.clear()
        self.minimize()
        self._apply_layout()
        self.refresh_panels()

    def _apply_layout(self) -> None:
        for panel_id, weight in self.widths.items():
            panel = self.query_one(f"#{panel_id}")
            panel.styles.width = f"{weight}fr"
            panel.display = panel_id not in self.hidden
        for row_id, weight in self.heights.items():
            row = self.query_one(f"#{row_id}")
            row.display = any(child.display for child in row.children)
            row.styles.height = f"{weight}fr"

    async def on_resize(self, event: Resize) -> None:
        """Too small: a message instead of broken panels; below COMPACT_SIZE: the compact layout."""
        width, height = event.size
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(small, "-too-small")
        compact = width < COMPACT_SIZE[0] or height < COMPACT_SIZE[1]
        self.set_class(compact, "-compact")
        if compact != self.compact:
            self.compact = compact
            self._use_layout(COMPACT if compact else WIDE)
            await self.recompose()
            self._apply_layout()
            self.refresh_panels()
        if small:
            self.query_one("#too-small", Static).update(
                f"vizvm needs a terminal of at least {MIN_SIZE[0]}×{MIN_SIZE[1]} characters.\n"
                f"This one is {width}×{height}.\n\nEnlarge the window or make the font smaller "
                "(often Ctrl and -).")
