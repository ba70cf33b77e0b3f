"""How a model is trained: the :class:`TrainConfig`, the optimizers and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import HandwritingError


class TrainError(HandwritingError):
    """Training cannot go on (bad configuration, too many non-finite steps, an unusable resume state)."""


@dataclass
class TrainConfig:
    """Everything about *how* a model is trained (the model's own config says *what* is trained)."""

    steps: int | None = 1000  # optimizer steps in total (None: run `epochs` epochs)
    epochs: int | None = None  # stop after this many epochs (with `steps` too: whichever comes first)
    batch_size: int = 32  # sequences per global batch (used by the loaders the CLI builds)
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | rmsprop (Graves: lr 1e-4, alpha 0.95, eps 1e-4, momentum 0.9, centered)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float | None = None  # None: 1e-8 for adam(w), 1e-4 for rmsprop
    alpha: float = 0.95  # rmsprop
    momentum: float = 0.9  # rmsprop
    centered: bool = True  # rmsprop
    schedule: str = "none"  # none | step (lr × gamma every step_size steps)
    step_size: int = 1000
    gamma: float = 0.5
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps
    clip: str = "norm"  # none | norm | graves
    clip_norm: float = 1.0  # for clip="norm"
    clip_output: float = 100.0  # for clip="graves": output-layer derivatives, in summed-loss units
    clip_lstm: float = 10.0  # for clip="graves": LSTM derivatives, in summed-loss units
    loss_unit: str = "point"  # the objective: mean NLL per "point" or per "sequence" (Graves' unit)
    amp: str = "none"  # none | bf16 (autocast on CPU or CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    eval_every: int | None = None  # steps between validations (None: at the end of every epoch)
    eval_batches: int | None = None  # validate on at most this many batches (None: all)
    sample_every: int | None = None  # steps between sample images (needs a sample_fn)
    checkpoint_every: int | None = None  # steps between checkpoints (None: only at the end)
    keep_checkpoints: bool = False  # also keep each checkpoint's model as out_dir/stepN (for learning curves)
    log_every: int = 10  # steps between scalar logs
    out_dir: str | None = None  # checkpoints (last, best, state) go here; None: no files
    log_dir: str | None = None  # TensorBoard logs (default: out_dir/tb)
    seed: int = 0
    num_workers: int = 0
    ddp: bool = False  # data parallel (also switched on by WORLD_SIZE > 1 in the environment)
    wandb: bool = False  # log to Weights & Biases too (pip install wandb; WANDB_MODE=offline works)
    wandb_project: str = "handwriting"
    progress: bool = True  # tqdm progress bar
    max_bad_steps: int = 50  # give up after this many non-finite steps in a row
    max_skipped_fraction: float = 0.1  # a run that skipped more of its steps than this has diverged: it fails
    keep_freed_memory: bool = True  # on a CPU, glibc keeps freed memory for reuse: faster steps (see _alloc.py)

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("adam", "adamw", "rmsprop"),
            "schedule": ("none", "step"),
            "clip": ("none", "norm", "graves"),
            "amp": ("none", "bf16"),
            "loss_unit": ("point", "sequence"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainError(f"TrainConfig.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.steps is None and self.epochs is None:
            raise TrainError("TrainConfig: give steps or epochs (or both)")
        for name in ("steps", "epochs", "eval_every", "sample_every", "checkpoint_every", "eval_batches"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise TrainError(f"TrainConfig.{name} must be positive or None, got {v}")
        positive = {"lr": self.lr, "clip_norm": self.clip_norm, "clip_output": self.clip_output,
                    "clip_lstm": self.clip_lstm, "gamma": self.gamma}
        for name, v in positive.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise TrainError(f"TrainConfig.{name} (--{name.replace('_', '-')}) must be a finite number > 0, got {v!r}")
        if self.gamma > 1:
            raise TrainError(f"TrainConfig.gamma (--gamma) is the learning-rate factor per decay: give 0 < gamma <= 1, got {self.gamma}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise TrainError(f"TrainConfig.weight_decay (--weight-decay) must be finite and >= 0, got {self.weight_decay!r}")
        for name, low in (("batch_size", 1), ("step_size", 1), ("log_every", 1), ("warmup_steps", 0), ("num_workers", 0),
                          ("max_bad_steps", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise TrainError(f"TrainConfig.{name} (--{name.replace('_', '-').replace('-steps', '')}) must be an "
                                 f"integer >= {low}, got {v!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise TrainError(f"TrainConfig.seed (--seed) must be an integer in [0, 2**63), got {self.seed!r}")
        if not 0 <= self.max_skipped_fraction <= 1:
            raise TrainError(f"TrainConfig.max_skipped_fraction must lie in [0, 1], got {self.max_skipped_fraction!r}")
        self.betas = tuple(self.betas)

    @classmethod
    def graves(cls, **changes) -> "TrainConfig":
        """Graves' (2013) recipe: RMSProp with momentum, his clipping, loss summed per sequence."""
        base = dict(
            optimizer="rmsprop", lr=1e-4, alpha=0.95, eps=1e-4, momentum=0.9, centered=True,
            clip="graves", loss_unit="sequence",
        )  # fmt: skip
        base.update(changes)
        return cls(**base)

    @classmethod
    def cursive_transformer(cls, **changes) -> "TrainConfig":
        """The cursive transformer's recipe: AdamW lr 1e-2, weight decay 1e-4, lr × 0.5 every 20k steps."""
        base = dict(optimizer="adamw", lr=1e-2, weight_decay=1e-4, schedule="step", step_size=20_000, gamma=0.5, clip="norm")
        base.update(changes)
        return cls(**base)


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    c = config
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps or 1e-8, weight_decay=c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, betas=c.betas, eps=c.eps or 1e-8, weight_decay=c.weight_decay)
    return torch.optim.RMSprop(
        params, lr=c.lr, alpha=c.alpha, eps=1e-4 if c.eps is None else c.eps, momentum=c.momentum,
        centered=c.centered, weight_decay=c.weight_decay,
    )  # fmt: skip


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """The learning-rate multiplier as a function of the optimizer step (warm-up, then step decay)."""
    warm, sched, size, gamma = config.warmup_steps, config.schedule, config.step_size, config.gamma

    def factor(step: int) -> float:
        f = 1.0
        if warm > 0 and step < warm:
            f = (step + 1) / warm
        if sched == "step":
            f *= gamma ** (step // size)
        return f

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
