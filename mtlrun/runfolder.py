"""The run folder: atomic JSON files, the metrics log, meta.json."""

import errno
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtlrun.errors import ConfigError, DamagedRunFile, UserError
from mtlrun.plugins import versions as plugin_versions
from mtlrun.version import __version__

NAME_MAX = 255  # bytes in one file or folder name, on Linux and macOS file systems
# Run folders are named `<HH-MM-SS-ffffff>_<name>` (Hydra's run and sweep dirs, reproduce's).
RUN_FOLDER_PREFIX = len("00-00-00-000000_")


def check_run_name(name: str, suffix: str = "") -> None:
    """A run's `name` (then `suffix`) ends its folder's name: one plain folder name, neither a
    path (a separator or `..` would put the run elsewhere, even outside the output tree) nor
    longer than the file system allows."""
    key = "name"
    shown = name if len(name) <= 40 else f"{name[:40]}..."
    if "/" in name or "\\" in name or os.sep in name or "\0" in name:
        raise ConfigError(
            f"{key}={shown!r} contains a path separator; a run's name is part of one folder "
            "name, e.g. name=vae_small"
        )
    if ".." in name:
        raise ConfigError(
            f"{key}={shown!r} contains '..'; a run's name is part of one folder name, "
            "e.g. name=vae_small"
        )
    longest = NAME_MAX - RUN_FOLDER_PREFIX - len(suffix.encode())
    size = len(name.encode())
    if size > longest:
        raise ConfigError(
            f"{key}={shown!r} is {size} bytes long, too long for a folder name; "
            f"use at most {longest} bytes"
        )


def existing_run_message(folder: Path, sweep: bool = False) -> str | None:
    """Why a new run (or sweep) must not start in `folder`: it already holds a run (its
    meta.json), or, for a sweep, runs in its job folders; None when it holds none."""
    if sweep:
        if next(folder.glob("**/meta.json"), None) is None:
            return None
        return (
            f"{folder} already holds the runs of a sweep; pass another hydra.sweep.dir, or "
            f"continue one of its jobs with `mtlrun resume {folder}/N`"
        )
    if not (folder / "meta.json").is_file():
        return None
    return (
        f"{folder} already holds a run; continue it with `mtlrun resume {folder}`, "
        "or pass another hydra.run.dir"
    )


def write_atomic(path: Path, write: Any) -> None:
    """Call `write(file_path)` on a temporary file beside `path`, then rename it into place,
    so a crash never leaves a half-written file; the temporary files of writers of `path`
    killed before they could remove theirs go too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's host and pid in the name tell an orphan from a file being written.
    prefix = f".{path.name}.{platform.node()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    try:
        # mkstemp makes the file private (0600); the renamed file gets the mode any new file
        # of the user's would have, like the rest of the run folder.
        os.chmod(tmp, 0o666 & ~current_umask())
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        # torch.save reports a full disk as a RuntimeError: the free space tells it apart.
        full = not isinstance(error, OSError) and almost_full(path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp) from error
        raise
    remove_orphans(path)


def almost_full(folder: Path) -> bool:
    """Whether less than 1 MiB is left on the file system of `folder`."""
    try:
        usage = os.statvfs(folder)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize < 2**20


# The faults of a disk, not of mtlrun: a full or read-only one, or a folder of someone else's.
DISK_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def disk_fault(error: BaseException, folder: Path) -> str | None:
    """The line `cannot write in FOLDER: WHY` for an OSError that is a disk's fault, else
    None."""
    if not isinstance(error, OSError) or error.errno not in DISK_FAULTS:
        return None
    where = Path(error.filename).parent if error.filename else folder
    return f"cannot write in {where}: {DISK_FAULTS[error.errno]}"


def writable_folder(folder: Path) -> Path:
    """`folder`, once a file could be created in it or in the part of its path that exists (it
    is made when written to): a command that writes its results into a run folder checks
    before its work, not after, and leaves nothing behind when it refuses."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        problem = disk_fault(error, existing) or f"cannot write in {existing}: {error.strerror}"
        raise UserError(f"{problem}; pass out=DIR to write elsewhere") from None
    return folder


