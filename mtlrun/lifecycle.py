"""A run's lifecycle around the loop: the experiment built before anything is written, the run
folder started, the status it ends with (completed, failed or interrupted), the signals that
stop it at a step boundary (Ctrl-C, SIGTERM, submitit's pre-emption signal), and the ranks of a
data-parallel run started (`trainer.devices=N`) or joined (torchrun)."""

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import mtlrun.plugins as plugins
from mtlrun.distributed import SINGLE, Ranks, join, leave
from mtlrun.errors import PluginError, UserError
from mtlrun.experiment import build
from mtlrun.loggers import Logger, LoggerConfig, Loggers
from mtlrun.loop import fit
from mtlrun.plugin_faults import plugin_fault
from mtlrun.runfolder import RunFolder, SilentRunFolder, disk_fault, this_process
from mtlrun.signals import Interrupted, StopSignals, preemption_signal
from mtlrun.terminal import Reporter
from mtlrun.torchrun import joined_ranks


def train(
    cfg: DictConfig,
    run_dir: Path,
    resume: bool = False,
    command: str | None = None,
    ranks: Ranks | None = None,
) -> dict[str, Any]:
    """Train from a validated `cfg` into `run_dir` (continuing from its last.pt with
    `resume`); meta.json's status ends as completed, failed or interrupted. The experiment is
    built first (the data loaded and checked against the tasks and the model), so that a
    mistake found there leaves nothing of the run's own in the folder. `command` is the
    command line meta.json records (the one typed, when None). With `trainer.devices=N` this
    process starts N ranks and waits for them; under torchrun it is one of the ranks. Only
    rank 0 writes into `run_dir`."""
    if ranks is None:
        ranks = joined_ranks(cfg) or SINGLE
        devices = int(cfg.trainer.get("devices", 1))
        if devices > 1 and not ranks.distributed:
            return spawn(cfg, run_dir, resume, command, devices)
    if ranks.distributed:
        cfg.trainer.devices = ranks.size  # what config.yaml records: resume starts as many
    # Rank 0 writes the run; the other ranks' folder, reporter and loggers write nothing.
    run = RunFolder(run_dir) if ranks.leader else SilentRunFolder(run_dir)
    with StopSignals(ranks) as stop:
        experiment = build(cfg, ranks)
        stop.check()  # a Ctrl-C while the data loaded: nothing is written
        try:
            if resume:
                run.update_meta(status="running", end_time=None, **this_process())
            else:
                run.start(device=str(cfg.device), seed=int(cfg.seed), command=command)
                run.write_config(cfg)
            ranks_field = {"ranks": ranks.size} if ranks.distributed else {}
            run.update_meta(
                device=str(experiment.device), threads=torch.get_num_threads(), **ranks_field
            )
        except OSError as error:
            fault = disk_fault(error, run_dir)
            if fault:
                raise UserError(f"{fault}; free it, or train into another folder") from None
            raise
        show_progress = bool(cfg.trainer.get("progress", True))
        reporter = Reporter(run.log_path if ranks.leader else None, show_progress)
        try:
            loggers = (
                Loggers(run_dir, cfg.get("logger"))
                if ranks.leader
                else Logger(LoggerConfig(), run_dir)
            )
            summary = fit(experiment, run, reporter, loggers, stop, resume)
        except KeyboardInterrupt as interrupt:
            run.finish("interrupted")
            how = interrupt.args[0] if interrupt.args else "SIGINT"
            reporter.print(f"{how}: stopped; continue with `mtlrun resume {run_dir}`")
            raise
        except BaseException as error:
            fault = disk_fault(error, run_dir)
            blamed = None if fault else plugin_fault(cfg, error)
            if blamed is not None or isinstance(error, PluginError):
                # A plug-in's fault: one line, its traceback kept with the run.
                path = run.write_traceback(error)
                blamed = PluginError(f"{blamed or error}; traceback in {path}")
            reason = fault or first_line(blamed or error)
            try:
                run.finish("failed", error=reason)
            except OSError:
                pass  # the disk that failed the run refuses meta.json too: it says "running"
            if fault:
                raise UserError(
                    f"{fault}; free it, then continue with `mtlrun resume {run_dir}`"
                ) from None
            if blamed is not None:
                raise blamed from None
            raise
        finally:
            try:
                reporter.close()
            except OSError:
                pass  # train.log's last lines, on a disk that is full
    run.finish("completed", seconds=summary["seconds"])
    return summary


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else repr(error)


