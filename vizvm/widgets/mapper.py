"""The memory mapper: a virtual address split into its index bits, the walk level by level, the TLB, the frames.

Natively addresses are VA and PA. Under a VMM every address names its space: gVA (guest virtual), gPA
(guest physical) or hPA (host physical); nested walks are drawn as a 2-D grid, shadow walks beside the
guest's own entries, and the frame map shows host memory by owner (see vizvm.widgets.walk_grid).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from engine.events import PageWalkRead
from engine.isa import PTE_A, PTE_D, PTE_P, PTE_U, PTE_W
from vizvm.memview import FRAME_OWNERS, space_names
from vizvm.viewmodel import MapperState, Translation
from vizvm.widgets.panel import PanelMixin
from vizvm.widgets.walk_grid import grid_text, host_frames_text, shadow_text

FRAME_CHARS = {"free": "·", "boot": "B", "kernel": "K", "module": "M", "table": "T", "user": "U", "trap": "I"}
PTE_BITS = ((PTE_P, "P"), (PTE_W, "W"), (PTE_U, "U"), (PTE_A, "A"), (PTE_D, "D"))
OUTCOME_TEXT = {"next": "next table", "leaf": "frame", "not-present": "NOT PRESENT", "protection": "PROTECTION"}


def pte_flags(entry: int) -> str:
    """``P W U A D`` with absent bits as dots."""
    return " ".join(letter if entry & bit else "." for bit, letter in PTE_BITS)


MODE_TEXT = {"relocation": "relocation: hPA = gPA + the VM's base",
             "shadow": "shadow paging: the MMU walks gVA → hPA tables",
             "nested": "nested paging: every gPA is walked in the host's tables"}


class MemoryMapper(PanelMixin, VerticalScroll, can_focus=True):
    """Scrollable: translation, walk, TLB and frame map, every address labelled VA/PA (gVA/gPA/hPA under a VMM)."""

    PANEL_NUMBER = 3
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "Memory mapper"
    COMPONENT_CLASSES = {
        "mapper--heading", "mapper--muted", "mapper--va", "mapper--pa", "mapper--index", "mapper--offset",
        "mapper--fault", "mapper--hit", "mapper--fill", "mapper--frame-free", "mapper--frame-kernel",
        "mapper--frame-module", "mapper--frame-table", "mapper--frame-user", "mapper--frame-trap",
        "mapper--frame-boot", "mapper--hpa", "mapper--owner-vmm", "mapper--owner-vm0", "mapper--owner-vm1",
        "mapper--owner-vm2", "mapper--owner-tables", "mapper--owner-free", "mapper--owner-shared", "mapper--balloon",
    }

    state: reactive[MapperState | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()
        self._height = 1

    def compose(self) -> ComposeResult:
        """One body that holds every section."""
        yield Static(id="mapper-body")

    def watch_state(self, state: MapperState | None) -> None:
        """Redraw the body."""
        if state is not None and self.is_mounted:
            body = self.query_one("#mapper-body", Static)
            renderable = self.build(state)
            height = self._height
            if body.styles.height is None or body.styles.height.value != height:
                body.styles.height = height
            body.update(renderable, layout=False)

    def on_resize(self) -> None:
        """Layouts depend on the width."""
        self.watch_state(self.state)

    def build(self, state: MapperState) -> RenderableType:
        """All sections as one renderable."""
        s = self.styles_for(*sorted(self.COMPONENT_CLASSES))
        width = self.content_size.width
        wide = width >= 70
        va, pa, hpa = space_names(state.mode)
        virtual = state.mode != "native"
        if virtual:
            chain = f"{va} → {pa} → {hpa}" if state.paging else f"{pa} → {hpa} (guest paging off)"
            self.set_detail(f"{chain} · vm{state.vm}")
        else:
            self.set_detail(f"{va} → {pa}" if state.paging else "paging off")
        parts: list[RenderableType] = [self._header(state, s)]
        if state.paging or (virtual and state.grid is not None):
            parts.append(self._translation(state, s, wide))
        if state.shadow is not None:
            parts.append(shadow_text(state.shadow, s))
        tlb = self._tlb(state, s)
        if virtual and state.host is not None:
            per_row = 64 if width >= 76 else 32
            pages = None
            if state.frames is not None:
                first = state.vm_base >> 12
                pages = state.frames.owners[first:first + state.host.vm_pages[state.host.current]]
            frames = host_frames_text(state.host, s, per_row, pages, FRAME_CHARS)
            parts.extend((tlb, frames))
            self._height = sum(_lines(part) for part in parts if isinstance(part, Text))
            return Group(*parts)
        frames = self._frames(state, s, per_row=32) if state.frames is not None else Text()
        if self.content_size.width >= 70:
            grid = Table.grid(padding=(0, 2))
            grid.add_row(tlb, frames)
            parts.append(grid)
            bottom = max(_lines(tlb), _lines(frames))
        else:
            parts.extend((tlb, frames))
            bottom = _lines(tlb) + _lines(frames)
        self._height = sum(_lines(part) for part in parts if isinstance(part, Text)) + bottom
        return Group(*parts)

    def _header(self, state: MapperState, s: dict[str, Style]) -> Text:
        if state.mode != "native":
            return self._vmm_header(state, s)
        if not state.paging:
            return Text.assemble(("paging is off (cr0.PG = 0): every VA is its PA\n", s["muted"]))
        bits = "+".join(str(b) for b in (*state.level_bits, 12))
        return Text.assemble(("VA", s["va"]), " → ", ("PA", s["pa"]),
                             (f" · {len(state.level_bits)} levels ({bits} bits) · root cr3 ", s["muted"]),
                             (f"PA {state.root:#010x}\n", s["pa"]))

    @staticmethod
    def _vmm_header(state: MapperState, s: dict[str, Style]) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"vm{state.vm} · ", style=s["heading"])
        if state.paging:
            out.append("gVA", style=s["va"])
            out.append(" → ")
        out.append("gPA", style=s["pa"])
        out.append(" → ")
        out.append("hPA", style=s["hpa"])
        out.append(f" · {MODE_TEXT.get(state.mode, state.mode)}\n", style=s["muted"])
        bits = "+".join(str(b) for b in (*state.level_bits, 12))
        if not state.paging:
            out.append("guest paging is off: every gVA is its gPA\n", style=s["muted"])
        elif state.mode == "shadow":
            out.append(f"guest: {len(state.level_bits)} levels ({bits} bits) · MMU root = shadow table ",
                       style=s["muted"])
            out.append(f"hPA {state.root:#010x}\n", style=s["hpa"])
        else:
            host = f" on {state.host_levels} host levels" if state.mode == "nested" else ""
            out.append(f"guest: {len(state.level_bits)} levels ({bits} bits){host} · guest cr3 ", style=s["muted"])
            out.append(f"gPA {state.root:#010x}\n", style=s["pa"])
        if state.mode == "relocation":
            out.append(f"base: hPA = gPA + {state.vm_base:#x}\n", style=s["muted"])
        return out

    def _translation(self, state: MapperState, s: dict[str, Style], wide: bool) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        focus = state.focus
        if focus is None:
            out.append("no translation in the current step (step forward to see one)\n", style=s["muted"])
        else:
            self._split(out, focus, state.level_bits, s, wide, state.mode)
        walk = state.last_walk
        if walk is None:
            out.append("no page walk in the recorded steps\n", style=s["muted"])
            return out
        va_name, pa_name, hpa_name = space_names(state.mode)
        if walk is not focus:
            out.append(f"last walk: step {walk.step}, ", style=s["heading"])
            out.append(f"{pa_name if walk.physical else va_name} {walk.va:#010x}",
                       style=s["pa" if walk.physical else "va"])
            out.append(f" ({walk.access})\n", style=s["muted"])
        elif state.grid is None:
            title = {"shadow": "walk of the shadow tables (gVA → hPA)", "relocation": "walk of the guest's tables "
                     "(entries hold gPAs, read at hPA)"}.get(state.mode, "walk")
            out.append(f"{title}\n", style=s["heading"])
        if state.grid is not None:
            out.append(grid_text(state.grid, s, wide, narrow=self.content_size.width < 56))
        else:
            for read in walk.walk:
                self._walk_row(out, read, s, wide, state.mode)
        fault = next((r for r in reversed(walk.items) if isinstance(r, PageWalkRead)
                      and r.outcome not in ("next", "leaf")), None)
        if state.substep is not None and state.substep.revealed < state.substep.total:
            sub = state.substep
            out.append(f"  sub-step: reference {sub.revealed} of {sub.total} (w shows the next)\n", style=s["fill"])
        elif fault is not None and fault.dimension == "shadow":
            hidden = state.shadow is not None and any(u.action == "fill" for u in state.shadow.updates)
            out.append(f"  shadow miss: {fault.outcome} at level {fault.level}; a real page fault to the VMM",
                       style=s["fault"])
            out.append(" (hidden: it filled the shadow, the guest retries)\n" if hidden else "\n", style=s["muted"])
        elif fault is not None and fault.dimension == "native":
            out.append(f"  page fault: {fault.outcome} at level {fault.level}; the CPU traps (vector 14)\n",
                       style=s["fault"])
        elif fault is not None:
            out.append(f"  page fault: {fault.outcome} at {fault.dimension} level {fault.level}; the CPU traps\n",
                       style=s["fault"])
        elif state.mode != "native" and state.grid is None:
            self._result(out, walk, state, s)
        elif walk.pa is not None and state.grid is None:
            out.append("  = ")
            out.append(f"{pa_name} {walk.pa:#010x}", style=s["pa"])
            out.append(f"  (frame {walk.pa >> 12:#x} + offset {walk.pa & 0xFFF:#05x})\n", style=s["muted"])
        return out

    @staticmethod
    def _result(out: Text, walk: Translation, state: MapperState, s: dict[str, Style]) -> None:
        """The three spaces of a one-dimensional walk under a VMM: gVA -> gPA -> hPA."""
        out.append("  = ")
        out.append(f"gVA {walk.va:#010x}", style=s["va"])
        gpa = walk.gpa
        if state.shadow is not None and state.shadow.va == walk.va:
            gpa = state.shadow.gpa
        hpa = walk.pa if walk.pa is not None else (gpa + state.vm_base if gpa is not None else None)
        if gpa is not None:
            out.append(" → ")
            out.append(f"gPA {gpa:#010x}", style=s["pa"])
        if hpa is not None:
            out.append(" → ")
            out.append(f"hPA {hpa:#010x}", style=s["hpa"])
        out.append("\n")

    @staticmethod
    def _split(out: Text, focus: Translation, level_bits: tuple[int, ...], s: dict[str, Style],
               wide: bool, mode: str) -> None:
        va_name, pa_name, hpa_name = space_names(mode)
        out.append(f"{pa_name if focus.physical else va_name} {focus.va:#010x}", style=s["va"])
        result = {"hit": "TLB hit", "miss": "TLB miss → walk", "": "walk (sets dirty bit)"}[focus.tlb]
        out.append(f"  {focus.access} · {result} · step {focus.step}\n", style=s["muted"])
        shift = 32
        fields: list[tuple[str, str, Style]] = []
        for level, bits in enumerate(level_bits, 1):
            shift -= bits
            index = (focus.va >> shift) & ((1 << bits) - 1)
            fields.append((format(index, f"0{bits}b"), f"L{level} [{index}]", s["index"]))
        fields.append((format(focus.va & 0xFFF, "012b"), f"+{focus.va & 0xFFF:#05x}", s["offset"]))
        if wide:
            for bits_text, _, style in fields:
                out.append(f"  {bits_text}", style=style)
            out.append("\n")
            for bits_text, label, style in fields:
                out.append(f"  {label:<{len(bits_text)}}", style=style)
            out.append("\n")
        else:
            out.append("  " + "  ".join(label for _, label, _ in fields) + "\n", style=s["index"])
        if focus.tlb == "hit" and focus.pa is not None:
            out.append("  TLB gives ")
            out.append(f"{hpa_name} {focus.pa:#010x}", style=s["hpa" if mode != "native" else "pa"])
            out.append(" without reading the tables\n", style=s["muted"])

    @staticmethod
    def _walk_row(out: Text, read: PageWalkRead, s: dict[str, Style], wide: bool, mode: str = "native") -> None:
        bad = read.outcome in ("not-present", "protection")
        out.append(f"  L{read.level} ", style=s["index"])
        if mode == "native":
            out.append(f"table PA {read.table:#010x}[{read.index}]", style=s["pa"])
        else:  # relocated guest tables and shadow tables are both read at host-physical addresses
            out.append(f"table hPA {read.table:#010x}[{read.index}]", style=s["hpa"])
        out.append("\n     " if not wide else " ")
        out.append(f"PTE {read.entry:#010x} {pte_flags(read.entry)}", style=s["fault"] if bad else Style())
        target = read.entry & 0xFFFFF000
        space = {"guest": "gPA ", "shadow": "hPA ", "host": "hPA "}.get(read.dimension, "") if mode != "native" else ""
        arrow = f" → {OUTCOME_TEXT[read.outcome]}" + ("" if bad else f" {space}{target:#x}")
        out.append(arrow + "\n", style=s["fault"] if bad else s["muted"])

    @staticmethod
    def _tlb(state: MapperState, s: dict[str, Style]) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"\nTLB {len(state.tlb)}/{state.tlb_capacity} · {state.tlb_policy} · oldest first\n",
                   style=s["heading"])
        virtual = state.mode != "native"
        if state.substep is not None and state.substep.revealed < state.substep.total:
            out.append("as after the whole instruction\n", style=s["muted"])
        if virtual:
            out.append("VPN = gVA>>12, frame = hPA>>12\n", style=s["muted"])
            if state.tlb_tag == "vpid":
                out.append("VM = the entry's VPID tag\n", style=s["muted"])
            else:
                out.append(f"VM: all vm{state.vm}'s (flushed on VM switch)\n", style=s["muted"])
        else:
            out.append("VPN = VA>>12, frame = PA>>12\n", style=s["muted"])
        if not state.tlb:
            out.append("  empty\n", style=s["muted"])
            return out
        out.append("  # VM  VPN   ASID frame W U D\n" if virtual else "  # VPN   ASID frame W U D\n", style=s["muted"])
        for number, row in enumerate(state.tlb):
            entry = row.entry
            style = s["hit"] if row.mark == "hit" else s["fill"] if row.mark == "fill" else Style()
            flags = " ".join(f if on else "." for f, on in (("W", entry.writable), ("U", entry.user),
                                                              ("D", entry.dirty)))
            tag = f"vm{row.vm:<2}" if virtual and row.vm is not None else ""
            asid = "gPA" if row.physical else f"{entry.asid:>4}"
            out.append(f"{'▶' if row.mark else ' '}{number:>2} {tag}{' ' if tag else ''}{entry.vpn:05x} {asid:>4} "
                       f"{entry.frame:05x} {flags} {row.mark:<4}", style=style)
            out.append("\n")
        for evicted in state.evicted:
            out.append(f"  evicted VPN {evicted.vpn:05x} ({evicted.policy})\n", style=s["muted"])
        return out

    @staticmethod
    def _frames(state: MapperState, s: dict[str, Style], per_row: int) -> Text:
        frames = state.frames
        assert frames is not None
        owners = frames.owners
        group = max(1, (len(owners) + per_row * 8 - 1) // (per_row * 8))
        out = Text(no_wrap=True, overflow="crop")
        size = len(owners) * 4
        scale = f", {group} frames per cell" if group > 1 else ""
        out.append(f"\nPA frames (4 KiB, {size} KiB{scale})\n", style=s["heading"])
        cells = [owners[i] if group == 1 else _dominant(owners[i:i + group]) for i in range(0, len(owners), group)]
        for start in range(0, len(cells), per_row):
            out.append(f"{start * group * 4096:05x} ", style=s["muted"])
            for owner in cells[start:start + per_row]:
                out.append(FRAME_CHARS[owner], style=s[f"frame-{owner}"])
            out.append("\n")
        for number, (owner, text) in enumerate(FRAME_OWNERS.items()):
            out.append(f" {FRAME_CHARS[owner]}", style=s[f"frame-{owner}"])
            out.append(f" {text:<18}", style=s["muted"])
            if number % 2 == 1:
                out.append("\n")
        return out


def _lines(text: Text) -> int:
    """Rows a no-wrap Text takes."""
    return text.plain.count("\n") + 1 if text.plain else 0


def _dominant(owners: tuple[str, ...]) -> str:
    """The most important owner in a group of frames (anything beats free)."""
    for owner in ("table", "trap", "user", "module", "kernel", "boot"):
        if owner in owners:
            return owner
    return "free"
