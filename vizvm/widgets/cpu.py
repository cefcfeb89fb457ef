"""The CPU panel: registers, flags, ring and control registers, with what changed highlighted."""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.isa import CR0_PG, Flag
from vizvm.history import RING_LANES
from vizvm.viewmodel import CpuState
from vizvm.widgets.panel import PanelMixin
from vizvm.widgets.vcpu import VCPU_COMPONENTS, render_vcpu

FLAG_ORDER = (("Z", Flag.Z), ("N", Flag.N), ("C", Flag.C), ("V", Flag.V), ("IF", Flag.IF))
COUNTERS = (("instructions", "instr"), ("cycles", "cycles"), ("traps", "traps"), ("tlb_hits", "TLB hit"),
            ("tlb_misses", "misses"), ("walks", "walks"), ("page_faults", "#PF"),
            ("port_reads", "in"), ("port_writes", "out"))
VCPU_TABLE_HEIGHT = 16
"""Below this many rows the CPU panel shows the virtual CPU as one line (registers, flags, then what differs)."""
VMM_COUNTERS = (("instructions", "instr"), ("cycles", "cycles"), ("vmm_entries", "exits"), ("tlb_hits", "TLB hit"),
                ("tlb_misses", "misses"), ("walks", "walks"), ("emulated", "emul"), ("reflected", "reflect"))


def short_number(value: int) -> str:
    """At most 7 characters: 1234567, 12.3M, 4.5G."""
    if value < 10_000_000:
        return str(value)
    if value < 10_000_000_000:
        return f"{value / 1e6:.1f}M"
    return f"{value / 1e9:.1f}G"


class CpuPanel(PanelMixin, Widget, can_focus=True):
    """Registers in two columns, then flags, ring, control registers, the changes and the counters."""

    PANEL_NUMBER = 2
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "CPU"
    COMPONENT_CLASSES = {"cpu--name", "cpu--changed", "cpu--off", "cpu--on", "cpu--old", "cpu--heading",
                         "cpu--spotlight", *VCPU_COMPONENTS}

    state: reactive[CpuState | None] = reactive(None)
    spotlight: reactive[frozenset[str]] = reactive(frozenset())
    """Register names a lesson points at (``ring``, ``cr3``...): their labels are highlighted."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()

    def watch_state(self, state: CpuState | None) -> None:
        """Say what the highlight means in the title."""
        if state is not None:
            self.set_detail("changes since mark" if state.cumulative else "last step")

    def render(self) -> RenderableType:
        """The register file as text, changed values highlighted."""
        state = self.state
        if state is None:
            return Text("loading…")
        s = self.styles_for(*self.COMPONENT_CLASSES)
        values, changed = state.values, state.changed
        out = Text(no_wrap=True, overflow="ellipsis")

        def label(name: str, text: str) -> None:
            out.append(text, style=s["spotlight"] if name in self.spotlight else s["name"])

        def reg(name: str, width: int = 4) -> None:
            label(name, f"{name:<{width}}")
            out.append(f"{values[name]:08x}", style=s["changed"] if name in changed else Style())

        for left, right in (("r0", "r4"), ("r1", "r5"), ("r2", "r6"), ("r3", "r7"), ("sp", "pc")):
            reg(left)
            out.append("   ")
            reg(right)
            out.append("\n")
        label("flags", "flags ")
        for letter, bit in FLAG_ORDER:
            on = bool(values["flags"] & bit)
            style = s["on"] if on else s["off"]
            if "flags" in changed:
                style = style + s["changed"]
            out.append(letter if on else letter.lower(), style=style)
            out.append(" ")
        out.append("\n")
        if state.vcpu is not None:  # virtualized: the virtual CPU beside the real one
            render_vcpu(out, state.vcpu, s, changed, short=self.content_size.height < VCPU_TABLE_HEIGHT)
            self._changes(out, state, s)
            self._counters(out, state, s)
            return out
        ring = values["ring"]
        label("ring", "ring  ")
        out.append(f"{ring} ({RING_LANES.get(ring, '?')})", style=s["changed"] if "ring" in changed else Style())
        out.append("  paging ", style=s["name"])
        out.append("on" if values["cr0"] & CR0_PG else "off", style=s["on"] if state.paging else s["off"])
        out.append("\n")
        for left, right in (("cr0", "cr2"), ("cr3", "ksp")):
            reg(left)
            out.append("   ")
            reg(right)
            out.append("\n")
        reg("idtr", 5)
        out.append("\n")
        self._changes(out, state, s)
        self._counters(out, state, s)
        return out

    def _changes(self, out: Text, state: CpuState, s: dict[str, Style]) -> None:
        heading = (f"changed since step {state.since_step} (mark)" if state.cumulative
                   else f"changed by step {state.since_step}" if state.since_step >= 0 else "no step yet")
        out.append(f"\n{heading}\n", style=s["heading"])
        shown = [name for name in state.values if name in state.changed and name != "pc"]
        if not shown:
            out.append("  nothing but pc\n" if "pc" in state.changed else "  nothing\n", style=s["old"])
        for name in shown:
            old = state.previous.get(name)
            out.append(f"  {name:<5}", style=s["name"])
            out.append(f"{old:08x}" if old is not None else "?", style=s["old"])
            out.append(" → ")
            out.append(f"{state.values[name]:08x}\n", style=s["changed"])

    def _counters(self, out: Text, state: CpuState, s: dict[str, Style]) -> None:
        out.append("\ncounters\n", style=s["heading"])
        counters = VMM_COUNTERS if state.vcpu is not None else COUNTERS  # under a VMM traps become exits
        items = [(label, state.counters.get(key, 0)) for key, label in counters]
        for index, (label, value) in enumerate(items):
            out.append(f"{label:<7}" if index % 2 == 0 else f"  {label:<7}", style=s["name"])
            out.append(f"{short_number(value):>7}")
            out.append("\n" if index % 2 else "")