def remove_orphans(path: Path) -> None:
    """Remove the temporary files of `path` left by writers on this host that are gone."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        if orphaned(tmp):
            tmp.unlink(missing_ok=True)


def remove_orphans_under(folder: Path) -> None:
    """Remove every temporary file under `folder` whose writer on this host is gone (a rank
    killed while it wrote a checkpoint or meta.json)."""
    for tmp in folder.rglob(".*.tmp"):
        if orphaned(tmp):
            tmp.unlink(missing_ok=True)


def orphaned(tmp: Path) -> bool:
    """Whether `tmp`, named by `write_atomic` (.NAME.HOST.PID.RANDOM.tmp), was being written by
    a process of this host that is gone."""
    parts = tmp.name.removesuffix(".tmp").rsplit(".", 2)
    if len(parts) != 3:
        return False
    writer, pid, _ = parts
    return writer.endswith(f".{platform.node()}") and pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether process `pid` of this host runs (a killed one that its parent has not reaped
    yet does not); with `start_ticks` (its start time, in clock ticks since boot), whether that
    very process does, not a later one given the same pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    if process_stat(pid)[:1] == ["Z"]:
        return False
    return start_ticks is None or process_start_ticks(pid) in (None, start_ticks)


def process_stat(pid: int | str = "self") -> list[str]:
    """The fields of /proc/PID/stat after the command's name, from the state on ([] where
    Linux's /proc cannot be read)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_start_ticks(pid: int | str = "self") -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux /proc), or None."""
    try:
        return int(process_stat(pid)[19])
    except (ValueError, IndexError):
        return None


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting it, the
    portable way, would briefly change it for files other threads create)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def write_json(path: Path, data: dict[str, Any]) -> None:
    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)  # strict JSON: no NaN or Infinity
            f.write("\n")

    write_atomic(path, dump)


def damaged(path: Path, why: str) -> DamagedRunFile:
    return DamagedRunFile(
        f"{path} is damaged ({why}); restore it from a copy, or train the run again"
    )


def read_text(path: Path) -> str:
    """The UTF-8 text of a run's file; a file that is not text is a DamagedRunFile."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise damaged(path, f"not text: {error}") from None
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror or error})") from None


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; a file that is not one (binary, cut off, a list) is a
    DamagedRunFile naming it."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise damaged(path, f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise damaged(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line ([] when there is none)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise damaged(path, f"line {number} is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise damaged(path, f"line {number} is not a JSON object")
        records.append(record)
    return records


def read_yaml(path: Path) -> DictConfig | ListConfig:
    """The YAML document in `path`, as OmegaConf loads it; unreadable YAML is DamagedRunFile."""
    text = read_text(path)
    try:
        return OmegaConf.load(io.StringIO(text))
    except (yaml.YAMLError, OmegaConfBaseException, OSError) as error:  # OSError: a scalar
        raise damaged(path, f"not YAML: {str(error).splitlines()[0]}") from None


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The commit of mtlrun's source tree, marked `-dirty` with uncommitted changes."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit or None


def seconds_since_process_start() -> float | None:
    """How long ago this process started (Linux /proc), or None where that cannot be read."""
    ticks = process_start_ticks()
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None if ticks is None else round(uptime - ticks / os.sysconf("SC_CLK_TCK"), 2)


def this_process() -> dict[str, Any]:
    """meta.json's record of the process that trains the run: with it, `run_status` tells a
    killed run from a running one."""
    return {"host": platform.node(), "pid": os.getpid(), "process_start": process_start_ticks()}


def versions() -> dict[str, str]:
    import hydra
    import torch
    import torchvision

    return {
        "mtlrun": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "hydra": hydra.__version__,
    }


class RunFolder:
    """A run's folder: the one place the names of its files are written, and reading and
    writing them (README: The run folder)."""

    META = "meta.json"  # every run folder has one, from its start: how runs are found

    def __init__(self, path: Path) -> None:
        self.path = path
        self.images = path / "images"
        self.checkpoints = path / "checkpoints"
        self.meta_path = path / self.META
        self.summary_path = path / "summary.json"
        self.metrics_path = path / "metrics.jsonl"
        self.config_path = path / "config.resolved.yaml"  # the record: a resolved config
        self.log_path = path / "train.log"
        self.error_path = path / "error.txt"  # the traceback of a fault that ended the run
        self.hydra = path / ".hydra"  # Hydra's own: config.yaml, overrides.yaml, hydra.yaml
        self.overrides_path = self.hydra / "overrides.yaml"

    def checkpoint(self, name: str) -> Path:
        """checkpoints/<name>.pt: `last` (everything to resume) or `best`."""
        return self.checkpoints / f"{name}.pt"

    def read_meta(self) -> dict[str, Any]:
        """meta.json, or {} when there is none yet."""
        return read_json(self.meta_path) if self.meta_path.is_file() else {}

    def read_summary(self) -> dict[str, Any]:
        """summary.json, or {} for a run that has not finished."""
        return read_json(self.summary_path) if self.summary_path.is_file() else {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl's records, [] before the first."""
        return read_records(self.metrics_path)

    def overrides(self) -> list[str]:
        """The command-line overrides Hydra (or `mtlrun.train`) recorded, [] when none."""
        if not self.overrides_path.is_file():
            return []
        overrides = read_yaml(self.overrides_path)
        if not isinstance(overrides, ListConfig):
            raise damaged(self.overrides_path, "not a list of overrides")
        return [str(override) for override in overrides]

    def record_composition(self, cfg: DictConfig, overrides: list[str]) -> None:
        """.hydra/config.yaml and overrides.yaml, as Hydra writes them, for a run that mtlrun
        composed itself (`mtlrun.train`, `mtlrun reproduce`)."""
        self.hydra.mkdir(parents=True, exist_ok=True)
        (self.hydra / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        self.overrides_path.write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))

    def start(self, device: str, seed: int, command: str | None = None) -> None:
        self.images.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        meta = {
            "command": command or original_command(),
            "cwd": os.getcwd(),
            **this_process(),
            "git_commit": git_commit(),
            "versions": versions(),
            "plugins": plugin_versions(),
            "device": device,
            "seed": seed,
            "start_time": now(),
            "end_time": None,
            "status": "running",
        }
        write_json(self.meta_path, meta)

    def update_meta(self, **fields: Any) -> None:
        meta = read_json(self.meta_path)
        meta.update(fields)
        write_json(self.meta_path, meta)

    def finish(self, status: str, **fields: Any) -> None:
        self.update_meta(status=status, end_time=now(), **fields)

    def write_file(self, path: Path, write: Callable[[Path], Any]) -> Path | None:
        """One file of the run (a checkpoint, an image, summary.json), written by `write(path)`;
        returns its path. (`SilentRunFolder` writes nothing and returns None.)"""
        write(path)
        return path

    def write_traceback(self, error: BaseException) -> Path | None:
        """error.txt: the traceback of the fault that ended the run, kept with it while the
        terminal shows one line; returns its path (None where this process writes nothing)."""
        text = "".join(traceback.format_exception(error))
        return self.write_file(self.error_path, lambda path: path.write_text(text))

    def write_config(self, cfg: DictConfig) -> None:
        """config.resolved.yaml: the record of what ran, every value resolved."""
        self.config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))

    def remove_if_unstarted(self, keep: Path | None = None) -> None:
        """Remove what Hydra (or `record_composition`) wrote for a run that never started (no
        meta.json: a mistake found while building it): its .hydra/ files, then the folder and
        its parents while they are empty, up to `keep` (the working folder by default)."""
        if self.meta_path.exists():
            return
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (self.hydra / name).unlink(missing_ok=True)
        keep = (keep or Path.cwd()).resolve()
        folders = [self.hydra, self.path.resolve()]
        folders += [p for p in self.path.resolve().parents if keep in p.parents]
        for folder in folders:
            try:
                if folder.is_dir():
                    folder.rmdir()
            except OSError:
                return  # not empty: whatever else it holds stays

    def record_refusal(self, error: str) -> None:
        """A sweep's job refused before training started (its config checks come before any
        file): meta.json says failed and why, so that sweep.json does too."""
        if not self.meta_path.is_file():
            time = now()
            meta = {"command": original_command(), "start_time": time, "end_time": time}
            write_json(self.meta_path, {**meta, "status": "failed", "error": error})


