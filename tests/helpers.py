"""The `mtlrun` command in a subprocess, as a user types it: one way for every test to run it."""

import os
import subprocess
import sys
from pathlib import Path


def mtlrun_command(*args: str) -> list[str]:
    """The argv of `mtlrun ARGS...` with this interpreter (for a `subprocess.Popen`)."""
    return [sys.executable, "-m", "mtlrun", *args]


def run_mtlrun(
    cwd: Path,
    *args: str,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run `mtlrun ARGS...` in `cwd` and wait for it; stdout and stderr are captured as text.

    The child inherits this process's environment (MTLRUN_DATA included), with `env` set on top
    of it. With `check`, a non-zero exit status fails the test, showing the command's stderr.
    `timeout` (seconds) keeps a hung command from hanging the test run."""
    result = subprocess.run(
        mtlrun_command(*args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"mtlrun {' '.join(args)} exited with {result.returncode}:\n{result.stderr}"
        )
    return result