# Where a worker tells the process that started it how it ended: completed, interrupted, or a
# user error's one line. Workers that end so exit 0, so that the first to end does not make
# torch's process context stop the others before rank 0 has written meta.json.
OUTCOME = "outcome-{rank}.json"
GRACE_SECONDS = 10.0  # how long the other ranks may take to end after one ends with an error


def spawn(
    cfg: DictConfig, run_dir: Path, resume: bool, command: str | None, devices: int
) -> dict[str, Any]:
    """Train `cfg` on `devices` new processes, one per rank, and wait for them. This process
    takes the signals (Ctrl-C, SIGTERM, submitit's pre-emption signal) and hands each on to the
    ranks, which stop together at the next step boundary; a second one kills them. Returns the
    run's summary; raises rank 0's user error as one line, or `Interrupted`."""
    import torch.multiprocessing as mp

    config = OmegaConf.to_container(cfg, resolve=True)
    threads = max(1, torch.get_num_threads() // devices)
    received: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mtlrun-ranks-") as meeting:
        outcomes = [Path(meeting, OUTCOME.format(rank=rank)) for rank in range(devices)]
        arguments = (devices, config, str(run_dir), resume, command, meeting, threads)
        context = mp.start_processes(
            _worker,
            args=(*arguments, plugins.loaded()),
            nprocs=devices,
            join=False,
            start_method="spawn",
        )

        def hand_on(signum: int, frame: Any) -> None:
            received.append(signal.Signals(signum).name)
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGKILL if len(received) > 1 else signum)

        preemption = preemption_signal()
        taken = (signal.SIGINT, signal.SIGTERM, *([preemption] if preemption else []))
        previous = {signum: signal.signal(signum, hand_on) for signum in taken}
        crash: Exception | None = None
        try:
            failed_at = None
            while not context.join(timeout=1.0, grace_period=GRACE_SECONDS):
                # A rank that ended with an error leaves the others waiting in a collective.
                if failed_at is None and any(
                    read_outcome(path)["how"] == "error" for path in outcomes if path.is_file()
                ):
                    failed_at = time.monotonic()
                if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                    for process in context.processes:
                        process.kill()
                    break
        except mp.ProcessException as error:
            crash = error
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        ended = [read_outcome(path) for path in outcomes if path.is_file()]
    if received:
        raise Interrupted(received[0])
    for outcome in ended:
        if outcome["how"] == "error":
            raise UserError(outcome["message"])
    if crash is not None:
        raise RuntimeError(f"a rank of trainer.devices={devices} failed: {crash}") from None
    return RunFolder(run_dir).read_summary()


def read_outcome(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


def _worker(
    rank: int,
    size: int,
    config: dict[str, Any],
    run_dir: str,
    resume: bool,
    command: str | None,
    meeting: str,
    threads: int,
    plugin_modules: list[str],
) -> None:
    """One rank of `spawn`, in a process group of its own: the terminal's Ctrl-C reaches the
    process that started it, which hands it on once."""

    os.setpgrp()
    torch.set_num_threads(threads)
    plugins.load(plugin_modules)
    cfg = OmegaConf.create(config)
    outcome: dict[str, str] = {"how": "completed"}
    try:
        ranks = join(cfg, rank, size, rank, f"file://{Path(meeting, 'rendezvous')}")
        try:
            train(cfg, Path(run_dir), resume, command, ranks)
        finally:
            leave(ranks)
    except KeyboardInterrupt:
        outcome = {"how": "interrupted"}
    except UserError as error:
        outcome = {"how": "error", "message": str(error)}
    tmp = Path(meeting, f".{rank}.tmp")  # whole, or not there: the parent polls it
    tmp.write_text(json.dumps(outcome))
    tmp.replace(Path(meeting, OUTCOME.format(rank=rank)))
