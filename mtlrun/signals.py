"""Stopping at a step boundary: Ctrl-C, SIGTERM and submitit's pre-emption signal become a
request the loop honours between steps, so that the checkpoint it writes is exact."""

import os
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtlrun.distributed import Ranks


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on Ctrl-C, SIGTERM, or submitit's pre-emption
    signal; its argument names the signal."""


def preemption_signal() -> signal.Signals | None:
    """The signal submitit sends a job before pre-emption or its time limit (SIGUSR2 unless
    $SUBMITIT_PREEMPT_SIGNAL names another), when this process is a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


class StopSignals:
    """Turns the first SIGINT / SIGTERM (or submitit's pre-emption signal) into a request the
    loop honours between steps, so the checkpoint it writes is exact; a second signal
    interrupts at once. On leaving, the handlers before it (submitit's) are back.

    Under DDP the ranks stop together: `check` asks whether any rank was signalled, and a
    second signal is only the first again (a launcher may hand on what the terminal already
    sent, and one rank stopping alone would leave the others waiting)."""

    def __init__(self, ranks: "Ranks | None" = None) -> None:
        self.ranks = ranks  # None: one process
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            preemption = preemption_signal()
            for signum in (signal.SIGINT, signal.SIGTERM, *([preemption] if preemption else [])):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and not (self.ranks and self.ranks.distributed):
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def check(self) -> None:
        stop = self.received is not None
        if self.ranks.any(stop) if self.ranks else stop:
            raise Interrupted(self.received or "a stop on another rank")
