"""Drawing the memory mapper's virtualization sections: the 2-D walk grid, the shadow view, the host frames.

Plain functions that turn view-model state into Rich Text with the mapper's component styles; the
MemoryMapper widget calls them. Every address is labelled with its space: gVA, gPA or hPA.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from engine.events import PageWalkRead
from vizvm.memview import HostFrames
from vizvm.viewmodel import ShadowView
from vizvm.walkview import WalkGrid

OWNER_GLYPHS = {"vmm": "M", "free": "·", "shared": "="}
"""Host-frame owners' glyphs; ``vmN`` is drawn as its digit, a VM's tables as H (host) or S (shadow)."""
BALLOON = "○"
"""A guest-physical page the VM's balloon driver holds (its host frame was given back)."""
BACKED = "▪"
"""A guest-physical page of a VM that is not running, with a host frame behind it."""
HOST_LEGEND = (("M", "owner-vmm", "VMM"), ("0", "owner-vm0", "vm0 memory"), ("1", "owner-vm1", "vm1 memory"),
               ("H", "owner-tables", "host tables (nested)"), ("S", "owner-tables", "shadow tables"),
               ("2", "owner-shared", "shared: refcount"), ("·", "owner-free", "free"),
               (BALLOON, "balloon", "ballooned gPA page"), (BACKED, "muted", "backed gPA page"))
ACTION_TEXT = {"fill": "filled by the trap", "resync": "dropped (resync)", "": ""}


def owner_glyph(owner: str, refcount: int = 0) -> tuple[str, str]:
    """(glyph, style name) for a host frame's owner code."""
    if refcount > 1 or owner == "shared":
        return (str(refcount) if 1 < refcount < 10 else "+" if refcount >= 10 else "="), "owner-shared"
    if owner in OWNER_GLYPHS:
        return OWNER_GLYPHS[owner], f"owner-{owner}"
    if owner.endswith(" host tables"):
        return "H", "owner-tables"
    if owner.endswith(" shadow tables"):
        return "S", "owner-tables"
    if owner.startswith("vm") and owner[2:].isdigit():
        number = int(owner[2:])
        return (str(number) if number < 10 else "#"), f"owner-vm{number % 3}"
    return "?", "muted"


def grid_text(grid: WalkGrid, s: dict[str, Style], wide: bool, narrow: bool = False) -> Text:
    """The 2-D walk: a row per guest level (plus the final gPA), a column per host level, then the guest read.

    `wide` adds where each row's host walk lands (hPA); `narrow` (under about 56 columns) shortens the rows.
    """
    out = Text(no_wrap=True, overflow="ellipsis")
    n, m = grid.guest_levels, grid.host_levels
    cold = grid.cold
    saved = sum(1 for row in grid.cells if row[0].skipped)
    out.append(f"2-D walk: {grid.references} references", style=s["heading"])
    out.append(f" (cold: ({n}+1)×({m}+1)−1 = {cold})" if n else f" (guest paging off: {m} host reads)",
               style=s["muted"])
    if saved:
        out.append(f" · nested TLB saved {saved} host walk{'s' if saved != 1 else ''}", style=s["hit"])
    out.append("\n")
    size = 3 if narrow else 4
    head = "".join(f"{'H' + str(j):>{size}}" for j in range(1, m + 1))
    out.append(f"{'row gPA':<14}" if narrow else f"{'guest row':<20}", style=s["muted"])
    out.append(f"│{head}", style=s["muted"])
    out.append(f" {'→ hPA':<14} " if wide else " ", style=s["muted"])
    out.append("│ guest read\n" if n else "│\n", style=s["muted"])
    for row_index, row in enumerate(grid.cells):
        final = row_index == n
        gpa = grid.gpas[row_index]
        name = "data" if final else f"L{row_index + 1} tbl"
        gpa_text = f"{gpa:08x}" if gpa is not None else "·" * 8
        if narrow:
            out.append(f"{name.removesuffix(' tbl'):<5}", style=s["index"])
            out.append(f"{gpa_text} ", style=s["pa"])
        else:
            out.append(f"{name:<6}", style=s["index"])
            out.append(f" gPA {gpa_text} ", style=s["pa"])
        out.append("│", style=s["muted"])
        for cell in row[:m]:
            if cell.skipped:
                out.append("─".rjust(size), style=s["hit"])
            elif cell.read is None:
                out.append("·".rjust(size), style=s["muted"])
            else:
                bad = cell.read.outcome not in ("next", "leaf")
                style = s["fill"] if cell.number == grid.current else s["fault"] if bad else Style()
                out.append(f"{cell.number:>{size}}", style=style)
        hpa = grid.hpas[row_index]
        if wide:
            out.append(" → ", style=s["muted"])
            out.append(f"hPA {hpa:08x}" if hpa is not None else " " * 12, style=s["hpa"])
        out.append(" │ ", style=s["muted"])
        guest = row[m]
        if final:
            if hpa is not None and grid.references:
                out.append("= the data: ", style=s["muted"])
                out.append(f"hPA {hpa:08x}", style=s["hpa"])
        elif guest.read is not None:
            bad = guest.read.outcome not in ("next", "leaf")
            style = s["fill"] if guest.number == grid.current else s["fault"] if bad else Style()
            out.append(f"{guest.number:>2} ", style=style)
            out.append(f"PTE {guest.read.entry:08x}", style=s["fault"] if bad else Style())
            if bad:
                out.append(f" {guest.read.outcome}", style=s["fault"])
        else:
            out.append(" ·", style=s["muted"])
        out.append("\n")
    newest = next((c.read for row in grid.cells for c in row if c.number == grid.current and c.read), None)
    if newest is not None:
        reference_text(out, grid.current, newest, s)
    return out


