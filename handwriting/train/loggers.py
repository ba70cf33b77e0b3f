"""Where training reports go: TensorBoard, Weights & Biases, or several at once."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from .config import TrainError


def _to_image(img: Any) -> np.ndarray:
    """A numpy image (H, W), (H, W, 3|4) uint8/float or a matplotlib Figure → (H, W, C) uint8."""
    if hasattr(img, "savefig"):  # matplotlib Figure (pyplot-managed or not)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(img)
        canvas.draw()
        arr = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close(img)
        return arr
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


class Logger:
    """Where the trainer reports: subclass and override; this one keeps nothing."""

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        pass

    def log_image(self, tag: str, image: Any, step: int) -> None:
        pass

    def log_config(self, config: dict) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(Logger):
    def __init__(self, log_dir: str | os.PathLike):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_scalars(self, values, step):
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_image(self, tag, image, step):
        self.writer.add_image(tag, _to_image(image), step, dataformats="HWC")

    def log_config(self, config):
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)

    def close(self):
        self.writer.flush()
        self.writer.close()


class WandbLogger(Logger):
    """Weights & Biases (optional: ``pip install wandb``; ``WANDB_MODE=offline`` or ``mode="offline"``
    logs to local files without an account)."""

    def __init__(self, project: str = "handwriting", config: dict | None = None, dir: str | None = None, mode: str | None = None, **kw):
        try:
            import wandb
        except ImportError as exc:
            raise TrainError("--wandb needs the wandb package: pip install 'handwriting[wandb]' (or pip install wandb)") from exc
        self.wandb = wandb
        self.run = wandb.init(project=project, config=config, dir=dir, mode=mode or os.environ.get("WANDB_MODE"), **kw)

    def log_scalars(self, values, step):
        self.run.log(dict(values), step=step)

    def log_image(self, tag, image, step):
        self.run.log({tag: self.wandb.Image(_to_image(image))}, step=step)

    def log_config(self, config):
        self.run.config.update(config, allow_val_change=True)

    def close(self):
        self.run.finish()


class MultiLogger(Logger):
    def __init__(self, *loggers: Logger):
        self.loggers = [lg for lg in loggers if lg is not None]

    def log_scalars(self, values, step):
        for lg in self.loggers:
            lg.log_scalars(values, step)

    def log_image(self, tag, image, step):
        for lg in self.loggers:
            lg.log_image(tag, image, step)

    def log_config(self, config):
        for lg in self.loggers:
            lg.log_config(config)

    def close(self):
        for lg in self.loggers:
            lg.close()