class SilentRunFolder(RunFolder):
    """A run folder as the ranks other than 0 of a data-parallel run hold it: the same paths
    (they read last.pt to resume), and every write taken and ignored, since rank 0 writes the
    run. The loop then treats every rank alike."""

    def write_file(self, path: Path, write: Callable[[Path], Any]) -> Path | None:
        return None

    def write_config(self, cfg: DictConfig) -> None:
        pass

    def start(self, device: str, seed: int, command: str | None = None) -> None:
        pass

    def update_meta(self, **fields: Any) -> None:
        pass


def run_status(meta: dict[str, Any]) -> str:
    """meta.json's status, except that a run that says "running" but whose process on this
    host is gone (killed with SIGKILL, or its machine crashed) is "crashed"."""
    status = str(meta.get("status", "unknown"))
    pid = meta.get("pid")
    if status != "running" or meta.get("host") != platform.node() or not isinstance(pid, int):
        return status
    return status if process_alive(pid, meta.get("process_start")) else "crashed"


def original_command() -> str:
    """The command line as typed; the dispatcher records it before it strips the subcommand
    (in the environment, so that jobs in launcher subprocesses see it too)."""
    return os.environ.get("MTLRUN_COMMAND") or shlex.join(sys.argv)


def output_root(run_dir: Path) -> Path:
    """The output tree a run belongs to, where the trackers' local stores live and outside
    which a saved run writes nothing unasked: the folder holding runs/ or multirun/ for a run
    in their layout (outputs/ for `outputs/runs/<date>/<time>_<name>` and
    `outputs/multirun/<date>/<time>_<name>/<job>`), else the folder of the sweep a job belongs
    to, else the run folder itself. The same at training and on resume, wherever the command
    is run from."""
    run_dir = run_dir.resolve()
    above = run_dir.parents
    if len(above) > 2 and above[1].name == "runs":
        return above[2]
    if (run_dir.parent / "multirun.yaml").is_file():
        sweep = run_dir.parent
        above = sweep.parents
        return above[2] if len(above) > 2 and above[1].name == "multirun" else sweep
    return run_dir


def new_run_dir(name: str, root: Path = Path("outputs")) -> Path:
    """A fresh folder under `root`/runs named like Hydra's run folders (unique to the
    microsecond): never one that exists, even when another process made it in the same
    microsecond."""
    while True:
        now = datetime.now()
        path = root / "runs" / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S-%f}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