def reference_text(out: Text, number: int, read: PageWalkRead, s: dict[str, Style]) -> None:
    """One line on a walk reference, every address with its space."""
    out.append(f"#{number} ", style=s["fill"])
    if read.dimension == "host":
        out.append(f"host L{read.level} for ", style=s["muted"])
        out.append(f"gPA {read.va:#010x}", style=s["pa"])
    else:
        out.append(f"{read.dimension} L{read.level} for ", style=s["muted"])
        out.append(f"gVA {read.va:#010x}", style=s["va"])
    out.append(": ")
    out.append(f"hPA {read.entry_address:#010x}", style=s["hpa"])
    out.append(f" = {read.entry:08x}")
    target = read.entry & 0xFFFFF000
    into = "hPA" if read.dimension in ("host", "shadow") else "gPA"
    if read.outcome in ("next", "leaf"):
        what = "next table" if read.outcome == "next" else "frame"
        out.append(f" → {what} {into} {target:#x}\n", style=s["muted"])
    else:
        out.append(f" → {read.outcome.upper()}\n", style=s["fault"])


def shadow_text(view: ShadowView, s: dict[str, Style]) -> Text:
    """The guest's entries (gVA -> gPA, what the guest wrote) beside the shadow's (gVA -> hPA, what the MMU walks)."""
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append("\nshadow paging for ", style=s["heading"])
    out.append(f"gVA {view.va:#010x}", style=s["va"])
    out.append(": guest table beside shadow table\n", style=s["heading"])
    out.append("   guest entry (at gPA)      shadow entry (at hPA)\n", style=s["muted"])
    for row in view.rows:
        style = s["fill"] if row.action else Style()
        out.append(f"L{row.level} ", style=s["index"])
        if row.guest_address is not None and row.guest_entry is not None:
            out.append(f"gPA {row.guest_address:08x}", style=s["pa"])
            out.append(f" = {row.guest_entry:08x}  ")
        else:
            out.append(f"{'(not reached)':<26}", style=s["muted"])
        if row.shadow_address is not None and row.shadow_entry is not None:
            out.append(f"hPA {row.shadow_address:08x}", style=s["hpa"])
            out.append(f" = {row.shadow_entry:08x}", style=style)
            present = row.shadow_entry & 1
            out.append("" if present else " (empty)", style=s["muted"])
        else:
            out.append("(not reached)", style=s["muted"])
        if row.action:
            out.append(f" ◀ {ACTION_TEXT[row.action]}", style=s["fill"])
        out.append("\n")
    out.append("guest gives ", style=s["muted"])
    out.append(f"gPA {view.gpa:#010x}" if view.gpa is not None else "no mapping (a true fault)",
               style=s["pa"] if view.gpa is not None else s["fault"])
    out.append(" · shadow gives ", style=s["muted"])
    out.append(f"hPA {view.hpa:#010x}" if view.hpa is not None else "nothing yet (a hidden fault fills it)",
               style=s["hpa"] if view.hpa is not None else s["muted"])
    out.append("\n")
    for update in view.updates:
        out.append(f"this step: shadow {update.action}", style=s["fill"])
        if update.action == "switch":
            out.append(f" to the shadow of guest root gPA {update.guest_entry:#x}: ", style=s["muted"])
            out.append(f"hPA {update.shadow_address:#x}\n", style=s["hpa"])
            continue
        out.append(" at ", style=s["muted"])
        out.append(f"hPA {update.shadow_address:#010x}", style=s["hpa"])
        out.append(f" = {update.shadow_entry:08x} from guest entry {update.guest_entry:08x}\n", style=s["muted"])
    return out


