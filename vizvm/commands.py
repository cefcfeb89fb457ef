"""One registry of commands, read from the key bindings: the help screen and the command palette list it.

A command exists once, as an ``action_*`` method with a `Binding` (key, description, tooltip, group);
nothing here restates a key or a description, so help, palette and keys cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen

EXTRA_GROUP = "Focus and app"


@dataclass(frozen=True)
class CommandEntry:
    """A command as the help screen and the palette show it."""

    group: str
    keys: str
    description: str
    tooltip: str
    action: str
    node: DOMNode
    """Where the action runs."""
    where: str = ""
    """'' for screen and app commands, else the panel the command belongs to."""


def _bindings_of(node: DOMNode) -> list[Binding]:
    """Every Binding declared on the node's classes, most derived first (keys split, system ones dropped).

    A key a subclass binds again (the lesson screen's ``p``) hides the base class's binding of it.
    """
    found: list[Binding] = []
    claimed: set[str] = set()
    for cls in type(node).__mro__:
        declared = cls.__dict__.get("BINDINGS")
        if declared:
            own = list(Binding.make_bindings(declared))
            found.extend(b for b in own if not b.system and b.description and b.key not in claimed)
            claimed.update(b.key for b in own)
    return found


def _entries_for(app: App[Any], node: DOMNode, default_group: str, where: str = "") -> list[CommandEntry]:
    merged: dict[tuple[str, str], list[Binding]] = {}
    for binding in _bindings_of(node):
        merged.setdefault((binding.action, binding.description), []).append(binding)
    entries = []
    for (action, description), bindings in merged.items():
        first = bindings[0]
        keys = " ".join(dict.fromkeys(app.get_key_display(b) for b in bindings))
        group = first.group.description if first.group else default_group
        entries.append(CommandEntry(group, keys, description, first.tooltip, action, node, where))
    return entries


def command_entries(app: App[Any], screen: Screen[Any]) -> list[CommandEntry]:
    """Screen commands, then the focused-panel commands of each panel, then app-wide commands."""
    entries = _entries_for(app, screen, "Screen")
    for widget in screen.query("*"):
        if type(widget).__dict__.get("BINDINGS") and getattr(widget, "PANEL_TITLE", None) is not None:
            title = getattr(widget, "PANEL_TITLE", "") or type(widget).__name__
            entries.extend(_entries_for(app, widget, f"In the {title.lower()} panel", where=title))
        elif type(widget).__name__ == "Scrubber":
            entries.extend(_entries_for(app, widget, "In the scrubber", where="Scrubber"))
    entries.extend(_entries_for(app, app, EXTRA_GROUP))
    palette_key = app.COMMAND_PALETTE_DISPLAY or app.get_key_display(Binding(app.COMMAND_PALETTE_BINDING, ""))
    entries.append(CommandEntry(EXTRA_GROUP, palette_key, "Command palette",
                                "Search every command by name", "app.command_palette", app))
    entries.append(CommandEntry(EXTRA_GROUP, "tab shift+tab", "Next / previous panel",
                                "Move the focus between panels", "app.focus_next", app))
    return entries


class MachineCommands(Provider):
    """The command palette's entries for the screen it was opened on: every bound action, by description."""

    def _entries(self) -> list[CommandEntry]:
        return [e for e in command_entries(self.app, self.screen) if e.action != "app.command_palette"]

    @staticmethod
    def _title(entry: CommandEntry) -> str:
        prefix = f"{entry.where}: " if entry.where else ""
        return f"{prefix}{entry.description}"

    @staticmethod
    def _help(entry: CommandEntry) -> str:
        return f"{entry.tooltip}  [{entry.keys}]" if entry.tooltip else f"[{entry.keys}]"

    async def _run(self, entry: CommandEntry) -> None:
        await self.app.run_action(entry.action, entry.node)

    async def discover(self) -> Hits:
        """Everything, before anything is typed."""
        for entry in self._entries():
            yield DiscoveryHit(self._title(entry), partial(self._run, entry), help=self._help(entry))

    async def search(self, query: str) -> Hits:
        """Fuzzy match on the description."""
        matcher = self.matcher(query)
        for entry in self._entries():
            title = self._title(entry)
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, entry), help=self._help(entry))
