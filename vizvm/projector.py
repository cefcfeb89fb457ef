"""Classroom mode: a presentation layout, a high-contrast theme, and key presses echoed for the room.

`vizvm --projector` starts in it and F5 (or the palette's "Projector") toggles it. The app gets the
``-projector`` class (lesson.tcss: heavier borders, more padding), switches to the registered
``vizvm-projector-dark`` theme (and back to the theme it had), and each screen adapts: the lesson
screen keeps only the panels the step focuses on beside the lesson, the machine screen maximizes the
focused panel. Every key pressed shows for a moment in a large label at the bottom right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from vizvm.app import VizVMApp

PROJECTOR_THEME = "vizvm-projector-dark"
ECHO_SECONDS = 1.2
"""How long an echoed key stays fully visible; it then fades for as long again."""


class KeyEcho(Static):
    """The label showing the last key and what it did."""


class KeyEchoRack(Container):
    """Bottom-right holder of the key echo (invisible itself), mounted on a screen when first needed."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None

    def compose(self) -> Any:
        """One label."""
        yield KeyEcho()

    def show(self, text: str) -> None:
        """Show `text`, then fade and hide it."""
        echo = self.query_one(KeyEcho)
        echo.update(text)
        echo.display = True
        echo.styles.opacity = 1.0
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(ECHO_SECONDS, self._fade)

    def _fade(self) -> None:
        echo = self.query_one(KeyEcho)
        echo.styles.animate("opacity", 0.0, duration=ECHO_SECONDS, on_complete=self._hide)

    def _hide(self) -> None:
        echo = self.query_one(KeyEcho)
        if echo.styles.opacity <= 0.01:
            echo.display = False


def describe_key(app: App[Any], key: str, printable: bool) -> str:
    """``s  Step``: the key as shown in the footer and the description of the binding it triggers."""
    focused = app.focused
    if printable and isinstance(focused, Input):
        return key if len(key) == 1 else app.get_key_display(Binding(key, ''))
    active = app.screen.active_bindings.get(key)
    if active is None:
        return app.get_key_display(Binding(key, ''))
    shown = app.get_key_display(active.binding)
    return f"{shown}  {active.binding.description}" if active.binding.description else shown


def echo_key(app: App[Any], key: str, printable: bool) -> None:
    """Show the key on the current screen."""
    text = describe_key(app, key, printable)
    screen = app.screen
    racks = screen.query(KeyEchoRack)
    if racks:
        racks.first().show(text)
        return
    rack = KeyEchoRack()
    screen.mount(rack)
    rack.call_after_refresh(rack.show, text)


def apply_to_screen(screen: Screen[Any], on: bool) -> None:
    """Give one screen the presentation layout (or its normal one)."""
    from vizvm.screens.machine import MachineScreen

    adapt = getattr(screen, "set_projector", None)
    if callable(adapt):
        adapt(on)
    elif isinstance(screen, MachineScreen):
        if on and screen.maximized is None:
            panel = screen.focused if screen.focused is not None and screen.focused.id in screen.row_of else None
            screen.maximize(panel or screen.query_one("#code"), container=False)
        elif not on and screen.maximized is not None:
            screen.minimize()
        screen.refresh_panels()


def set_projector(app: VizVMApp, on: bool) -> None:
    """Switch classroom mode on or off for the app and every open screen."""
    app.projector = on
    app.set_class(on, "-projector")
    if on:
        if app.theme != PROJECTOR_THEME:
            app.theme_before_projector = app.theme
            app.theme = PROJECTOR_THEME
    elif app.theme == PROJECTOR_THEME:
        app.theme = app.theme_before_projector
    for screen in app.screen_stack:
        apply_to_screen(screen, on)