def host_frames_text(host: HostFrames, s: dict[str, Style], per_row: int, current_pages: tuple[str, ...] | None,
                     page_chars: dict[str, str]) -> Text:
    """The host frame map coloured by owner (shared frames show their refcount), then each VM's gPA pages."""
    out = Text(no_wrap=True, overflow="crop")
    owners = host.owners
    out.append(f"\nhPA frames: host memory by owner ({len(owners) * 4} KiB)\n", style=s["heading"])
    if host.pool is not None:
        frames, free, saved = host.pool
        out.append(f"pool {frames} frames for {sum(host.vm_pages)} gPA pages · {frames - free} used · "
                   f"{free} free · sharing saves {saved}\n", style=s["muted"])
    for start in range(0, len(owners), per_row):
        out.append(f"hPA {start * 4096:06x} ", style=s["muted"])
        for frame in range(start, min(start + per_row, len(owners))):
            glyph, style = owner_glyph(owners[frame], host.refcounts.get(frame, 0))
            out.append(glyph, style=s[style])
        out.append("\n")
    for vm_id, pages in enumerate(host.vm_pages):
        balloon = host.ballooned[vm_id]
        running = vm_id == host.current
        out.append(f"vm{vm_id} gPA pages{' (running)' if running else ''}", style=s["heading"])
        out.append(f" · {len(balloon)} ballooned\n", style=s["muted"])
        for start in range(0, pages, per_row):
            out.append(f"gPA {start * 4096:06x} ", style=s["muted"])
            for page in range(start, min(start + per_row, pages)):
                if page in balloon:
                    out.append(BALLOON, style=s["balloon"])
                elif running and current_pages is not None and page < len(current_pages):
                    owner = current_pages[page]
                    out.append(page_chars[owner], style=s[f"frame-{owner}"])
                elif not running and vm_id < len(host.backed) and page in host.backed[vm_id]:
                    out.append(BACKED, style=s[f"owner-vm{vm_id % 3}"])
                else:
                    out.append("·", style=s["owner-free"])
            out.append("\n")
    present = {owner_glyph(owner)[0] for owner in set(owners)} | {"·"}
    if host.refcounts or "shared" in owners:
        present.add("2")
    if any(host.ballooned):
        present.add(BALLOON)
    if any(backed for vm_id, backed in enumerate(host.backed) if vm_id != host.current):
        present.add(BACKED)
    legend = [item for item in HOST_LEGEND if item[0] in present]
    for number, (glyph, style, text) in enumerate(legend):
        out.append(f" {glyph}", style=s[style])
        out.append(f" {text:<21}", style=s["muted"])
        if number % 3 == 2 or number == len(legend) - 1:
            out.append("\n")
    return out
