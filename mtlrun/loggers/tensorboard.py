"""TensorBoard event files in <run>/tensorboard: scalars, image grids, and the hyperparameters
with the final test metrics (the HPARAMS tab). View with `tensorboard --logdir outputs`."""

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from mtlrun.loggers.base import RECORD_FIELDS, Logger, LoggerConfig, flatten
from mtlrun.parts import LOGGERS


@LOGGERS.register("tensorboard", schema=LoggerConfig)
class TensorBoardLogger(Logger):
    """`logger=tensorboard`: TensorBoard event files in <run>/tensorboard (x axis: epochs);
    view them with `tensorboard --logdir outputs`.

    The global step of every point is the epoch: records and image grids then share one
    axis, runs with different batch sizes line up, and a resumed run purges exactly the epochs
    it logs again."""

    def __init__(self, config: LoggerConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        self.purge_step: int | None = None
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        # Opened on first use, so that resume() can still set purge_step.
        if self._writer is None:
            self._writer = SummaryWriter(self.run_dir / "tensorboard", purge_step=self.purge_step)
        return self._writer

    def log_metrics(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in RECORD_FIELDS:
                self.writer.add_scalar(key, value, global_step=record["epoch"])

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        image = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image(f"images/{tag}", image, global_step=epoch, dataformats="HWC")

    def resume(self, epoch: int) -> None:
        # TensorBoard hides every event at or after purge_step written before the restart.
        self.purge_step = epoch

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        # The test metrics are already scalars of this run: the HPARAMS tab reads them by tag.
        for proto in hparams(flatten(config), summary["metrics"]):
            self.writer.file_writer.add_summary(proto)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
