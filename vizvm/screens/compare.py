"""The compare screen: the loaded guest natively and under every VMM mode, on one shared step cursor.

Stepping forward or back moves every mode; each column shows the mode's position, what its last step
did and its counters, the cost bars compare cycles so far, and the banner marks where trap-and-emulate
diverges (its first fidelity violation), which `d` jumps to.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.systems import supported_modes
from engine.vmm import MODES
from vizvm.compare_model import CompareSession
from vizvm.modes import rebuild
from vizvm.viewmodel import machine_title
from vizvm.widgets.compare import CostBars, ModeColumnView, divergence_text

PAGE = 100


class CompareScreen(Screen[None]):
    """Every mode side by side; s / b move all of them one step."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s,right", "step(1)", "Step", tooltip="Every mode one step forward"),
        Binding("b,left", "step(-1)", "Back", tooltip="Every mode one step back"),
        Binding("f,pagedown", f"step({PAGE})", f"+{PAGE}", tooltip=f"Every mode {PAGE} steps forward"),
        Binding("B,pageup", f"step(-{PAGE})", f"-{PAGE}", tooltip=f"Every mode {PAGE} steps back"),
        Binding("d", "divergence", "Divergence",
                tooltip="Go to the step where trap-and-emulate diverges (its first fidelity violation)"),
        Binding("g", "go_to_step", "Go to", tooltip="Put every mode at step N"),
        Binding("e,end", "end", "End", tooltip="Run every mode to its end", show=False),
        Binding("R,home", "reset", "Step 0", tooltip="Every mode back to step 0", show=False),
        Binding("escape,q", "close", "Close", tooltip="Back to the machine screen"),
    ]

    def __init__(self, system: Any, modes: tuple[str, ...] = MODES) -> None:
        super().__init__()
        self.source = system
        self.modes = tuple(m for m in modes if m in supported_modes(system.config.tlb_managed))
        self.session: CompareSession | None = None
        """Built by a worker thread (each mode runs to its end first); None until then."""
        self.title_text = machine_title(system).split(" · ")[0]  # the guest, without its mode

    def compose(self) -> ComposeResult:
        """Heading, a column per mode, the cost bars, the divergence banner, the footer."""
        yield Static(id="compare-heading")
        with Horizontal(id="compare-columns"):
            for mode in self.modes:
                yield ModeColumnView(id=f"column-{mode}", classes="mode-column")
        yield CostBars(id="cost-bars")
        yield Static(id="divergence")
        yield Footer()

    def on_mount(self) -> None:
        """Run every mode to its end in a worker thread, then show step 0."""
        self.query_one("#compare-heading", Static).update(
            f"[b]Compare modes[/b] · {self.title_text} · running every mode to its end…")
        self.run_worker(self._survey, thread=True, exclusive=True, name="compare-survey")

    def _survey(self) -> None:
        source = self.source
        session = CompareSession(lambda mode: rebuild(source, mode), self.modes)
        self.app.call_from_thread(self._ready, session)

    def _ready(self, session: CompareSession) -> None:
        if not self.is_attached:  # closed while the survey ran
            return
        self.session = session
        self.refresh_columns()

    def _move(self, step: int) -> None:
        if self.session is not None:  # keys pressed while the survey runs do nothing
            self.session.go_to(step)
            self.refresh_columns()

    def refresh_columns(self) -> None:
        """Push every mode's state at the cursor down to the widgets."""
        session = self.session
        if session is None:
            return
        columns = session.columns()
        for column in columns:
            self.query_one(f"#column-{column.mode}", ModeColumnView).column = column
        self.query_one(CostBars).columns = tuple(columns)
        self.query_one("#compare-heading", Static).update(
            f"[b]Compare modes[/b] · {self.title_text} · step {session.cursor:,} of "
            f"{session.end:,} · s/b step every mode, d the divergence, esc back")
        diverging = tuple(mode for mode, s in session.surveys.items() if s.first_fidelity is not None)
        text, reached = divergence_text(session.divergence(), diverging, session.cursor)
        banner = self.query_one("#divergence", Static)
        banner.update(text)
        banner.set_class(reached, "-reached")
        banner.set_class(session.divergence() is None, "-none")

    def action_step(self, delta: int) -> None:
        """Move the shared cursor."""
        if self.session is not None:
            self._move(self.session.cursor + delta)

    def action_divergence(self) -> None:
        """Go to just after the first fidelity violation."""
        if self.session is None:
            return
        event = self.session.divergence()
        if event is None:
            self.notify("No mode diverges: no sensitive instruction ran without trapping.", timeout=3)
            return
        self._move(event.step + 1)

    def action_go_to_step(self) -> None:
        """Ask for a step and put every mode there."""
        from vizvm.screens.dialogs import GoToStepDialog

        if self.session is None:
            return

        def chosen(step: int | None) -> None:
            if step is not None:
                self._move(step)

        self.app.push_screen(GoToStepDialog(self.session.cursor, self.session.end), chosen)

    def action_end(self) -> None:
        """Every mode at its end."""
        if self.session is not None:
            self._move(self.session.end)

    def action_reset(self) -> None:
        """Every mode at step 0."""
        self._move(0)

    def action_close(self) -> None:
        """Back to the machine screen."""
        self.dismiss(None)
