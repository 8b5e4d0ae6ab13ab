"""Run ``oskit`` in-process through :func:`kit.cli.main` (the one KitError → exit code translation)."""

from __future__ import annotations

from dataclasses import dataclass

from click.testing import CliRunner


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def oskit(*args: str, env: dict[str, str] | None = None) -> Result:
    from kit.cli import main

    runner = CliRunner()
    code = 0
    with runner.isolation(env=env) as streams:
        out, err = streams[0], streams[1]
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout = out.getvalue().decode()
        stderr = err.getvalue().decode() if err is not None else ""
    return Result(code, stdout, stderr)
