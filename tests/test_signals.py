"""What a signal does to a run, with real signals sent to this process: the first asks for a
stop at the next step boundary; a second Ctrl-C stops at once; a repeated SIGTERM or
pre-emption signal only repeats the request, and a pre-emption is what the request is for,
whenever it comes; once the stop is under way, no signal interrupts its writes."""

import os
import signal

import pytest

from mtlrun.signals import Interrupted, StoppedMidway, StopRequest, StopSignals


def send(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)  # Python runs the handler before the next line


@pytest.fixture
def submitit_job(monkeypatch):
    """This process as a submitit job whose pre-emption signal is SIGUSR1."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")


def test_a_second_ctrl_c_stops_at_once_and_a_stop_under_way_is_not_interrupted():
    with StopSignals() as stop:
        send(signal.SIGINT)
        assert stop.received == "SIGINT"  # a request: nothing raised yet
        with pytest.raises(StoppedMidway) as midway:
            send(signal.SIGINT)
        assert midway.value.args == ("SIGINT",)
        send(signal.SIGINT)  # the stop is under way: its writes end whole
    with StopSignals() as stop:
        send(signal.SIGTERM)
        with pytest.raises(Interrupted) as boundary:
            stop.check()
        assert not isinstance(boundary.value, StoppedMidway)
        send(signal.SIGINT)  # after the boundary's stop: last.pt is being written
        send(signal.SIGINT)


def test_a_repeated_sigterm_only_repeats_the_request():
    with StopSignals() as stop:
        send(signal.SIGTERM)
        send(signal.SIGTERM)
        assert stop.received == "SIGTERM"
        with pytest.raises(Interrupted, match="SIGTERM"):
            stop.check()


def test_a_second_preemption_signal_keeps_the_requeue(submitit_job):
    """SLURM sends SIGTERM besides submitit's signal, and a launcher may send either twice:
    the job still stops at a step boundary, for the pre-emption (so that it is requeued)."""
    with StopSignals() as stop:
        send(signal.SIGUSR1)
        send(signal.SIGTERM)
        send(signal.SIGUSR1)
        with pytest.raises(Interrupted) as stopped:
            stop.check()
        assert not isinstance(stopped.value, StoppedMidway)
        assert stopped.value.args == ("SIGUSR1",)
    # Ctrl-C first, then the pre-emption: the stop is for the pre-emption.
    request = StopRequest()
    assert not request.take(signal.SIGINT)
    assert not request.take(signal.SIGUSR1)
    assert request.reason == "SIGUSR1"
    assert request.take(signal.SIGINT)  # a second Ctrl-C still means now


def test_the_handlers_before_are_back_after_the_run():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
