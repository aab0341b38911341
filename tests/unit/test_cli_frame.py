from __future__ import annotations

import click
from click.testing import CliRunner

from sandbox.cli.common import handle_errors
from sandbox.cli.main import main
from sandbox.errors import EXIT_ENVIRONMENT, EXIT_USAGE, DockerUnavailable, InputError


def test_help_lists_exit_codes() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Exit codes:" in result.output
    assert "3  environment error" in result.output


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == EXIT_USAGE


def _command(error: Exception) -> click.Command:
    @click.command()
    @handle_errors
    def cmd() -> None:
        raise error

    return cmd


def test_errors_map_to_exit_codes_without_traceback() -> None:
    result = CliRunner().invoke(_command(DockerUnavailable("no engine", hint="start Docker")))
    assert result.exit_code == EXIT_ENVIRONMENT
    assert "Traceback" not in result.output
    result = CliRunner().invoke(
        _command(InputError("bad", file="a.yaml", line=3, field="checks[0]"))
    )
    assert result.exit_code == EXIT_USAGE
    assert "a.yaml:3: checks[0]: bad" in result.output


def test_error_text_is_plain_when_not_a_terminal() -> None:
    result = CliRunner().invoke(_command(InputError("bad [value]", field="x")))
    assert "\x1b[" not in result.output
    assert "x: bad [value]" in result.output
