"""The VMM panel: what the current mode's VMM holds and just did.

Binary translation shows its translation cache (the block just translated or entered, with each
instruction copied, turned into a callout or routed through a cache lookup); hardware assist shows
its VM-control structure (which instructions exit, the exception bitmap); paravirtualization its
hypercalls; trap-and-emulate its fidelity violations. Every mode shows its exits by reason and the
last exit with its guest pc and qualification.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.vmm_state import ExitInfo, VmmState
from vizvm.widgets.cpu import short_number
from vizvm.widgets.panel import PanelMixin

PANEL_DETAILS = {"native": "native: no VMM", "trap": "trap-and-emulate", "bt": "translation cache",
                 "pv": "hypercalls", "hw": "VM control"}
BAR = 12


class VmmPanel(PanelMixin, Widget, can_focus=True):
    """The VMM's state for the current mode (translation cache, VM controls, hypercalls, fidelity)."""

    PANEL_NUMBER = 7
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "VMM"
    COMPONENT_CLASSES = {"vmm--heading", "vmm--muted", "vmm--focus", "vmm--callout", "vmm--lookup", "vmm--bad",
                         "vmm--bar", "vmm--value"}

    state: reactive[VmmState | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()

    def watch_state(self, state: VmmState | None) -> None:
        """Name what the panel shows for this mode in the title."""
        if state is not None:
            self.set_detail(PANEL_DETAILS.get(state.mode, state.mode))

    def render(self) -> RenderableType:
        """The mode's sections, most telling first (the panel crops at its bottom)."""
        state = self.state
        if state is None:
            return Text("loading…")
        s = self.styles_for(*self.COMPONENT_CLASSES)
        out = Text(no_wrap=True, overflow="ellipsis")
        if state.mode == "native":
            out.append("Running natively: the kernel is in real ring 0 and nothing sits below it.\n", style=s["muted"])
            out.append("Press v to run this program under a VMM (trap, bt, pv or hw),\n"
                       "or V to compare every mode side by side.", style=s["muted"])
            return out
        self._summary(out, state, s)
        if state.mode == "hw":
            self._controls(out, state, s)
        elif state.mode == "bt":
            self._cache(out, state, s)
        elif state.mode == "pv":
            self._hypercalls(out, state, s)
        if state.fidelity or state.mode == "trap":
            self._fidelity(out, state, s)
        self._last_exit(out, state.last_exit, state, s)
        self._reasons(out, state, s)
        return out

    @staticmethod
    def _summary(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        c = state.counters
        items = [("exits", c.get("vmm_entries", 0)), ("emulated", c.get("emulated", 0)),
                 ("reflected", c.get("reflected", 0)), ("VMM cycles", c.get("vmm_cycles", 0))]
        for name, value in items:
            out.append(f"{name} ", style=s["muted"])
            out.append(f"{short_number(value)}  ", style=s["value"])
        out.append("\n")
        if state.stopped:
            out.append(f"VM stopped: {state.stopped}\n", style=s["bad"])

    @staticmethod
    def _controls(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        out.append("VM-control structure (like Intel's VMCS)\n", style=s["heading"])
        out.append("  exit on     ", style=s["muted"])
        out.append(" ".join(name.lower() for name in state.exit_controls) or "nothing", style=s["value"])
        out.append("  (the rest runs in guest mode)\n", style=s["muted"])
        out.append("  exceptions  ", style=s["muted"])
        out.append(", ".join(state.exception_bitmap) or "none: the guest handles its own faults", style=s["value"])
        out.append("\n")

    @staticmethod
    def _cache(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        c = state.counters
        out.append(f"translation cache  {state.block_count} blocks · {short_number(c.get('bt_hits', 0))} hits · "
                   f"{c.get('bt_invalidations', 0)} invalidations\n", style=s["heading"])
        if not state.blocks:
            out.append("  (empty: guest-kernel code is translated when it first runs)\n", style=s["muted"])
            return
        first, *others = state.blocks
        if first.mark:
            out.append(f"▶ block {first.guest_pc:#x} {first.mark} at step {first.mark_step} · "
                       f"entered {first.hits}× in the recorded steps\n", style=s["focus"])
        else:
            out.append(f"  newest block {first.guest_pc:#x}\n", style=s["muted"])
        for line in first.listing:
            style = s["callout"] if "call VMM" in line else s["lookup"] if "cache lookup" in line else Style()
            out.append(f"  {line}\n", style=style)
        for event in state.invalidations[-2:]:
            out.append(f"  step {event.step}: a store to page {event.page:#x} dropped {event.blocks} block(s)\n",
                       style=s["bad"])
        if others:
            out.append("other blocks, newest first\n", style=s["muted"])
        for block in others:
            callouts = f"{block.callouts} callout{'s' if block.callouts != 1 else ''}" if block.callouts else ""
            out.append(f"  {block.guest_pc:#010x} {len(block.listing):>2} instr {callouts:<10}", style=Style())
            out.append(f" entered {block.hits}×\n" if block.hits else "\n", style=s["muted"])

    @staticmethod
    def _hypercalls(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        out.append(f"hypercalls  {state.counters.get('hypercalls', 0)} in all", style=s["heading"])
        out.append("  (the paravirtual kernel asks instead of trapping)\n", style=s["muted"])
        if state.hypercalls:
            out.append("  " + "  ".join(f"{name}×{count}" for name, count in state.hypercalls) + "\n",
                       style=s["value"])
        call = state.last_hypercall
        if call is not None:
            args = ", ".join(f"{a:#x}" for a in call.args)
            out.append(f"  last: step {call.step} hypercall {call.number} {call.name}({args}) = {call.result}\n",
                       style=s["focus"])
            out.append(f"        {call.detail}\n", style=s["muted"])

    @staticmethod
    def _fidelity(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        total = state.counters.get("fidelity_violations", 0)
        out.append(f"fidelity violations  {total}", style=s["bad"] if total else s["heading"])
        if not total:
            out.append("  (popf, pushf, smsw and sidt do not trap)\n", style=s["muted"])
            return
        out.append("  sensitive instructions that did not trap\n", style=s["muted"])
        for event in state.fidelity[-3:]:
            out.append(f"  step {event.step} {event.pc:#x} {event.text}: saw {event.real:#x}, a real machine gives "
                       f"{event.virtual:#x}\n", style=s["bad"])
            out.append(f"    {event.explanation}\n", style=s["muted"])

    @staticmethod
    def _last_exit(out: Text, last: ExitInfo | None, state: VmmState, s: dict[str, Style]) -> None:
        if last is None:
            out.append(f"no exit to the VMM in steps {state.window[0]}–{max(state.window[1] - 1, state.window[0])}\n",
                       style=s["muted"])
            return
        now = last.step == state.current - 1
        out.append("last exit  " if not now else "exit now   ", style=s["heading"])
        out.append(f"step {last.step} {last.via}: {last.reason}\n", style=s["focus"] if now else s["value"])
        out.append(f"  guest pc {last.guest_pc:#010x} · guest ring {last.guest_ring}\n", style=s["muted"])
        if last.qualification:
            out.append("  ", style=s["muted"])
            out.append(f"{last.qualification}\n")

    @staticmethod
    def _reasons(out: Text, state: VmmState, s: dict[str, Style]) -> None:
        if not state.reasons:
            return
        out.append(f"exits by reason, steps {state.window[0]}–{state.window[1] - 1}\n", style=s["heading"])
        top = state.reasons[0][1]
        for reason, count in state.reasons:
            filled = max(1, round(BAR * count / top))
            out.append(f"  {'█' * filled:<{BAR}} ", style=s["bar"])
            out.append(f"{count:>5} ", style=s["value"])
            out.append(f"{reason}\n")
