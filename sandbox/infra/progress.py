"""Progress of the stack's phases (``up``, ``down``): a Reporter the shells choose (the CLI's rich console, the pytest plugin's plain lines, silence by default) and the timed Phases that drive it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class PhaseResult:
    name: str
    seconds: float
    action: str  # what was done: "created", "already ready", ...


class Reporter:
    """Progress of phases. The default prints nothing; the CLI passes a rich one (stderr,
    ``sandbox.cli.common.ConsoleReporter``), the pytest plugin ``LineReporter``."""

    def start(self, phase: str, title: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def done(self, result: PhaseResult) -> None:
        pass

    def failed(self, phase: str, seconds: float, error: BaseException) -> None:
        pass


class LineReporter(Reporter):
    """Phase lines with durations as plain text, one ``write`` call per line."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def start(self, phase: str, title: str) -> None:
        self.write(f"▶ {title} ...")

    def note(self, message: str) -> None:
        self.write(f"  {message}")

    def done(self, result: PhaseResult) -> None:
        self.write(f"✓ {result.name}: {result.action} ({result.seconds:.1f}s)")

    def failed(self, phase: str, seconds: float, error: BaseException) -> None:
        what = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        self.write(f"✗ {phase}: {what} ({seconds:.1f}s)")
        if isinstance(error, KeyboardInterrupt):
            self.write("  run `sandbox up` again: it resumes where this one stopped")


@dataclass
class Phases:
    reporter: Reporter
    results: list[PhaseResult] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str, title: str) -> Iterator[list[str]]:
        """Time a phase; the body appends what it did to the yielded list."""
        self.reporter.start(name, title)
        started = time.monotonic()
        action: list[str] = []
        try:
            yield action
        except BaseException as e:
            self.reporter.failed(name, time.monotonic() - started, e)
            raise
        result = PhaseResult(
            name, round(time.monotonic() - started, 2), action[-1] if action else "ok"
        )
        self.results.append(result)
        self.reporter.done(result)
