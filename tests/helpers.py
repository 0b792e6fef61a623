"""The `mtlrun` command as a user types it: in a subprocess (`run_mtlrun`), where a real
process matters, or in this process (`run_cli`), which spares the seconds every new process
spends importing torch before it does anything."""

import io
import logging
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch

# The threads torch uses in a new process with this environment, taken before any test sets
# its own: a run in this process uses as many, so that its sums are a subprocess's, bit for bit.
PROCESS_THREADS = torch.get_num_threads()


def mtlrun_command(*args: str) -> list[str]:
    """The argv of `mtlrun ARGS...` with this interpreter."""
    return [sys.executable, "-m", "mtlrun", *args]


def start_mtlrun(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `mtlrun ARGS...` in `cwd` without waiting, for a test that signals it: stdout and
    stderr are piped as text, output unbuffered, and SIGINT handled as from a terminal (a shell
    without job control, CI's perhaps, starts background commands with SIGINT ignored, and
    Python keeps it so until mtlrun's loop sets its own handler). `env` is set on top of this
    process's environment."""
    return subprocess.Popen(
        mtlrun_command(*args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def press_twice(process: subprocess.Popen, signum: int = signal.SIGINT) -> None:
    """Send `signum` to `process` twice in quick succession, as a person pressing Ctrl-C twice:
    the second once the first has been delivered (the kernel keeps one pending signal of a
    kind, so two sent at once would be one)."""
    process.send_signal(signum)
    status = Path(f"/proc/{process.pid}/status")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        masks = [line.split()[1] for line in status.read_text().splitlines() if "Pnd:" in line]
        if not any(int(mask, 16) & 1 << (signum - 1) for mask in masks):
            break
        time.sleep(0.001)
    process.send_signal(signum)


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


def run_cli(
    cwd: Path, *args: str, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `mtlrun ARGS...` in `cwd` in this process, by calling `mtlrun.cli.main()`, and return
    what `run_mtlrun` would: the exit status, and stdout and stderr as text (what Hydra and rich
    print included). A `SystemExit` becomes the status (0 when `main` returns); an exception
    that would end the process becomes its traceback on stderr and status 1, as Python does.
    `env` is set on top of this process's environment for the call only. Afterwards everything
    the command changes in the process is as before: cwd, argv, the environment, Hydra's global
    state, logging, warnings filters, signal handlers and torch's global settings."""
    from mtlrun import cli

    with as_a_fresh_process(cwd, ["mtlrun", *args], env or {}) as (stdout, stderr):
        try:
            cli.main()
            returncode = 0
        except SystemExit as exit:
            returncode = exit_status(exit.code)
        except Exception:
            traceback.print_exc()
            returncode = 1
    output = (stdout.getvalue(), stderr.getvalue())
    result = subprocess.CompletedProcess(["mtlrun", *args], returncode, *output)
    if check and returncode != 0:
        raise AssertionError(f"mtlrun {' '.join(args)} exited with {returncode}:\n{result.stderr}")
    return result


def exit_status(code: Any) -> int:
    """The exit status of a process that raised `SystemExit(code)`; Python prints a code that
    is not a number on stderr and exits with 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# Python's own warning filters, which a new process starts with (pytest adds its own).
PROCESS_WARNING_FILTERS = [
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
]


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning on the current stderr, as a process without pytest does."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextmanager
def as_a_fresh_process(
    cwd: Path, argv: list[str], env: dict[str, str]
) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Run the body as in a new process started in `cwd` with `argv` and `env` added to the
    environment, its stdout and stderr captured in the two streams it is given; then put back
    what it changed in this one."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    saved_cwd, saved_argv, saved_path = os.getcwd(), sys.argv, list(sys.path)
    saved_environ = dict(os.environ)
    saved_handlers = {
        signum: signal.getsignal(signum)
        for signum in signal.valid_signals()
        if signum not in (signal.SIGKILL, signal.SIGSTOP)
    }
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_torch = torch_state()
    saved_loggers = logger_states()
    saved_random = random.getstate()
    GlobalHydra.instance().clear()
    try:
        os.chdir(cwd)
        sys.argv = list(argv)
        os.environ.update(env)
        torch.set_num_threads(int(env.get("OMP_NUM_THREADS", PROCESS_THREADS)))
        torch.use_deterministic_algorithms(False)  # as a new process starts, whatever ran before
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for action, category, module in reversed(PROCESS_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            warnings.showwarning = show_warning
            with redirect_stdout(stdout), redirect_stderr(stderr):
                yield stdout, stderr
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        restore_loggers(saved_loggers, (stdout, stderr))
        for signum, handler in saved_handlers.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)
        os.environ.clear()
        os.environ.update(saved_environ)
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        random.setstate(saved_random)
        restore_torch(saved_torch)


def logger_states() -> dict[str, tuple[int, list[logging.Handler], bool, bool]]:
    """Level, handlers, propagation and whether disabled, of the root logger ("") and every
    other logger made so far: Hydra's logging set-up replaces them."""
    loggers = {"": logging.getLogger()} | {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name, logger in loggers.items()
    }


def restore_loggers(
    saved: dict[str, tuple[int, list[logging.Handler], bool, bool]], captured: tuple[Any, ...]
) -> None:
    """Put back the loggers that `logger_states` saw as they were, and take off every logger
    the handlers that write to the `captured` streams (Hydra's console handler, made while
    they stood for stdout); the loggers made since keep what their library gave them."""
    for name, (_, handlers, _, _) in logger_states().items():
        logger = logging.getLogger(name or None)
        for handler in handlers:
            if getattr(handler, "stream", None) in captured:
                logger.removeHandler(handler)
            elif name in saved and handler not in saved[name][1]:
                handler.close()  # added by the command to a logger that is put back below
        if name in saved:
            level, logger.handlers[:], logger.propagate, logger.disabled = saved[name]
            logger.setLevel(level)


def torch_state() -> dict[str, Any]:
    """The global settings of torch that a run changes: threads, deterministic algorithms,
    cuDNN's autotuner, the default random generator."""
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "benchmark": torch.backends.cudnn.benchmark,
        "rng": torch.get_rng_state(),
    }


def restore_torch(saved: dict[str, Any]) -> None:
    torch.set_num_threads(saved["threads"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.backends.cudnn.benchmark = saved["benchmark"]
    torch.set_rng_state(saved["rng"])
