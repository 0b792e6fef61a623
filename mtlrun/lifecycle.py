"""A run's lifecycle around the loop: the experiment built before anything is written, the run
folder started, the status it ends with (completed, failed or interrupted), the signals that
stop it at a step boundary (Ctrl-C, SIGTERM, submitit's pre-emption signal), and the ranks of a
data-parallel run started (`trainer.devices=N`) or joined (torchrun)."""

import json
import os
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path
from traceback import format_exc
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import mtlrun.plugins as plugins
from mtlrun.distributed import SINGLE, Ranks, join, leave, lost_rank, meet, meeting_point
from mtlrun.errors import LostRank, PluginError, UserError
from mtlrun.experiment import build
from mtlrun.loggers import Logger, LoggerConfig, Loggers
from mtlrun.loop import fit
from mtlrun.memory import largest_setting, out_of_memory
from mtlrun.plugin_faults import plugin_fault
from mtlrun.runfolder import (
    RunFolder,
    SilentRunFolder,
    disk_fault,
    remove_orphans_under,
    this_process,
)
from mtlrun.signals import (
    Interrupted,
    StoppedMidway,
    StopRequest,
    StopSignals,
    preemption_signal,
    stop_signals,
)
from mtlrun.terminal import Reporter
from mtlrun.torchrun import joined_ranks, remove_orphan_scratch


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
            how = interrupt.args[0] if interrupt.args else "SIGINT"
            # Marked inside StopSignals: a second pre-emption signal cannot end the process
            # before the requeued job can tell that it is one.
            run.finish("interrupted", **preempted(how))
            reporter.print(stopped_line(how, run_dir, isinstance(interrupt, StoppedMidway)))
            raise
        except BaseException as error:
            fault = disk_fault(error, run_dir)
            blamed = None if fault else plugin_fault(cfg, error)
            if blamed is not None or isinstance(error, PluginError):
                # A plug-in's fault: one line, its traceback kept with the run.
                path = run.write_traceback(error)
                blamed = PluginError(f"{blamed or error}; traceback in {path}")
            lost = lost_rank(error) if ranks.distributed else None
            memory = out_of_memory(error)
            reason = fault or first_line(blamed or error)
            if lost:
                reason = f"another rank of this run is gone ({lost})"
            if memory:
                reason = f"training ran out of memory ({memory})"
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
            if memory:
                trainer = cfg.trainer
                raise UserError(
                    f"{reason}; lower trainer.batch_size={trainer.batch_size} (or "
                    f"trainer.eval_batch_size={trainer.eval_batch_size}, or "
                    f"{largest_setting(cfg)}) and train again"
                ) from None
            if lost:
                # What the rank that is gone was writing, before torchrun ends this one too.
                remove_orphans_under(run_dir)
                remove_orphan_scratch()
                raise LostRank(f"{reason}; {how_to_continue(run_dir)}") from None
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


def preempted(how: str) -> dict[str, bool]:
    """meta.json's mark of a run stopped by submitit's pre-emption signal, which tells the
    requeued job to resume it."""
    preemption = preemption_signal()
    return {"preempted": True} if preemption and how == preemption.name else {}


def stopped_line(how: str, run_dir: Path, midway: bool) -> str:
    """What a stopped run prints: at a step boundary, it continues from there; on a second
    Ctrl-C, from its last checkpoint."""
    if not midway:
        return f"{how}: stopped; {how_to_continue(run_dir)}"
    return f"{how} again: stopped at once; {how_to_continue(run_dir, 'from its last checkpoint ')}"


def how_to_continue(run_dir: Path, source: str = "") -> str:
    if RunFolder(run_dir).checkpoint("last").is_file():
        return f"continue {source}with `mtlrun resume {run_dir}`"
    return "no checkpoint was written yet, so start it again with `mtlrun train`"


GRACE_SECONDS = 10.0  # how long the other ranks may take to end after one ends badly


