"""Stopping at a step boundary: Ctrl-C, SIGTERM and submitit's pre-emption signal become a
request the loop honours between steps, so that the checkpoint it writes is exact.

What a signal that comes while a request is pending does:

- a second Ctrl-C (SIGINT) stops at once, inside a step or an evaluation, since a person
  pressing it again wants it now; the checkpoint to resume from is then the last one written
  at a step boundary;
- SIGTERM and the pre-emption signal, which schedulers and launchers send again (SLURM sends
  SIGTERM after submitit's signal; a launcher hands on what the terminal sent), repeat the
  request and change nothing, except that a pre-emption, whenever it comes, is what the
  request is for: the job then stops to be requeued, never just stops;
- once the stop is under way (last.pt and meta.json being written), any signal only counts
  as the above, so that those writes end whole."""

import os
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtlrun.distributed import Ranks


class Interrupted(KeyboardInterrupt):
    """Training stopped at a step boundary on Ctrl-C, SIGTERM, or submitit's pre-emption
    signal; its argument names the signal."""


class StoppedMidway(Interrupted):
    """Training stopped at once, inside a step or an evaluation, on a second Ctrl-C: its
    weights are not those of a step boundary, so nothing is saved from them."""


def preemption_signal() -> signal.Signals | None:
    """The signal submitit sends a job before pre-emption or its time limit (SIGUSR2 unless
    $SUBMITIT_PREEMPT_SIGNAL names another), when this process is a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that ask a run to stop: SIGINT, SIGTERM and, in a submitit job, its
    pre-emption signal."""
    preemption = preemption_signal()
    return (signal.SIGINT, signal.SIGTERM, *([preemption] if preemption else []))


class StopRequest:
    """The signals received so far, as one request (see the module's docstring)."""

    def __init__(self) -> None:
        self.reason: str | None = None  # the signal's name the stop is for
        self._preemption = preemption_signal()

    def take(self, signum: int) -> bool:
        """Count a signal in; returns whether it asks to stop at once (a second Ctrl-C)."""
        at_once = self.reason is not None and signum == signal.SIGINT
        if self.reason is None or signum == self._preemption:
            self.reason = signal.Signals(signum).name
        return at_once


class StopSignals:
    """Turns SIGINT / SIGTERM (or submitit's pre-emption signal) into a request the loop
    honours between steps, so the checkpoint it writes is exact; a second Ctrl-C interrupts at
    once (`StoppedMidway`). On leaving, the handlers before it (submitit's) are back.

    Under DDP the ranks stop together: `check` asks whether any rank was signalled, and no
    signal stops a rank at once (one rank stopping alone would leave the others waiting; the
    process that started the ranks ends them on a second Ctrl-C)."""

    def __init__(self, ranks: "Ranks | None" = None) -> None:
        self.ranks = ranks  # None: one process
        self.request = StopRequest()
        self._stopping = False  # the stop is under way: its writes are not interrupted
        self._previous: dict[int, Any] = {}

    @property
    def received(self) -> str | None:
        return self.request.reason

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in stop_signals():
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        at_once = self.request.take(signum)
        if at_once and not self._stopping and not (self.ranks and self.ranks.distributed):
            self._stopping = True
            raise StoppedMidway(self.received)

    def check(self) -> None:
        stop = self.received is not None
        if self.ranks.any(stop) if self.ranks else stop:
            self._stopping = True
            raise Interrupted(self.received or "a stop on another rank")
