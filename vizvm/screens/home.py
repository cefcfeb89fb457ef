"""The home screen: every lesson with the student's progress, and free play on the shipped kernel.

`vizvm` opens here; `vizvm lesson NAME` opens here too and goes straight into the lesson, so Esc from
a lesson always comes back to this list. A lesson that does not load (a LessonError naming the file,
step and field, or a program that does not assemble) is reported in a dialog, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.asm import AssemblyFailed
from engine.lesson import Lesson, LessonError, load_lesson
from engine.lesson_runner import lesson_files
from vizvm.lesson_session import LessonSession
from vizvm.locations import find_lesson, lessons_dir
from vizvm.progress import ProgressStore
from vizvm.screens.machine import MachineScreen

FREE_PLAY = "free-play"
"""Row key of the free-play entry."""
HOME = Binding.Group("Lessons")
LOAD_ERRORS = (LessonError, AssemblyFailed, KeyError, ValueError, OSError)
"""What opening a lesson can raise: all shown in a dialog."""


@dataclass(frozen=True)
class LessonEntry:
    """A lesson file as the list shows it: loaded, or the reason it does not load."""

    path: Path
    lesson: Lesson | None
    error: str = ""


def load_entries(directory: Path) -> list[LessonEntry]:
    """Every lesson file in `directory`, in order; malformed ones keep their error."""
    entries = []
    for path in lesson_files(directory):
        try:
            entries.append(LessonEntry(path, load_lesson(path)))
        except LessonError as error:
            entries.append(LessonEntry(path, None, str(error)))
    return entries


class FreePlayScreen(MachineScreen):
    """The machine screen opened from the home screen: Esc goes back to the lessons."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Lessons", tooltip="Back to the lesson list", group=HOME),
    ]

    def on_mount(self) -> None:
        """Classroom mode maximizes the focused panel here too."""
        if getattr(self.app, "projector", False):
            from vizvm.projector import apply_to_screen

            self.call_after_refresh(apply_to_screen, self, True)

    def action_leave(self) -> None:
        """Back to the home screen."""
        self.dismiss(None)


class HomeScreen(Screen[None]):
    """The lesson picker."""

    CSS_PATH: ClassVar[str] = "../styles/lesson.tcss"
    AUTO_FOCUS = "#lessons"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the selected lesson (or free play)"),
        Binding("f", "free_play", "Free play", tooltip="The shipped kernel with every panel, no script"),
        Binding("R", "forget", "Restart", tooltip="Forget the selected lesson's progress and answers"),
        Binding("q", "app.quit", "Quit", tooltip="Leave vizvm"),
    ]

    def __init__(self, *, lesson: str | None = None, seed: int | None = None,
                 store: ProgressStore | None = None) -> None:
        super().__init__()
        self.store = store if store is not None else ProgressStore()
        self.requested = lesson
        self.seed = seed
        self.entries = load_entries(lessons_dir())

    def compose(self) -> ComposeResult:
        """Title, how to start, the table, the highlighted lesson's summary, keys."""
        yield Static("vizvm · lessons", id="home-title")
        yield Static("Step a simulated machine and watch privilege, traps, paging and virtualization happen. "
                     "Pick a lesson and press Enter, or f for free play. Your progress is saved.",
                     id="home-intro")
        yield DataTable(id="lessons", cursor_type="row", zebra_stripes=True)
        yield Static(id="home-summary")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table, report a damaged progress file, open a lesson asked for on the command line."""
        table = self.query_one(DataTable)
        table.add_columns("#", "Lesson", "Min", "Progress", "Score", "Topics")
        self.fill()
        if self.store.problem:
            self.notify(self.store.problem, title="Progress file", severity="warning", timeout=10)
            self.store.problem = None
        if self.requested is not None:
            self.call_later(self.open_named, self.requested)

    def fill(self) -> None:
        """(Re)draw every row with the saved progress, keeping the cursor."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        table.add_row("▶", Text("Free play", style="bold"), "-", "-", "-", "the shipped kernel, every panel",
                      key=FREE_PLAY)
        for entry in self.entries:
            number = entry.path.stem.split("-", 1)[0]
            if entry.lesson is None:
                table.add_row(number, Text(f"{entry.path.name} (does not load)"), "", "error", "", "",
                              key=str(entry.path))
                continue
            saved = self.store.get(entry.lesson.name)
            progress = "not started" if saved is None else saved.summary()
            score = "-" if saved is None else saved.score()
            table.add_row(number, entry.lesson.title, str(entry.lesson.minutes),
                          "done ✓" if progress == "done" else progress, score, ", ".join(entry.lesson.topics),
                          key=str(entry.path))
        table.move_cursor(row=min(max(row, 1 if self.entries else 0), table.row_count - 1))
        self._describe()

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key

    @on(DataTable.RowHighlighted)
    def _describe(self) -> None:
        summary = self.query_one("#home-summary", Static)
        key = self._selected()
        if key == FREE_PLAY:
            summary.update("Free play: the shipped teaching kernel running hello and count. Step, run, rewind, "
                           "load your own program (l). No script, no questions.")
            return
        entry = next((e for e in self.entries if str(e.path) == key), None)
        if entry is None:
            summary.update("")
        elif entry.lesson is None:
            summary.update(Text(entry.error))
        else:
            lesson = entry.lesson
            summary.update(Text(f"{lesson.summary}\n{len(lesson.steps)} steps · about {lesson.minutes} minutes · "
                                f"topics: {', '.join(lesson.topics)}"))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        """Open the highlighted row."""
        key = self._selected()
        if key == FREE_PLAY:
            self.action_free_play()
        elif key is not None:
            self.open_path(Path(key))

    def action_free_play(self) -> None:
        """The machine screen on the app's default machine."""
        factory = getattr(self.app, "factory", None)
        if factory is None:
            from vizvm.app import default_machine

            factory = default_machine
        machine, title = factory()
        self.app.push_screen(FreePlayScreen(machine, title))

    def action_forget(self) -> None:
        """Forget the highlighted lesson's progress."""
        entry = next((e for e in self.entries if str(e.path) == self._selected()), None)
        if entry is not None and entry.lesson is not None:
            self.store.forget(entry.lesson.name)
            self.fill()
            self.notify(f"{entry.lesson.title}: progress forgotten; it starts at step 1.", timeout=3)

    def open_named(self, name: str) -> None:
        """Open a lesson by name, number or file (as `vizvm lesson NAME`)."""
        try:
            path = find_lesson(name)
        except FileNotFoundError as error:
            self._problem(f"No lesson {name!r}", str(error))
            return
        self.open_path(path)

    def open_path(self, path: Path) -> None:
        """Load, resume and show a lesson; any problem goes to a dialog."""
        from vizvm.screens.lesson import LessonScreen

        try:
            session = LessonSession(load_lesson(path), store=self.store, seed=self.seed)
            session.start()
        except LOAD_ERRORS as error:
            self._problem(f"{path.name} cannot be opened", str(error))
            return
        self.seed = None  # --seed applies to the lesson named on the command line only
        self.app.push_screen(LessonScreen(session), lambda _: self.fill())

    def _problem(self, title: str, text: str) -> None:
        from vizvm.screens.dialogs import ErrorDialog

        self.app.push_screen(ErrorDialog(title, text, "Fix the lesson file, then open it again. "
                                                      "`vizvm lessons check FILE` reports the same problem."))
