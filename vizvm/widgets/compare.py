"""The compare screen's widgets: one column per mode, the cost bars, and the divergence banner."""

from __future__ import annotations

import textwrap

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.events import FidelityViolation
from engine.vmm import MODE_TITLES
from vizvm.compare_model import ModeColumn
from vizvm.widgets.panel import PanelMixin

FIGURES = (("guest instructions", "guest instr", "instr"), ("exits to the VMM", "exits", "exits"),
           ("emulated", "emulated", "emul"), ("reflected", "reflected", "refl"), ("hypercalls", "hypercalls", "hcall"),
           ("bt_blocks", "BT blocks", "blocks"), ("bt_hits", "BT hits", "hits"),
           ("fidelity_violations", "fidelity viol", "fid ✘"), ("cycles", "cycles", "cycles"))
"""(counter, label, label in a narrow column)."""
NARROW = 26


class ModeColumnView(PanelMixin, Widget):
    """One mode at the shared cursor: where it is, what its last step did, its counters."""

    COMPONENT_CLASSES = {"column--heading", "column--muted", "column--bad", "column--good", "column--value"}

    column: reactive[ModeColumn | None] = reactive(None)

    def watch_column(self, column: ModeColumn | None) -> None:
        """Title the border with the mode; mark a column whose guest saw something a real machine would not."""
        if column is not None:
            self.border_title = column.title
            self.set_class(column.diverged, "-diverged")

    def render(self) -> RenderableType:
        """Position, the last step, counters and the end of the run."""
        column = self.column
        if column is None:
            return Text("loading…")
        s = self.styles_for(*self.COMPONENT_CLASSES)
        out = Text(no_wrap=True, overflow="ellipsis")
        state = "halted" if column.halted else f"pc {column.pc:#010x}"
        out.append(f"step {column.steps:,}\n{state}\n")
        rings = f"guest ring {column.guest_ring}"
        if column.mode != "native":
            rings += f", real {column.real_ring}"
        out.append(rings + "\n", style=s["muted"])
        width = self.content_size.width
        narrow = width < NARROW
        self.border_title = column.mode if narrow else column.title
        for name, label, short in FIGURES:
            value = column.figure(name)
            style = s["bad"] if name == "fidelity_violations" and value else s["value"]
            out.append(f"{short:<6}" if narrow else f" {label:<13}", style=s["muted"])
            out.append(f"{value:>{max(width - 7, 4)},}\n" if narrow else f"{value:>11,}\n", style=style)
        self._end(out, column, s, max(self.content_size.width - 3, 12))
        self._recent(out, column, s, self.content_size.height - len(out.split()) - 1)
        return out

    @staticmethod
    def _recent(out: Text, column: ModeColumn, s: dict[str, Style], room: int) -> None:
        """The newest steps that fit, each with what the VMM did."""
        out.append("recent steps\n", style=s["heading"])
        lines: list[tuple[str, Style]] = []
        for step, described in column.recent:
            for number, line in enumerate(described or ("(interrupt delivery)",)):
                if number == 0:
                    lines.append((f"{step:>6} {line}", Style()))
                else:
                    lines.append((f"       {line}", s["bad"] if line.startswith("✘") else s["muted"]))
        if not lines:
            lines.append(("  (step 0: press s)", s["muted"]))
        for text, style in lines[-max(room, 1):]:
            out.append(f"{text}\n", style=style)

    @staticmethod
    def _end(out: Text, column: ModeColumn, s: dict[str, Style], width: int) -> None:
        survey = column.survey
        if survey is None:
            return
        out.append("whole run\n", style=s["heading"])
        ending = "" if survey.halted else " (still running)"
        out.append(f" {survey.steps:,} steps{ending}\n {survey.cycles:,} cycles\n", style=s["muted"])
        if column.mode == "native":
            verdict, style = "the reference", s["muted"]
        elif survey.divergence:
            verdict, style = f"✘ {survey.divergence}", s["bad"]
        else:
            verdict, style = "✔ the guest sees what it sees natively", s["good"]
            if column.mode == "pv":
                verdict += " (console and exit: another kernel build)"
        for line in textwrap.wrap(verdict, width):
            out.append(f" {line}\n", style=style)


class CostBars(Widget):
    """Cycles so far in each mode (the cost model), as bars scaled to the largest."""

    COMPONENT_CLASSES = {"bars--heading", "bars--bar", "bars--muted", "bars--bad"}

    columns: reactive[tuple[ModeColumn, ...]] = reactive((), layout=True)  # its height follows the mode count

    def render(self) -> RenderableType:
        """One bar per mode, with its ratio to native."""
        full = {name: self.get_component_rich_style(name) for name in self.COMPONENT_CLASSES}
        s = {name.split("--", 1)[1]: style for name, style in full.items()}
        out = Text(no_wrap=True, overflow="ellipsis")
        columns = self.columns
        if not columns:
            return out
        cursor = max(c.steps for c in columns)
        out.append(f"cycles up to step {cursor:,} (cost model, engine/costs.py)\n", style=s["heading"])
        top = max(c.figure("cycles") for c in columns) or 1
        native = next((c.figure("cycles") for c in columns if c.mode == "native"), 0)
        name_width = max(len(c.title) for c in columns) + 2
        bar_width = max(self.content_size.width - name_width - 32, 8)
        for column in columns:
            cycles = column.figure("cycles")
            filled = round(bar_width * cycles / top)
            out.append(f"{column.title:<{name_width}}", style=s["bad"] if column.diverged else Style())
            out.append(f"{'█' * filled or '▏':<{bar_width}} ", style=s["bar"])
            ratio = f"{cycles / native:7.2f}× native" if native and column.mode != "native" else ""
            out.append(f"{cycles:>12,} ", style=Style(bold=True))
            out.append(f"{ratio}\n", style=s["muted"])
        return out


def divergence_text(event: FidelityViolation | None, modes: tuple[str, ...], cursor: int) -> tuple[str, bool]:
    """The banner under the columns (`modes` are those with a fidelity violation) and whether the cursor has
    reached the divergence."""
    if event is None:
        return ("No fidelity violation in any mode: every VMM gives the guest exactly what a real machine gives.",
                False)
    reached = cursor > event.step
    where = "diverged" if reached else "diverges"
    names = " and ".join(MODE_TITLES[m] for m in modes)
    return (f"{names} {where} at step {event.step}: {event.text} at {event.pc:#x} saw {event.real:#x} where a "
            f"real machine gives {event.virtual:#x}. {event.explanation}. (d: go there)", reached)
