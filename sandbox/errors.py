"""The sandbox's exception tree and its exit codes.

Every error a user can cause or meet is one of these; the CLI prints ``str(error)`` (and
``error.hint`` when set) and exits with ``error.exit_code``. Nothing else escapes as a traceback.

    SandboxError                 exit 1 unless a subclass says otherwise
    ├── CheckFailed              exit 1: a scenario check, a model check or a health check failed
    ├── InputError               exit 2: bad usage or bad input (scenario files, flags, manifests)
    └── EnvironmentProblem       exit 3: Docker, tools, cluster, network
        ├── DockerUnavailable    the Docker engine does not answer
        ├── ToolError            a tool (k3d, kubectl) is missing, fails to download or failed
        │   └── ChecksumMismatch a download does not match the published checksum
        ├── ClusterError         the cluster is missing, foreign, or not healthy
        ├── TargetUnreachable    nothing listens where a check's requests go (every one refused)
        └── WaitTimeout          a bounded wait gave up; says what for and the last status seen
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class SandboxError(Exception):
    """Base of every error the sandbox raises on purpose."""

    exit_code = EXIT_CHECK_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class CheckFailed(SandboxError):
    exit_code = EXIT_CHECK_FAILED


class InputError(SandboxError):
    """Bad input. ``file``/``line``/``field`` locate it when known."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        where = ""
        if file:
            where = file + (f":{line}" if line else "") + ": "
        if field:
            where += f"{field}: "
        super().__init__(where + message, hint=hint)


class EnvironmentProblem(SandboxError):
    exit_code = EXIT_ENVIRONMENT


class DockerUnavailable(EnvironmentProblem):
    pass


class ToolError(EnvironmentProblem):
    pass


class ChecksumMismatch(ToolError):
    pass


class ClusterError(EnvironmentProblem):
    pass


class TargetUnreachable(EnvironmentProblem):
    """Every request of a check was refused and the target says nothing will listen there.

    ``check_result`` is the check's result so far (a ``probe.CheckResult``), set by the prober."""

    check_result: object = None


class WaitTimeout(EnvironmentProblem):
    """A bounded wait gave up. The message names what it waited for and the last status seen."""

    def __init__(
        self, what: str, timeout: float, last_seen: str, *, hint: str | None = None
    ) -> None:
        self.what = what
        self.timeout = timeout
        self.last_seen = last_seen
        super().__init__(
            f"timed out after {timeout:g}s waiting for {what}; last seen: {last_seen}", hint=hint
        )
