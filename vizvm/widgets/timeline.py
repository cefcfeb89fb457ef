"""The trap timeline: a lane per privilege level, each trap and return drawn as a labelled transition.

Virtualized, the lanes are guest user, guest kernel and VMM, and each VM exit and entry is drawn.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.history import RING_LANES, Transition
from vizvm.messages import JumpToStep
from vizvm.viewmodel import TimelineState
from vizvm.widgets.panel import PanelMixin

LANE_LABEL_WIDTH = 8


class TrapTimeline(PanelMixin, Widget, can_focus=True):
    """Lanes (user above kernel) over the recorded steps; left/right select a transition, enter jumps to it."""

    PANEL_NUMBER = 4
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "Trap timeline"
    COMPONENT_CLASSES = {"timeline--lane", "timeline--trap", "timeline--iret", "timeline--selected",
                         "timeline--step", "timeline--muted", "timeline--now", "timeline--exit"}
    BINDINGS = [
        Binding("left", "select(-1)", "Earlier", show=False),
        Binding("right", "select(1)", "Later", show=False),
        Binding("enter", "jump", "Jump", tooltip="Go to the selected trap or return"),
    ]

    state: reactive[TimelineState | None] = reactive(None)
    selected: reactive[int] = reactive(-1)
    """Index into the transitions; -1 selects the newest."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._columns: list[tuple[int, int, int]] = []  # (first column, last column, transition index)
        self._label_width = LANE_LABEL_WIDTH
        self.border_title = self.panel_title()

    def watch_state(self, state: TimelineState | None) -> None:
        """Keep the selection on the newest transition unless the user picked one."""
        if state is not None:
            self.set_detail(f"steps {state.lo}–{max(state.hi - 1, state.lo)}")
            if self.selected >= len(state.transitions):
                self.selected = -1

    def _selected_index(self) -> int:
        count = len(self.state.transitions) if self.state else 0
        if count == 0:
            return -1
        return count - 1 if self.selected < 0 else min(self.selected, count - 1)

    def action_select(self, delta: int) -> None:
        """Move the selection to an earlier or later transition."""
        count = len(self.state.transitions) if self.state else 0
        if count:
            self.selected = max(0, min(count - 1, self._selected_index() + delta))

    def action_jump(self) -> None:
        """Ask to put the machine right after the selected transition."""
        index = self._selected_index()
        if self.state is not None and index >= 0:
            self.post_message(JumpToStep(self.state.transitions[index].step + 1))

    def on_click(self, event: events.Click) -> None:
        """Clicking a transition selects it and jumps there."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        for first, last, index in self._columns:
            if first <= offset.x - self._label_width <= last:
                self.selected = index
                self.action_jump()
                return

    def render(self) -> RenderableType:
        """Draw the lanes, slot by slot, ending at the current step."""
        state = self.state
        if state is None:
            return Text("loading…")
        s = self.styles_for(*self.COMPONENT_CLASSES)
        rings = sorted(set(state.lanes) | {span.ring for span in state.spans} | {state.ring} |
                       {t.from_ring for t in state.transitions} | {t.to_ring for t in state.transitions},
                       reverse=True)
        lanes = state.lanes or RING_LANES
        self._label_width = max([LANE_LABEL_WIDTH] + [len(lanes.get(ring, "")) + 1 for ring in rings])
        width = max(self.content_size.width - self._label_width, 10)
        transitions = list(state.transitions)
        selected = self._selected_index()
        slots = self._slots(transitions, selected, width)
        lane_row = {ring: 1 + 2 * i for i, ring in enumerate(rings)}
        rows = [[(" ", Style())] * width for _ in range(2 * len(rings))]
        self._columns = []
        ring = transitions[slots[0]].from_ring if slots else state.ring
        column = 0

        def put(row: int, col: int, text: str, style: Style) -> None:
            for offset, char in enumerate(text):
                if 0 <= col + offset < width and 0 <= row < len(rows):
                    rows[row][col + offset] = (char, style)

        for index in slots:
            transition = transitions[index]
            slot = self._slot(transitions, index)
            put(lane_row[ring], column, "━" * slot, s["lane"])
            x = column + slot
            style = s["exit"] if transition.kind == "vm-exit" else s["trap"] if transition.kind == "trap" else s["iret"]
            if index == selected:
                style = style + s["selected"]
            self._draw_transition(put, transition, x, lane_row, style)
            put(0, x - len(str(transition.step)) // 2, str(transition.step), s["step"])
            self._columns.append((x - 1, x + len(transition.label), index))
            ring, column = transition.to_ring, x + 1
        put(lane_row.get(ring, 1), column, "━" * max(width - column - 5, 1), s["lane"])
        put(lane_row.get(ring, 1), max(width - 5, column + 1), "◆now", s["now"])
        return self._assemble(rows, rings, lane_row, state, s, bool(transitions))

    @staticmethod
    def _slot(transitions: list[Transition], index: int) -> int:
        """Columns of lane before transition `index`: room for its step number and the previous label."""
        previous = len(transitions[index - 1].label) + 1 if index > 0 else 0
        return max(len(transitions[index].label), previous, len(str(transitions[index].step))) + 3

    @staticmethod
    def _slots(transitions: list[Transition], selected: int, width: int) -> list[int]:
        """Indices of the transitions that fit, ending at the newest (or at the selection if it is older)."""

        def back_from(end: int) -> list[int]:
            used, chosen = max(6, len(transitions[end].label) + 1), []  # the newest label must fit too
            for index in range(end, -1, -1):
                used += TrapTimeline._slot(transitions, index) + 1
                if used > width:
                    break
                chosen.append(index)
            return sorted(chosen)

        if not transitions:
            return []
        chosen = back_from(len(transitions) - 1)
        return chosen if selected < 0 or selected in chosen else back_from(selected)

    @staticmethod
    def _draw_transition(put: object, transition: Transition, x: int, lane_row: dict[int, int],
                         style: Style) -> None:
        top, bottom = sorted((lane_row[transition.from_ring], lane_row[transition.to_ring]))
        down = lane_row[transition.to_ring] > lane_row[transition.from_ring]
        assert callable(put)
        if top == bottom:
            put(top, x, "╋", style)
        else:
            put(top, x, "┓" if down else "┏", style)
            for row in range(top + 1, bottom):
                put(row, x, "┃", style)
            put(bottom, x, "┗" if down else "┛", style)
        arrow = "▼" if down else "▲"
        put(top + 1, x + 1, f"{arrow}{transition.label}", style)

    def _assemble(self, rows: list[list[tuple[str, Style]]], rings: list[int], lane_row: dict[int, int],
                  state: TimelineState, s: dict[str, Style], any_transition: bool) -> Text:
        lanes = state.lanes or RING_LANES
        labels = {row: lanes.get(ring, f"ring {ring}") for ring, row in lane_row.items()}
        labels[0] = "step"
        pad = self._label_width
        out = Text(no_wrap=True, overflow="crop")
        for number, row in enumerate(rows):
            out.append(("\n" if number else "") + f"{labels.get(number, ''):<{pad}}", style=s["muted"])
            # One span per run of equally styled cells: a lane is mostly blanks and one line style, and
            # every span costs Textual time on each repaint.
            run: list[str] = []
            run_style: Style | None = None
            for char, style in row:
                if style is not run_style and style != run_style:
                    if run:
                        out.append("".join(run), style=run_style)
                    run, run_style = [], style
                run.append(char)
            if run:
                out.append("".join(run), style=run_style)
        if not any_transition:
            crossing = "exit to the VMM, trap or return" if state.lanes else "trap or return"
            out.append(f"\n{'':<{pad}}no {crossing} in recorded steps "
                       f"{state.lo}–{max(state.hi - 1, state.lo)}", style=s["muted"])
        else:
            index = self._selected_index()
            chosen = state.transitions[index]
            where = (f"{lanes.get(chosen.from_ring, chosen.from_ring)}→{lanes.get(chosen.to_ring, chosen.to_ring)}"
                     if state.lanes else f"ring {chosen.from_ring}→{chosen.to_ring}")
            what = chosen.detail or f"{chosen.kind} {chosen.label}"
            out.append(f"\n{'':<{pad}}selected: step {chosen.step} {what} {where}  "
                       "(←/→ select, enter or click: go there)", style=s["muted"])
        return out
