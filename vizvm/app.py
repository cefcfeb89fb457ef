"""The vizvm Textual app: themes, app-wide keys, and the one `make_app()` factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.theme import Theme

from engine.machine import Machine
from vizvm.commands import MachineCommands, command_entries

APP_GROUP = Binding.Group("Focus and app")

PROJECTOR_DARK = Theme(
    name="vizvm-projector-dark", dark=True, primary="#FFD400", secondary="#00E5FF", accent="#FF6EFF",
    warning="#FFB000", error="#FF5C5C", success="#3DFF6E", foreground="#FFFFFF", background="#000000",
    surface="#000000", panel="#1C1C1C", boost="#FFFFFF", luminosity_spread=0.1, text_alpha=1.0,
)
"""High contrast on black, for projectors in dark rooms."""

PROJECTOR_LIGHT = Theme(
    name="vizvm-projector-light", dark=False, primary="#0030C0", secondary="#6A00B8", accent="#B0005A",
    warning="#8A4B00", error="#B00000", success="#00600A", foreground="#000000", background="#FFFFFF",
    surface="#FFFFFF", panel="#E6E6E6", boost="#000000", luminosity_spread=0.1, text_alpha=1.0,
)
"""High contrast on white, for projectors in lit rooms."""

MachineFactory = Callable[[], tuple[Machine, str]]


def default_machine() -> tuple[Machine, str]:
    """The shipped kernel running the default user programs."""
    from engine.programs import DEFAULT_USER_PROGRAMS, boot_kernel_machine
    from vizvm.viewmodel import machine_title

    machine = boot_kernel_machine(DEFAULT_USER_PROGRAMS)
    return machine, machine_title(machine)


class VizVMApp(App[None]):
    """Opens the machine screen on the machine the factory builds (after the first paint)."""

    TITLE = "vizvm"
    CSS_PATH: ClassVar = ["styles/app.tcss", "styles/lesson.tcss", "styles/vmm.tcss"]
    COMMANDS: ClassVar = {MachineCommands}
    ALLOW_IN_MAXIMIZED_VIEW: ClassVar[str] = "Footer, KeyEchoRack"
    """A maximized panel keeps the footer and, in classroom mode, the key echo."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help", tooltip="Every key, with what it does", group=APP_GROUP,
                key_display="F1"),
        Binding("ctrl+t", "change_theme", "Theme", tooltip="Pick a theme (two high-contrast projector themes)",
                group=APP_GROUP, show=False),
        Binding("f5", "toggle_projector", "Projector",
                tooltip="Classroom mode: fewer, larger panels, high contrast, keys echoed on screen",
                group=APP_GROUP, show=False),
        Binding("ctrl+s", "save_svg", "Screenshot", tooltip="Save an SVG of the screen in the current folder",
                group=APP_GROUP, show=False),
        Binding("ctrl+q", "quit", "Quit", tooltip="Leave vizvm", group=APP_GROUP, show=False, priority=True),
    ]

    def __init__(self, factory: MachineFactory = default_machine, *,
                 startup_error: tuple[str, str] | None = None, screenshot_dir: str = ".", home: bool = False,
                 lesson: str | None = None, seed: int | None = None, projector: bool = False) -> None:
        super().__init__()
        self.factory = factory
        self.home = home
        """Start on the lesson list (and open `lesson` from it, with `seed`) instead of the machine."""
        self.lesson, self.seed = lesson, seed
        self.projector = projector
        """Classroom mode (vizvm.projector)."""
        self.theme_before_projector = "textual-dark"
        self.startup_error = startup_error
        self.screenshot_dir = screenshot_dir
        self.register_theme(PROJECTOR_DARK)
        self.register_theme(PROJECTOR_LIGHT)

    def on_mount(self) -> None:
        """Open the home or machine screen; show a startup problem (such as assembler errors) on top."""
        if self.home:
            from vizvm.screens.home import HomeScreen

            self.push_screen(HomeScreen(lesson=self.lesson, seed=self.seed))
        else:
            from vizvm.screens.machine import MachineScreen

            machine, title = self.factory()
            self.push_screen(MachineScreen(machine, title))
        if self.projector:
            from vizvm.projector import set_projector

            self.call_after_refresh(set_projector, self, True)
        if self.startup_error is not None:
            from vizvm.screens.dialogs import ErrorDialog

            self.push_screen(ErrorDialog(*self.startup_error))

    def action_help(self) -> None:
        """Show every key of the current screen."""
        from vizvm.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(command_entries(self, self.screen)))

    def action_toggle_projector(self) -> None:
        """Classroom mode on or off."""
        from vizvm.projector import set_projector

        set_projector(self, not self.projector)

    async def on_event(self, event: events.Event) -> None:
        """In classroom mode, echo each key press on screen before it is handled."""
        if self.projector and isinstance(event, events.Key) and not event.is_forwarded:
            from vizvm.projector import echo_key

            echo_key(self, event.key, event.is_printable)
        await super().on_event(event)

    def action_save_svg(self) -> None:
        """Save an SVG screenshot named after the step shown."""
        steps = getattr(getattr(self.screen, "bridge", None), "machine", None)
        suffix = f"step-{steps.steps}" if isinstance(steps, Machine) else "screen"
        path = self.save_screenshot(filename=f"vizvm-{suffix}.svg", path=self.screenshot_dir)
        self.notify(f"Saved {path}", title="Screenshot", timeout=4)


def make_app(machine: Machine | None = None, *, title: str | None = None,
             factory: MachineFactory | None = None, startup_error: tuple[str, str] | None = None,
             screenshot_dir: str = ".", home: bool = False, lesson: str | None = None, seed: int | None = None,
             projector: bool = False) -> VizVMApp:
    """The app as the CLI, the tests and the screenshot script build it.

    Pass a ready `machine`, or a `factory` that builds one after the first paint; by default the shipped
    kernel with the default user programs. `home` starts on the lesson list (free play uses the factory's
    machine), opening `lesson` (name, number or file) with `seed` if given; `projector` starts in classroom mode.
    """
    if machine is not None:
        from vizvm.viewmodel import machine_title

        ready = machine

        def given() -> tuple[Machine, str]:
            return ready, title or machine_title(ready)

        factory = given
    return VizVMApp(factory or default_machine, startup_error=startup_error, screenshot_dir=screenshot_dir,
                    home=home, lesson=lesson, seed=seed, projector=projector)
