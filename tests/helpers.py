"""The `mtlrun` command in a subprocess, as a user types it: one way for every test to run it."""

import os
import signal
import subprocess
import sys
from pathlib import Path


def mtlrun_command(*args: str) -> list[str]:
    """The argv of `mtlrun ARGS...` with this interpreter."""
    return [sys.executable, "-m", "mtlrun", *args]


def start_mtlrun(cwd: Path, *args: str) -> subprocess.Popen:
    """Start `mtlrun ARGS...` in `cwd` without waiting, for a test that signals it: stdout and
    stderr are piped as text, output unbuffered, and SIGINT handled as from a terminal (a shell
    without job control, CI's perhaps, starts background commands with SIGINT ignored, and
    Python keeps it so until mtlrun's loop sets its own handler)."""
    return subprocess.Popen(
        mtlrun_command(*args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    process = subprocess.Popen(["sleep", "60"])
    process.kill()
    process.wait()
    return process.pid


def run_mtlrun(
    cwd: Path,
    *args: str,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    launcher: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Run `mtlrun ARGS...` in `cwd` and wait for it; stdout and stderr are captured as text.

    The child inherits this process's environment (MTLRUN_DATA included), with `env` set on top
    of it. With `check`, a non-zero exit status fails the test, showing the command's stderr.
    `timeout` (seconds) keeps a hung command from hanging the test run. `launcher` runs
    Python under another program: `python -m torch.distributed.run ...` for torchrun."""
    command = mtlrun_command(*args)
    if launcher:
        command = [*launcher, *command[1:]]
    result = subprocess.run(
        command,
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
