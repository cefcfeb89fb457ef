"""A student's pass through one lesson: predict, run, reveal, move on; saved as they go. No textual here.

The lesson pane shows a `LessonSession`; the screen calls `next`, `previous` and `answer`, then
re-syncs its bridge with the runner's machine. Rules a teacher can rely on:

* Entering a step shows its narration. A step with a question waits for the answer (or for `next`,
  which reveals without scoring); a step without one runs its action at once.
* A step's action always runs from the state the lesson left (the end of the previous step's action):
  whatever the student stepped or rewound freely in between is undone first.
* `previous` rewinds the machine exactly (the engine is deterministic) and shows the previous step
  again; a question already answered is not asked twice.
* Progress (step shown, answers, seed) is saved on every move; reopening replays the finished steps
  headless and continues where the student stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.lesson import Action, Expectation, Lesson, LessonStep, Outcome, ResolvedQuestion
from engine.lesson_runner import LessonRunner
from vizvm.progress import Answer, LessonProgress, ProgressStore


@dataclass(frozen=True)
class Check:
    """One line of the results: an expectation that held (ok) or failed, in words."""

    ok: bool
    text: str


def describe_action(action: Action) -> str:
    """What the action does, in words (shown in the pane)."""
    do = action.do
    where = ", ".join(f"{key}={value}" for key, value in action.where.items())
    detail = f" ({where})" if where else ""
    if do == "step":
        return "step 1 instruction" if action.count == 1 else f"step {action.count} instructions"
    if do == "substep":
        if action.count == 1:
            return "reveal the next page-walk reference (the first starts an instruction)"
        return f"reveal the next {action.count} page-walk references (the first starts an instruction)"
    if do == "run":
        return f"run {action.count:,} steps"
    if do == "run_until":
        if action.event:
            article = "an" if action.event[0] in "aeiou" else "a"
            return f"run until {article} {action.event} event{detail}"
        if action.console is not None:
            whose = f"vm{action.vm}'s console" if action.vm else "the console"
            return f"run until {whose} shows {action.console!r}"
        return f"run until {action.condition}"
    return {"none": "nothing to run: look at the machine", "reset": "reset the machine to step 0",
            "goto_label": f"run until pc reaches {action.label}", "breakpoint": f"set a breakpoint at {action.label}",
            "toggle_panel": f"show or hide the {action.panel} panel"}.get(do, do)


def describe_expectation(expectation: Expectation) -> str:
    """An expectation in words: ``a trap event with vector=13``, ``ring == 0``..."""
    if expectation.event is not None:
        where = ", ".join(f"{key}={value}" for key, value in expectation.where.items())
        detail = f" with {where}" if where else ""
        if expectation.count is not None:
            return f"{expectation.count} {expectation.event} event(s){detail}"
        article = "an" if expectation.event[0] in "aeiou" else "a"
        return f"{article} {expectation.event} event{detail}"
    if expectation.register is not None:
        return f"{expectation.register} == {expectation.equals}"
    if expectation.reference is not None:
        where = ", ".join(f"{key}={value}" for key, value in expectation.where.items())
        return f"walk reference {expectation.reference} is shown" + (f" ({where})" if where else "")
    if expectation.console is not None:
        whose = f"vm{expectation.vm}'s console" if expectation.vm else "the console"
        return f"{whose} shows {expectation.console!r}"
    if expectation.counter is not None:
        bounds = [f"{words} {value:,}" for words, value in (("==", expectation.equals), (">=", expectation.at_least),
                                                            ("<=", expectation.at_most)) if value is not None]
        return f"counter {expectation.counter} " + " and ".join(bounds)
    return "the machine has halted" if expectation.halted else "the machine is still running"


def response_problem(question: ResolvedQuestion, text: str) -> str | None:
    """Why a typed answer cannot be scored (empty, not a number, no such choice), or None."""
    value = text.strip()
    if not value:
        return "Type an answer first."
    try:
        number = int(value, 0)
    except ValueError:
        kind = "a choice number" if question.kind == "choice" else "a number (decimal, or hex with 0x)"
        return f"{value!r} is not {kind}."
    if question.kind == "choice" and not 1 <= number <= len(question.choices):
        return f"Choose 1 to {len(question.choices)}."
    return None


class LessonSession:
    """One lesson on one machine, with the student's place and answers."""

    def __init__(self, lesson: Lesson, *, store: ProgressStore | None = None, seed: int | None = None) -> None:
        self.lesson = lesson
        self.store = store
        saved = store.get(lesson.name) if store is not None else None
        if saved is not None and seed is not None and saved.seed is not None and saved.seed != seed:
            saved = None  # a new problem: start over
            if store is not None:
                store.forget(lesson.name)
        if seed is None and saved is not None:
            seed = saved.seed
        self.runner = LessonRunner(lesson, seed=seed)
        self.progress = saved or LessonProgress(total=len(lesson.steps), seed=self.runner.seed)
        self.progress.total, self.progress.seed = len(lesson.steps), self.runner.seed
        self.index = 0
        """The step shown (0-based)."""
        self.asking = False
        """True while the shown step's question waits for an answer (its action has not run)."""
        self.checks: tuple[Check, ...] = ()
        self.steps_run = 0
        """How many machine steps the shown step's action ran."""
        self._after: dict[int, int] = {}
        """Machine step count right after each performed lesson step's action."""
        self._results: dict[int, tuple[tuple[Check, ...], int]] = {}
        """Checks and steps run of each step performed so far (the engine is deterministic: they never change)."""

    # ------------------------------------------------------------------ what is shown
    @property
    def total(self) -> int:
        """Number of steps."""
        return len(self.lesson.steps)

    @property
    def step(self) -> LessonStep:
        """The step shown."""
        return self.lesson.steps[self.index]

    @property
    def question(self) -> ResolvedQuestion | None:
        """The shown step's question with generated values filled in."""
        return self.runner.question(self.index)

    @property
    def answer(self) -> Answer | None:
        """The student's answer to the shown step's question, if any."""
        return self.progress.answers.get(self.index)

    @property
    def at_end(self) -> bool:
        """The last step is shown and its action has run."""
        return self.index == self.total - 1 and not self.asking

    @property
    def question_count(self) -> int:
        """How many steps ask a question."""
        return sum(step.question is not None for step in self.lesson.steps)

    # ------------------------------------------------------------------ moving
    def start(self) -> None:
        """Resume where the saved progress stopped (steps before it replay headless), or begin at step 1."""
        target = min(self.progress.step, self.total - 1)
        for index in range(target):
            self.index = index
            self._record(self.runner.perform(index))
        self._enter(target)

    def next(self) -> bool:
        """Reveal a waiting question's answer (unscored), else go to the next step; False at the end."""
        if self.asking:
            self._perform()
            return True
        if self.index + 1 >= self.total:
            self._save()
            return False
        self._enter(self.index + 1)
        return True

    def previous(self) -> bool:
        """Rewind the machine exactly and show the previous step; False on the first step."""
        if self.index == 0:
            return False
        target = self.index - 1
        step = self.lesson.steps[target]
        if target in self._results and (step.question is None or target in self.progress.answers):
            self.runner.rewind_to(target + 1)  # straight to the end of its action: no need to run it again
            self._forget_after(target + 1)
            self.index, self.asking = target, False
            self.checks, self.steps_run = self._results[target]
            self._save()
        else:
            self.runner.rewind_to(target)
            self._forget_after(target)
            self._enter(target)
        return True

    def answer_with(self, text: str) -> bool:
        """Score `text` for the waiting question, then run the action (the reveal); returns whether it was right.

        Raises ValueError (with a message for the student) when `text` cannot be scored.
        """
        question = self.question
        if not self.asking or question is None:
            raise ValueError("No question is waiting for an answer.")
        problem = response_problem(question, text)
        if problem is not None:
            raise ValueError(problem)
        correct = question.is_correct(text)
        self.progress.answers[self.index] = Answer(text.strip(), correct)
        self._perform()
        return correct

    def restart(self) -> None:
        """Forget the answers and go back to step 1."""
        self.runner.rewind_to(0)
        self._after.clear()
        self.progress = LessonProgress(total=self.total, seed=self.runner.seed)
        if self.store is not None:
            self.store.forget(self.lesson.name)
        self._enter(0)

    # ------------------------------------------------------------------ internals
    def _enter(self, index: int) -> None:
        self.index = index
        self.checks = ()
        self.steps_run = 0
        step = self.lesson.steps[index]
        if step.question is not None and index not in self.progress.answers:
            self.asking = True
            self._return_to_lesson_state()
            self._save()
        else:
            self._perform()

    def _return_to_lesson_state(self) -> None:
        """Undo free stepping: put the machine where the lesson left it (before the shown step's action)."""
        left = self._after.get(self.index - 1, self.runner.travel.initial.steps)
        if self.runner.machine.steps != left:
            self.runner.travel.go_to(left)

    def _perform(self) -> None:
        self._return_to_lesson_state()
        self._record(self.runner.perform(self.index))
        self.asking = False
        self.checks, self.steps_run = self._results[self.index]
        if self.index == self.total - 1:
            self.progress.done = True
        self._save()

    def _record(self, outcome: Outcome) -> None:
        """Keep where the shown step's action left the machine, and its checks."""
        self._after[self.index] = self.runner.machine.steps
        self._results[self.index] = (self._checks(self.runner.check(self.index, outcome)), outcome.steps_run)

    def _forget_after(self, first: int) -> None:
        for index in [index for index in self._after if index >= first]:
            del self._after[index]

    def _checks(self, failures: list[str]) -> tuple[Check, ...]:
        failed = {}
        other = []
        for failure in failures:
            head, _, rest = failure.partition(": ")
            if head.startswith("expect[") and head.endswith("]"):
                failed[int(head[7:-1])] = rest
            else:
                other.append(Check(False, failure))
        checks = [Check(index not in failed, failed.get(index) or describe_expectation(expectation))
                  for index, expectation in enumerate(self.step.expect)]
        return tuple(checks + other)

    def _save(self) -> None:
        self.progress.step = self.index
        if self.store is not None:
            self.store.put(self.lesson.name, self.progress)