def spawn(
    cfg: DictConfig, run_dir: Path, resume: bool, command: str | None, devices: int
) -> dict[str, Any]:
    """Train `cfg` on `devices` new processes, one per rank, and wait for them. This process
    takes the signals (Ctrl-C, SIGTERM, submitit's pre-emption signal) and hands each on to the
    ranks, which stop together at the next step boundary; a second Ctrl-C kills them. A rank
    that ends badly (an error, or killed) gives the others `GRACE_SECONDS` to end, then they
    are killed. Returns the run's summary; raises the first cause as one line (`UserError`),
    or `Interrupted`; a bug in a rank is a RuntimeError with its traceback. Whatever happened,
    no temporary file of a killed rank stays in the run folder, and meta.json says how the run
    ended."""
    import torch.multiprocessing as mp

    config = OmegaConf.to_container(cfg, resolve=True)
    threads = max(1, torch.get_num_threads() // devices)
    store = meeting_point()
    context = mp.start_processes(
        _worker,
        args=(
            devices,
            config,
            str(run_dir),
            resume,
            command,
            store.port,
            threads,
            plugins.loaded(),
        ),
        nprocs=devices,
        join=False,
        start_method="spawn",
    )
    processes = context.processes
    request = StopRequest()
    killed: set[int] = set()  # the ranks this process killed

    def kill(rank: int) -> None:
        if processes[rank].is_alive():
            killed.add(rank)
            processes[rank].kill()

    def hand_on(signum: int, frame: Any) -> None:
        at_once = request.take(signum)
        for rank, process in enumerate(processes):
            if at_once:
                kill(rank)
            elif process.is_alive():
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, hand_on) for signum in stop_signals()}
    try:
        failed_at = None
        while any(process.is_alive() for process in processes):
            wait([process.sentinel for process in processes], timeout=1.0)
            ended_badly = any(
                process.exitcode not in (None, 0) or outcome(store, rank)["how"] == "error"
                for rank, process in enumerate(processes)
            )
            if failed_at is None and ended_badly:
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                for rank in range(devices):
                    kill(rank)  # waiting in a collective for the rank that ended
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    run = RunFolder(run_dir)
    remove_orphans_under(run_dir)
    if request.reason is not None:
        if killed:
            mark(run, "interrupted", **preempted(request.reason))
            print(stopped_line(request.reason, run_dir, midway=True))
            raise StoppedMidway(request.reason)
        raise Interrupted(request.reason)
    outcomes = [outcome(store, rank) for rank in range(devices)]
    gone = [
        (rank, process.exitcode)
        for rank, process in enumerate(processes)
        if process.exitcode and rank not in killed
    ]
    if gone:
        rank, exitcode = gone[0]
        how = (
            f"was killed ({signal.Signals(-exitcode).name})"
            if exitcode < 0
            else f"ended with exit status {exitcode}"
        )
        reason = f"rank {rank} of trainer.devices={devices} {how}"
        mark(run, "failed", error=reason)
        raise UserError(f"{reason}; {how_to_continue(run_dir)}")
    for kind in ("user", "bug", "lost"):
        for rank, ended in enumerate(outcomes):
            if ended["how"] == "error" and ended["kind"] == kind:
                mark(run, "failed", error=ended["message"])
                if kind == "bug":
                    raise RuntimeError(
                        f"rank {rank} of trainer.devices={devices} failed:\n{ended['traceback']}"
                    )
                raise UserError(ended["message"])
    return run.read_summary()


def mark(run: RunFolder, status: str, **fields: Any) -> None:
    """meta.json's status, for a run whose rank 0 could not write it (killed); a run that never
    started (no meta.json: a mistake found while it was built) stays without one."""
    if run.meta_path.is_file():
        try:
            run.finish(status, **fields)
        except OSError:
            pass  # a disk fault, which rank 0's own line names


def outcome(store: Any, rank: int) -> dict[str, str]:
    """How rank `rank` ended, as it told the meeting point; `{"how": "running"}` until then
    (or when it was killed first)."""
    key = OUTCOME.format(rank=rank)
    return json.loads(store.get(key)) if store.check([key]) else {"how": "running"}


OUTCOME = "outcome-{rank}"


def _worker(
    rank: int,
    size: int,
    config: dict[str, Any],
    run_dir: str,
    resume: bool,
    command: str | None,
    port: int,
    threads: int,
    plugin_modules: list[str],
) -> None:
    """One rank of `spawn`, in a process group of its own: the terminal's Ctrl-C reaches the
    process that started it, which hands it on. It tells the meeting point how it ended and
    exits 0 on anything it can catch: `spawn` decides what the ranks' endings mean."""
    os.setpgrp()
    torch.set_num_threads(threads)
    store = meet(port)
    ended: dict[str, str] = {"how": "completed"}
    try:
        plugins.load(plugin_modules)
        cfg = OmegaConf.create(config)
        ranks = join(cfg, rank, size, rank, store=store)
        try:
            train(cfg, Path(run_dir), resume, command, ranks)
        finally:
            leave(ranks)
    except KeyboardInterrupt:
        ended = {"how": "interrupted"}
    except LostRank as error:
        ended = {"how": "error", "kind": "lost", "message": str(error)}
    except UserError as error:
        ended = {"how": "error", "kind": "user", "message": str(error)}
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        message = f"{type(error).__name__}: {first}"
        ended = {"how": "error", "kind": "bug", "message": message, "traceback": format_exc()}
    store.set(OUTCOME.format(rank=rank), json.dumps(ended))
