"""Train a model: one trainer for every model of the course (Graves' networks, the transformers).

The :class:`Trainer` runs any ``nn.Module`` that follows the training contract of ``docs/INTERFACES.md``:
``model.training_step(batch) -> {"loss", "nll_sum", "points", "sequences"}``.  It brings the optimizers
(Adam, AdamW, Graves' RMSProp with momentum), a step-decay schedule, Graves' gradient clipping or norm
clipping, bf16 autocast, validation NLL in nats per sequence (Graves' figure) and per point, TensorBoard
(and optionally Weights & Biases) logging with sample images, skipping of non-finite steps, atomic
checkpoints, an *exact* resume, and data-parallel training launched by ``torchrun``.

Exact resume
------------
A resumed run reproduces the losses of an uninterrupted one bit for bit (same device and thread count):
the state file holds the weights, the optimizer and scheduler, every global RNG (torch, CUDA, numpy,
python), the epoch, the number of batches consumed in it and the batch sampler's state at the start of the
epoch.  On resume the epoch's batch order is rebuilt (``set_epoch(epoch)`` on samplers that have it,
``load_state_dict`` on batch samplers that have it) and the consumed batches are skipped at the *index*
level, without loading their data.  Validation and sample images run with the RNGs saved and restored, so
they never change the training stream.  Data sets whose augmentation draws random numbers inside
DataLoader worker processes must seed it from ``(seed, epoch, index)`` for the resume to stay exact with
``num_workers > 0``.

Graves' clipping (``clip="graves"``)
-----------------------------------
Graves (2013, §4) clips "the derivatives with respect to the network outputs" to [−100, 100] and "the LSTM
derivatives" to [−10, 10].  The thresholds are in the units of Graves' loss, the NLL *summed* over the
batch, so with a loss averaged over ``N`` points (or sequences, ``loss_unit="sequence"``) the clamp is at
``±limit / N``.  What is implemented (:class:`GravesClipper`), best first:

* a model that defines ``set_gradient_clipping(output, lstm)`` is handed the limits before every backward
  and clips inside its own backward pass (the only way to reach the gate derivatives of a hand-written
  recurrence);
* otherwise backward hooks clamp, element by element, the gradient flowing into the output layer's outputs
  (the MDN parameters before their non-linearities) and into every ``nn.LSTM``/``nn.LSTMCell``'s outputs
  (the hidden and cell states it returns — for fused LSTMs the gates inside are out of reach, so this is
  the derivative w.r.t. the layer's outputs, not its gates).  A model can name its layers with
  ``clip_targets() -> {"output": [modules], "lstm": [modules]}``; else the output layer is the last
  ``nn.Linear`` of its ``output_layer``/``head``/``mdn`` attribute (or of the model);
* a layer whose weights the model uses without calling it as a module never fires its hook: the trainer
  then clips the gradient norm (``clip_norm``) for that step instead and warns once.  Nothing is clamped
  silently that was not asked for, and nothing asked for is silently skipped.

Data parallel
-------------
``torchrun --nproc_per_node N -m handwriting train ...`` (or ``TrainConfig(ddp=True)`` with the usual
``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment) starts one process per device (gloo on CPU, NCCL on
CUDA).  Every rank walks the same global batches and takes every ``world``-th sequence of each, so a global
batch means the same as in one process; gradients are all-reduced with weights ``points_r / points`` so they
equal the single-process gradient of the global batch exactly.  Only rank 0 logs and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from ._alloc import keep_freed_memory
from .errors import DataError, HandwritingError

__all__ = [
    "TrainConfig",
    "TrainError",
    "Trainer",
    "Logger",
    "TensorBoardLogger",
    "WandbLogger",
    "MultiLogger",
    "GravesClipper",
    "ShardedBatchSampler",
    "SkipBatchSampler",
    "init_distributed",
    "make_optimizer",
    "make_scheduler",
    "build_training",
    "configure",
    "run",
]


class TrainError(HandwritingError):
    """Training cannot go on (bad configuration, too many non-finite steps, an unusable resume state)."""


# ----------------------------------------------------------------------------------------------------------
# configuration


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
        if not self.lr > 0:
            raise TrainError(f"TrainConfig.lr must be > 0, got {self.lr}")
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


def resolve_device(name: str | torch.device) -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
    return dev


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


# ----------------------------------------------------------------------------------------------------------
# distributed helpers


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (0, 1, 0 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device | None = None, init_method: str | None = None) -> tuple[int, int]:
    """Join the process group described by the environment (``torchrun``) unless already joined; gloo on CPU,
    NCCL on CUDA.  Returns ``(rank, world_size)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank, world, _ = dist_env()
    if world <= 1:
        return 0, 1
    if not dist.is_available():
        raise TrainError("this PyTorch build has no torch.distributed; train on one process")
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method=init_method or "env://", rank=rank, world_size=world)
    return dist.get_rank(), dist.get_world_size()


class ShardedBatchSampler:
    """Every rank sees the same sequence of global batches and keeps the sequences ``rank::world`` of each."""

    def __init__(self, batch_sampler: Any, rank: int, world: int):
        self.batch_sampler, self.rank, self.world = batch_sampler, rank, world

    def __iter__(self) -> Iterator[list]:
        for batch in self.batch_sampler:
            batch = list(batch)
            if len(batch) < self.world:
                raise TrainError(
                    f"a global batch of {len(batch)} sequences cannot be shared by {self.world} processes; "
                    "raise --batch-size (or drop the last, smaller batch)"
                )
            yield batch[self.rank :: self.world]

    def __len__(self) -> int:
        return len(self.batch_sampler)


class SkipBatchSampler:
    """A batch sampler without its first ``skip`` batches (index lists only: no data is loaded for them)."""

    def __init__(self, batch_sampler: Any, skip: int):
        self.batch_sampler, self.skip = batch_sampler, skip

    def __iter__(self) -> Iterator[list]:
        it = iter(self.batch_sampler)
        for _ in range(self.skip):
            if next(it, None) is None:
                return
        yield from it

    def __len__(self) -> int:
        return max(len(self.batch_sampler) - self.skip, 0)


def _with_batch_sampler(loader: torch.utils.data.DataLoader, batch_sampler: Any) -> torch.utils.data.DataLoader:
    kw = dict(
        batch_sampler=batch_sampler, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
    )  # fmt: skip
    if loader.num_workers > 0:
        kw.update(
            multiprocessing_context=loader.multiprocessing_context,
            prefetch_factor=loader.prefetch_factor,
            persistent_workers=False,
        )
    return torch.utils.data.DataLoader(loader.dataset, **kw)


def _samplers(loader: Any) -> list:
    out = []
    for name in ("batch_sampler", "sampler"):
        s = getattr(loader, name, None)
        if s is not None and s not in out:
            out.append(s)
            inner = getattr(s, "sampler", None)
            if inner is not None and inner not in out:
                out.append(inner)
    return out


# ----------------------------------------------------------------------------------------------------------
# Graves' gradient clipping


def _clamp_tensors(obj: Any, limit_fn: Callable[[], float]) -> None:
    if torch.is_tensor(obj):
        if obj.requires_grad and torch.is_grad_enabled():
            obj.register_hook(lambda g: g.clamp(-limit_fn(), limit_fn()))
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _clamp_tensors(o, limit_fn)
    elif hasattr(obj, "data") and torch.is_tensor(getattr(obj, "data")):  # PackedSequence
        _clamp_tensors(obj.data, limit_fn)


class GravesClipper:
    """Graves' derivative clipping: ±``output`` on the derivatives flowing into the output layer's outputs
    and ±``lstm`` on the LSTM derivatives, both in summed-loss units (divided by ``scale``, the count the
    loss is averaged over; the trainer sets it before each backward).  See the module docstring.

    Three ways, best first:

    1. the model implements ``set_gradient_clipping(output, lstm)`` (limits already divided by the scale,
       ``None`` switches it off) and clips inside its own backward — the only way to reach the gate
       derivatives of a hand-written recurrence;
    2. backward hooks on the outputs of the model's LSTM modules and output layer, registered by forward
       hooks (needs the model to *call* those modules);
    3. if a target's forward hook never fired during a training step (the model used its weights directly),
       the trainer falls back to ``clip_grad_norm_`` with ``clip_norm`` for that step and warns once.
    """

    def __init__(self, model: nn.Module, output: float = 100.0, lstm: float = 10.0):
        self.model = model
        self.output, self.lstm, self.scale = float(output), float(lstm), 1.0
        self.native = callable(getattr(model, "set_gradient_clipping", None))
        self._handles: list = []
        self._fired: dict[str, int] = {}
        self.output_modules: list[nn.Module] = []
        self.lstm_modules: list[nn.Module] = []
        if self.native:
            return
        targets = model.clip_targets() if hasattr(model, "clip_targets") else {}
        lstms = list(targets.get("lstm") or [m for m in model.modules() if isinstance(m, (nn.LSTM, nn.LSTMCell))])
        outs = list(targets.get("output") or [])
        if not outs:
            for name in ("output_layer", "head", "mdn", "output"):
                m = getattr(model, name, None)
                if isinstance(m, nn.Module):
                    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
                    outs = linears[-1:] if linears else [m]
                    break
        if not outs:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            outs = linears[-1:]
        if not lstms and not outs:
            raise TrainError(f"clip='graves' found neither LSTM nor output layers in {type(model).__name__}; use clip='norm'")
        self.output_modules, self.lstm_modules = outs, lstms
        names = {id(m): n for n, m in model.named_modules()}
        for kind, mods, fn in (("output", outs, lambda: self.output / self.scale), ("lstm", lstms, lambda: self.lstm / self.scale)):
            for m in mods:
                key = f"{kind}:{names.get(id(m), type(m).__name__)}"
                self._fired[key] = 0
                self._handles.append(m.register_forward_hook(self._hook(key, fn)))

    def _hook(self, key: str, limit_fn):
        def hook(module, inputs, output):
            if module.training and torch.is_grad_enabled():
                self._fired[key] += 1
                _clamp_tensors(output, limit_fn)

        return hook

    def before_forward(self) -> None:
        for k in self._fired:
            self._fired[k] = 0

    def before_backward(self, scale: float) -> None:
        self.scale = float(scale)
        if self.native:
            self.model.set_gradient_clipping(output=self.output / self.scale, lstm=self.lstm / self.scale)

    def unreached(self) -> list[str]:
        """Targets whose hooks did not fire in the last forward pass (so nothing was clipped there)."""
        return [k for k, n in self._fired.items() if n == 0]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.native:
            self.model.set_gradient_clipping(output=None, lstm=None)


# ----------------------------------------------------------------------------------------------------------
# loggers


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


# ----------------------------------------------------------------------------------------------------------
# the trainer


@contextlib.contextmanager
def isolated_rng(devices: list | None = None):
    """Run a block without disturbing any global RNG (torch, CUDA, numpy, python)."""
    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices if devices is not None else [], enabled=True):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _move(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to") and callable(batch.to) and not torch.is_tensor(batch):
        return batch.to(device)
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(v, device) for v in batch)
    return batch


def _grad_norm(params: list[nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])))


SampleFn = Callable[[nn.Module, int], "dict[str, Any]"]


class Trainer:
    """Train ``model`` on ``train_loader``; see the module docstring.

    ``logger``: a :class:`Logger` (default: TensorBoard in ``log_dir`` or ``out_dir/tb`` when one is set,
    plus W&B with ``config.wandb``).  ``sample_fn(model, step) -> {tag: image or Figure}``: model-specific
    sample images (and φ heat maps) logged every ``sample_every`` steps.  ``meta``: extra JSON stored in
    every model checkpoint (alphabet, normaliser, tokenizer, ``training`` provenance such as the command
    line and the data checksum).

    After :meth:`fit`: ``history`` (one dict per step: step, loss, lr, grad_norm, skipped),
    ``validation`` (one dict per evaluation), ``skipped_steps``, ``best``.
    """

    STATE_FILE = "state.safetensors"

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable,
        valid_loader: Iterable | None = None,
        config: TrainConfig | None = None,
        logger: Logger | None = None,
        *,
        sample_fn: SampleFn | None = None,
        meta: dict | None = None,
    ):
        self.config = config = config or TrainConfig()
        if not hasattr(model, "training_step"):
            raise TrainError(f"{type(model).__name__} has no training_step(batch); see docs/INTERFACES.md")
        self.device = resolve_device(config.device)
        rank, world, local_rank = dist_env()
        self.distributed = bool(config.ddp or world > 1)
        if self.distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        elif config.keep_freed_memory:
            keep_freed_memory()  # 10-30% faster CPU steps: no page faults on every step's large tensors
        import torch.distributed as dist

        had_group = dist.is_available() and dist.is_initialized()
        self.rank, self.world = init_distributed(self.device) if self.distributed else (0, 1)
        self._owns_process_group = self.world > 1 and not had_group
        self.is_main = self.rank == 0
        self.model = model.to(self.device)
        if self.world > 1:
            self._broadcast_parameters()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, config)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.clipper = GravesClipper(self.model, config.clip_output, config.clip_lstm) if config.clip == "graves" else None
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.sample_fn = sample_fn
        self.meta = dict(meta or {})
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best = math.inf
        self.skipped_steps = 0
        self._bad_in_row = 0
        self._warned_clip = False
        self.history: list[dict] = []
        self.validation: list[dict] = []
        self.wall_time = 0.0
        self._iter: Iterator | None = None
        self._epoch_sampler_state: Any = None
        self._resume_sampler_state: Any = None
        self._pending_rng: tuple | None = None
        self._last_eval_step = -1
        self._owns_logger = logger is None
        self.logger: Logger | None = logger if self.is_main else Logger()  # the default one opens in fit()

    # --- set-up ---------------------------------------------------------------------------------------

    def _default_logger(self) -> Logger:
        if not self.is_main:
            return Logger()
        c = self.config
        loggers: list[Logger] = []
        log_dir = c.log_dir or (str(self.out_dir / "tb") if self.out_dir else None)
        if log_dir:
            loggers.append(TensorBoardLogger(log_dir))
        if c.wandb:
            loggers.append(WandbLogger(c.wandb_project, config=dataclasses.asdict(c), dir=c.out_dir))
        return MultiLogger(*loggers)

    def _broadcast_parameters(self) -> None:
        import torch.distributed as dist

        with torch.no_grad():
            for t in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(t.data, src=0)

    def total_steps(self) -> int:
        c = self.config
        total = c.steps if c.steps is not None else math.inf
        if c.epochs is not None:
            try:
                total = min(total, c.epochs * len(self.train_loader))
            except TypeError:
                pass
        return int(total) if math.isfinite(total) else sys.maxsize

    # --- the data stream ------------------------------------------------------------------------------

    def _sampler_state(self, loader: Any) -> dict:
        """The batch order's state at the start of an epoch: the batch sampler's ``state_dict`` and the
        state of every sampler's own ``torch.Generator``."""
        bs = getattr(loader, "batch_sampler", None)
        state: dict[str, Any] = {"batch_sampler": bs.state_dict() if hasattr(bs, "state_dict") else None, "generators": {}}
        for i, s in enumerate(_samplers(loader)):
            g = getattr(s, "generator", None)
            if isinstance(g, torch.Generator):
                state["generators"][str(i)] = g.get_state().tolist()
        return state

    def _load_sampler_state(self, loader: Any, state: dict) -> None:
        bs = getattr(loader, "batch_sampler", None)
        if state.get("batch_sampler") is not None and hasattr(bs, "load_state_dict"):
            bs.load_state_dict(state["batch_sampler"])
        samplers = _samplers(loader)
        for i, g_state in state.get("generators", {}).items():
            g = getattr(samplers[int(i)], "generator", None) if int(i) < len(samplers) else None
            if isinstance(g, torch.Generator):
                g.set_state(torch.tensor(g_state, dtype=torch.uint8))

    def _set_epoch(self) -> None:
        dataset = getattr(self.train_loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):  # per-epoch augmentation seeded from (seed, epoch, index)
            dataset.set_epoch(self.epoch)
        for s in _samplers(self.train_loader):
            if hasattr(s, "set_epoch"):
                s.set_epoch(self.epoch)
            elif isinstance(s, torch.utils.data.RandomSampler) and (s.generator is None or getattr(s, "_hw_seeded", False)):
                # an unseeded shuffle draws from the global RNG: seed it from (seed, epoch) so that the batch
                # order can be rebuilt on resume
                s.generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.epoch)
                s._hw_seeded = True

    def _make_iter(self) -> Iterator:
        loader = self.train_loader
        self._set_epoch()
        if self._resume_sampler_state is not None:
            self._load_sampler_state(loader, self._resume_sampler_state)
        self._resume_sampler_state = None
        self._epoch_sampler_state = self._sampler_state(loader)
        bs = getattr(loader, "batch_sampler", None)
        skip = self.batch_in_epoch
        if isinstance(loader, torch.utils.data.DataLoader) and bs is not None and (skip or self.world > 1):
            sampler = bs
            if self.world > 1:
                sampler = ShardedBatchSampler(sampler, self.rank, self.world)
            if skip:
                sampler = SkipBatchSampler(sampler, skip)
            return iter(_with_batch_sampler(loader, sampler))
        if self.world > 1:
            raise TrainError("data-parallel training needs a torch DataLoader with a batch sampler (make_loader gives one)")
        it = iter(loader)
        for _ in range(skip):  # a plain iterable: skip by iterating
            if next(it, None) is None:
                break
        return it

    def _next_batch(self) -> Any | None:
        c = self.config
        while True:
            if self._iter is None:
                if c.epochs is not None and self.epoch >= c.epochs:
                    return None
                self._iter = self._make_iter()
                if self._pending_rng is not None:
                    ckpt.set_rng_state(*self._pending_rng)
                    self._pending_rng = None
            try:
                batch = next(self._iter)
            except StopIteration:
                if self.batch_in_epoch == 0:
                    raise TrainError("the training data loader yields no batches; check the data set and --batch-size")
                self._end_epoch()
                continue
            self.batch_in_epoch += 1
            return batch

    def _epoch_length(self) -> int | None:
        try:
            return len(self.train_loader)
        except TypeError:
            return None

    def _end_epoch(self) -> None:
        self._iter = None
        self.epoch += 1
        self.batch_in_epoch = 0
        self._set_epoch()
        self._epoch_sampler_state = self._sampler_state(self.train_loader)  # what a resume here must start from
        if self.config.eval_every is None and self.valid_loader is not None and self._last_eval_step != self.step:
            self._validate_and_keep_best()

    # --- one step -------------------------------------------------------------------------------------

    def _autocast(self):
        if self.config.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _all_reduce(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def _all_reduce_grads(self) -> None:
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(self.params, grads):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def train_step(self, batch: Any) -> dict:
        """Forward, backward, (all-reduce,) clip and optimizer step on one batch; returns the step's record.
        A non-finite loss or gradient skips the optimizer step (weights and optimizer state untouched)."""
        c = self.config
        self.model.train()
        batch = _move(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        if self.clipper is not None:
            self.clipper.before_forward()
        with self._autocast():
            out = self.model.training_step(batch)
        loss = out["loss"]
        points, sequences, nll_sum = int(out["points"]), int(out["sequences"]), float(out["nll_sum"])
        local_w = points if c.loss_unit == "point" else sequences
        loss_value = float(loss.detach())
        finite = math.isfinite(loss_value)
        if c.loss_unit == "sequence":
            loss_value = loss_value * points / max(sequences, 1)  # the objective: nats per sequence
        weighted = loss_value * local_w if finite else 0.0
        tot_w, tot_points, tot_seq, tot_nll, n_bad, tot_weighted = self._all_reduce(
            [local_w, points, sequences, nll_sum, 0.0 if finite else 1.0, weighted]
        )
        ok = n_bad == 0 and tot_w > 0
        grad_norm = float("nan")
        if ok:
            if self.clipper is not None:
                self.clipper.before_backward(tot_w)
            objective = loss if c.loss_unit == "point" else loss * (points / max(sequences, 1))
            if self.world > 1:
                objective = objective * (local_w / tot_w)  # the ranks' objectives sum to the global mean
            objective.float().backward()
            if self.world > 1:
                self._all_reduce_grads()
            fallback = self.clipper is not None and self.clipper.unreached()
            if fallback and not self._warned_clip and self.is_main:
                self._warned_clip = True
                warnings.warn(
                    f"clip='graves': {type(self.model).__name__} does not call {', '.join(fallback)} as modules and "
                    "has no set_gradient_clipping(); clipping the gradient norm to clip_norm="
                    f"{c.clip_norm} there instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if c.clip == "norm" or fallback:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, c.clip_norm))
            else:
                grad_norm = _grad_norm(self.params)
            ok = math.isfinite(grad_norm)
        if ok:
            self.optimizer.step()
            self._bad_in_row = 0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self._bad_in_row += 1
            if self.is_main:
                what = "loss" if n_bad else "gradient"
                warnings.warn(
                    f"step {self.step + 1}: non-finite {what}; the update was skipped "
                    f"({self.skipped_steps} skipped so far)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if self._bad_in_row >= c.max_bad_steps:
                raise TrainError(
                    f"{self._bad_in_row} non-finite steps in a row (step {self.step + 1}); lower --lr, use "
                    "--clip graves/norm, or check the data for extreme offsets"
                )
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.step += 1
        record = {
            "step": self.step,
            "loss": tot_weighted / tot_w if n_bad == 0 and tot_w > 0 else float("nan"),
            "nll_per_point": tot_nll / max(tot_points, 1),
            "nll_per_sequence": tot_nll / max(tot_seq, 1),
            "lr": lr,
            "grad_norm": grad_norm,
            "points": int(tot_points),
            "sequences": int(tot_seq),
            "skipped": not ok,
        }
        self.history.append(record)
        return record

    # --- evaluation and samples -----------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, loader: Iterable | None = None, max_batches: int | None = None) -> dict:
        """Validation NLL: ``nll_per_sequence`` (nats summed over a sequence, averaged over sequences —
        Graves' figure) and ``nll_per_point``.  Runs without touching the training RNG stream; in
        data-parallel runs each rank takes every ``world``-th batch and the sums are all-reduced."""
        loader = self.valid_loader if loader is None else loader
        if loader is None:
            return {}
        max_batches = max_batches or self.config.eval_batches
        was_training = self.model.training
        self.model.eval()
        nll = pts = seqs = 0.0
        with isolated_rng(self._rng_devices()):
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                if i % self.world != self.rank:
                    continue
                with self._autocast():
                    out = self.model.training_step(_move(batch, self.device))
                nll += float(out["nll_sum"])
                pts += int(out["points"])
                seqs += int(out["sequences"])
        nll, pts, seqs = self._all_reduce([nll, pts, seqs])
        self.model.train(was_training)
        if seqs == 0:
            return {}
        result = {"nll_per_sequence": nll / seqs, "nll_per_point": nll / max(pts, 1), "points": int(pts), "sequences": int(seqs)}
        return result

    def _rng_devices(self) -> list:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _validate_and_keep_best(self) -> dict:
        result = self.evaluate()
        self._last_eval_step = self.step
        if not result:
            return result
        result = {"step": self.step, "epoch": self.epoch, **result}
        self.validation.append(result)
        (self.logger or Logger()).log_scalars(
            {"valid/nll_per_sequence": result["nll_per_sequence"], "valid/nll_per_point": result["nll_per_point"]}, self.step
        )
        if result["nll_per_sequence"] < self.best:
            self.best = result["nll_per_sequence"]
            if self.out_dir is not None and self.is_main:
                self.save_model(self.out_dir / "best", metrics=result)
        return result

    def log_samples(self) -> None:
        if self.sample_fn is None or not self.is_main:
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with isolated_rng(self._rng_devices()), torch.no_grad():
                images = self.sample_fn(self.model, self.step) or {}
            for tag, img in images.items():
                (self.logger or Logger()).log_image(tag, img, self.step)
        except HandwritingError as exc:  # a sample that cannot be drawn must not stop training
            warnings.warn(f"step {self.step}: sample images failed: {exc}", RuntimeWarning, stacklevel=2)
        finally:
            self.model.train(was_training)

    # --- checkpoints ----------------------------------------------------------------------------------

    def _training_meta(self) -> dict:
        info = dict(self.meta.get("training", {}))
        info.update(
            {
                "steps": self.step,
                "epochs": self.epoch,
                "wall_time_s": round(self.wall_time, 3),
                "skipped_steps": self.skipped_steps,
                "train_config": dataclasses.asdict(self.config),
                "hardware": ckpt.hardware_info(self.device),
                "world_size": self.world,
            }
        )
        info.setdefault("git_commit", ckpt.git_commit())
        return info

    def save_model(self, path_stem: str | os.PathLike, metrics: dict | None = None, dtype: str | None = None) -> Path | None:
        """Save the model (weights + JSON description) with this run's provenance; rank 0 only."""
        if not self.is_main:
            return None
        extra = {k: v for k, v in self.meta.items() if k != "training"}
        extra["training"] = self._training_meta()
        m = dict(self.validation[-1]) if self.validation and metrics is None else dict(metrics or {})
        if m:
            m["best_nll_per_sequence"] = self.best if math.isfinite(self.best) else None
        extra["metrics"] = m
        return ckpt.save_model(path_stem, self.model, extra, dtype=dtype)

    def state_tensors_and_meta(self) -> tuple[dict, dict]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_t, opt_rest = ckpt.flatten_optimizer_state(self.optimizer.state_dict())
        rng_t, rng_rest = ckpt.rng_state()
        tensors.update(opt_t)
        tensors.update(rng_t)
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best if math.isfinite(self.best) else None,
            "skipped_steps": self.skipped_steps,
            "wall_time_s": self.wall_time,
            "optimizer": opt_rest,
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_rest,
            "sampler_state": self._epoch_sampler_state,
            "train_config": dataclasses.asdict(self.config),
            "model_class": type(self.model).__name__,
            "model_config": ckpt.config_to_dict(self.model.config) if hasattr(self.model, "config") else None,
            "validation": self.validation,
            "meta": self.meta,
        }
        return tensors, meta

    def save_state(self, directory: str | os.PathLike | None = None) -> Path | None:
        """Write everything an exact resume needs into ``directory/state.safetensors`` (atomically) and the
        current model as ``directory/last``; rank 0 only."""
        directory = Path(directory) if directory is not None else self.out_dir
        if directory is None or not self.is_main:
            return None
        tensors, meta = self.state_tensors_and_meta()
        path = ckpt.save_training_state(directory / self.STATE_FILE, tensors, meta)
        self.save_model(directory / "last")
        return path

    def load_state(self, path: str | os.PathLike) -> dict:
        """Restore a state written by :meth:`save_state` (a directory or the state file); the next
        :meth:`fit` continues exactly where that run stopped.  Returns the state's JSON part."""
        tensors, meta = ckpt.load_training_state(path)
        name = type(self.model).__name__
        if meta.get("model_class") not in (None, name):
            raise TrainError(f"{path}: the state is for a {meta['model_class']}, not a {name}")
        model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_sd, strict=True)
        except RuntimeError as exc:
            raise TrainError(f"{path}: the saved weights do not fit this model ({exc})") from exc
        opt_sd = ckpt.unflatten_optimizer_state(tensors, meta["optimizer"])
        self.optimizer.load_state_dict(opt_sd)
        self.scheduler.load_state_dict(meta["scheduler"])
        saved_seed = (meta.get("train_config") or {}).get("seed")
        if saved_seed is not None:
            self.config.seed = int(saved_seed)  # the batch order depends on it: keep the interrupted run's
        self.step = int(meta["step"])
        self.epoch = int(meta["epoch"])
        self.batch_in_epoch = int(meta["batch_in_epoch"])
        self.best = math.inf if meta.get("best") is None else float(meta["best"])
        self.skipped_steps = int(meta.get("skipped_steps", 0))
        self.wall_time = float(meta.get("wall_time_s", 0.0))
        self.validation = list(meta.get("validation", []))
        self._last_eval_step = self.validation[-1]["step"] if self.validation else -1
        self._resume_sampler_state = meta.get("sampler_state")
        rng_t = {k: v for k, v in tensors.items() if k.startswith("rng.")}
        self._iter = None
        if self.batch_in_epoch == 0:
            ckpt.set_rng_state(rng_t, meta["rng"])
            self._pending_rng = None
        else:  # the iterator of the interrupted epoch is rebuilt first, then the RNGs are put back
            self._pending_rng = (rng_t, meta["rng"])
        return meta

    # --- the loop -------------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until ``steps`` (or ``epochs``) are done; return a summary.  Can be called again after
        raising ``config.steps`` to train further."""
        from tqdm.auto import tqdm

        c = self.config
        total = self.total_steps()
        if self.logger is None:
            self.logger = self._default_logger()
        if self.step == 0 and not self.validation:
            self.logger.log_config(dataclasses.asdict(c))
        bar = tqdm(
            total=None if total == sys.maxsize else total, initial=self.step, disable=not (c.progress and self.is_main),
            desc=f"train {type(self.model).__name__}", dynamic_ncols=True, leave=True,
        )  # fmt: skip
        start = time.perf_counter()
        wall0 = self.wall_time
        try:
            while self.step < total:
                batch = self._next_batch()
                if batch is None:
                    break
                t_step = time.perf_counter()
                rec = self.train_step(batch)
                dt = time.perf_counter() - t_step
                if self.batch_in_epoch == self._epoch_length():
                    self._end_epoch()  # at once, so that a checkpoint taken now starts the next epoch cleanly
                self.wall_time = wall0 + time.perf_counter() - start
                bar.update(1)
                if self.is_main:
                    if math.isfinite(rec["loss"]):
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", nll_seq=f"{rec['nll_per_sequence']:.1f}", refresh=False)
                    if self.step % c.log_every == 0 or self.step == 1:
                        self.logger.log_scalars(
                            {
                                "train/loss": rec["loss"],
                                "train/nll_per_sequence": rec["nll_per_sequence"],
                                "train/nll_per_point": rec["nll_per_point"],
                                "train/lr": rec["lr"],
                                "train/grad_norm": rec["grad_norm"],
                                "train/skipped_steps": self.skipped_steps,
                                "train/points_per_s": rec["points"] / max(dt, 1e-9),
                            },
                            self.step,
                        )
                if c.eval_every is not None and self.step % c.eval_every == 0 and self.valid_loader is not None:
                    v = self._validate_and_keep_best()
                    if v and self.is_main:
                        bar.write(
                            f"step {self.step}: validation NLL {v['nll_per_sequence']:.2f} nats/sequence, "
                            f"{v['nll_per_point']:.4f} nats/point"
                        )
                if c.sample_every is not None and self.step % c.sample_every == 0:
                    self.log_samples()
                if c.checkpoint_every is not None and self.step % c.checkpoint_every == 0:
                    self.save_state()
            if self.valid_loader is not None and self._last_eval_step != self.step:
                self._validate_and_keep_best()
            if c.sample_every is not None and self.step % c.sample_every != 0:
                self.log_samples()
            self.wall_time = wall0 + time.perf_counter() - start
            self.save_state()
        finally:
            bar.close()
            if self._owns_logger and self.logger is not None:
                self.logger.close()
                self.logger = None
        if self.skipped_steps and self.is_main:
            print(f"note: {self.skipped_steps} step(s) with a non-finite loss or gradient were skipped", file=sys.stderr)
        return self.summary()

    def summary(self) -> dict:
        last = self.validation[-1] if self.validation else {}
        return {
            "steps": self.step,
            "epochs": self.epoch,
            "wall_time_s": self.wall_time,
            "skipped_steps": self.skipped_steps,
            "final_loss": self.history[-1]["loss"] if self.history else None,
            "valid": last,
            "best_nll_per_sequence": self.best if math.isfinite(self.best) else None,
        }

    def close(self) -> None:
        """Remove the clipping hooks and close the logger (the model keeps training-free behaviour)."""
        if self.clipper is not None:
            self.clipper.remove()
            self.clipper = None
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self._owns_process_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_process_group = False


# ----------------------------------------------------------------------------------------------------------
# `handwriting train`: data, model and sample images for each kind of model

EPILOG = """examples:
  handwriting train graves --data synthetic --steps 3 --size tiny           (a smoke test: seconds)
  handwriting train graves --data bigbank --size small --steps 20000 --out runs/graves
  handwriting train graves --data iam:~/data/iam-ondb --size paper --optimizer rmsprop --clip graves
  handwriting train graves-prediction --data bigbank --steps 5000
  handwriting train transformer --data bigbank --size small --steps 50000 --amp bf16
  handwriting train recognizer --bigbank ~/bigbank_3500.json.zip --steps 3000
  handwriting train --resume runs/graves --steps 40000                     (continue, exactly)
  handwriting train transformer --data bigbank --init runs/ct/best --lr 5e-3 --steps 5000  (fine-tune: new optimizer)
  torchrun --nproc_per_node 2 -m handwriting train graves --data bigbank   (data parallel)

--data: synthetic (the built-in synthetic writer, offline), bigbank (the cursive transformer's words;
`handwriting data download bigbank`), iam:PATH (IAM-OnDB unpacked at PATH, official splits), json:PATH (a
handwriting-samples JSON file, e.g. your own). Word data is split word-disjointly into training and
validation words (--valid-fraction) and, for the line models, stitched into lines of --words-per-line words.

Written to --out (default runs/MODEL-DATA-TIME): best.* (lowest validation NLL), final.* (the end), last.*
and state.safetensors (every --checkpoint-every steps; what --resume continues from), tb/ (TensorBoard:
`tensorboard --logdir runs`). Validation NLL is reported in nats per sequence (Graves' figure) and per
point, in the model's normalised units.
"""

MODEL_KINDS = ("graves", "graves-prediction", "transformer", "mdn-transformer", "recognizer")

SIZES: dict[str, dict[str, dict]] = {
    "graves": {
        "tiny": dict(hidden=32, layers=1, mixtures=5, window_mixtures=3),
        "small": dict(hidden=256, layers=2, mixtures=20, window_mixtures=10),
        "paper": dict(hidden=400, layers=3, mixtures=20, window_mixtures=10),  # Graves (2013) §4-5
    },
    "transformer": {
        "tiny": dict(n_layer=2, d_model=32, n_head=2, block_size=400),
        "small": dict(n_layer=4, d_model=64, n_head=4, block_size=1050),
        "paper": dict(n_layer=5, d_model=64, n_head=4, block_size=1500),  # Greydanus & Wimpee (2025)
    },
}

# every option's default (argparse defaults are None so that --resume can tell what was given again)
DEFAULTS: dict[str, Any] = dict(
    model=None, data="synthetic", bigbank=None, steps=2000, epochs=None, batch_size=32, size="small",
    hidden=None, layers=None, mixtures=None, window_mixtures=None, d_model=None, n_layer=None, n_head=None,
    block_size=None, lr=None, optimizer=None, schedule=None, step_size=None, gamma=None, warmup=None,
    weight_decay=None, clip=None, clip_norm=None, loss_unit=None, amp="none", device="auto", out=None,
    resume=None, init=None, valid_fraction=0.1, words_per_line=None, lines=20000, valid_lines=256, synthetic=2000,
    augment=False, downsample=None, end_marker=None, seed=0, eval_every=500, sample_every=1000, checkpoint_every=500, log_every=10,
    num_workers=0, wandb=False, save_dtype=None, limit=None, progress=True,
)  # fmt: skip

SAMPLE_TEXTS = ["hello world", "handwriting"]


def configure(parser) -> None:
    a = parser.add_argument
    a("model", nargs="?", choices=MODEL_KINDS, help="what to train (not needed with --resume)")
    g = parser.add_argument_group("data")
    g.add_argument("--data", help="synthetic | bigbank | iam:PATH | json:PATH (default synthetic)")
    g.add_argument("--bigbank", metavar="PATH", help="the bigbank_3500.json.zip to use (default: found as `handwriting data path bigbank`)")
    g.add_argument("--valid-fraction", type=float, help="share of the words held out for validation (default 0.1)")
    g.add_argument("--words-per-line", metavar="N|LO-HI", help="stitch word data into lines of N (or LO-HI) words (default: 2-4 for bigbank, else 1)")
    g.add_argument("--lines", type=int, help="stitched training lines per epoch (default 20000)")
    g.add_argument("--valid-lines", type=int, help="stitched validation lines (default 256)")
    g.add_argument("--synthetic", type=int, metavar="N", help="words drawn by the synthetic writer for --data synthetic (default 2000)")
    g.add_argument("--limit", type=int, help="use only the first N samples of the data (quick experiments)")
    g.add_argument("--augment", action="store_true", default=None, help="random shear/scale/rotation of the training data")
    g.add_argument("--downsample", type=float, metavar="F", help="Graves networks: drop this fraction of each stroke's interior points (default 0.65 for bigbank, as the cursive transformer does; else 0)")
    m = parser.add_argument_group("model")
    m.add_argument("--size", choices=("tiny", "small", "paper"), help="preset model size (default small)")
    for name in ("hidden", "layers", "mixtures", "window-mixtures"):
        m.add_argument(f"--{name}", type=int, help="Graves networks: override the size preset")
    for name in ("d-model", "n-layer", "n-head", "block-size"):
        m.add_argument(f"--{name}", type=int, help="transformers: override the size preset")
    m.add_argument("--end-marker", action=argparse.BooleanOptionalAction, default=None,
                   help="cursive transformer: a learned end-of-text character after every text (default: on for a "
                   "new model; with --init, --end-marker adds one to a model that has none)")
    t = parser.add_argument_group("training")
    t.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    t.add_argument("--epochs", type=int, help="stop after this many epochs")
    t.add_argument("--batch-size", type=int, help="sequences per batch (default 32)")
    t.add_argument("--lr", type=float, help="learning rate (default: 1e-4 with rmsprop (Graves), 1e-2 for the transformer (Greydanus & Wimpee), else 1e-3)")
    t.add_argument("--optimizer", choices=("adam", "adamw", "rmsprop"), help="rmsprop = Graves' RMSProp with momentum")
    t.add_argument("--schedule", choices=("none", "step"), help="step: lr × --gamma every --step-size steps")
    t.add_argument("--step-size", type=int, help="steps between learning-rate decays (default steps/6)")
    t.add_argument("--gamma", type=float, help="learning-rate factor per decay (default 0.5)")
    t.add_argument("--warmup", type=int, help="linear warm-up steps (default 0; 200 with --init)")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--clip", choices=("none", "norm", "graves"), help="gradient clipping (default: graves for the Graves networks with --optimizer rmsprop, else norm)")
    t.add_argument("--clip-norm", type=float)
    t.add_argument("--loss-unit", choices=("point", "sequence"), help="average the loss per point or per sequence (Graves)")
    t.add_argument("--amp", choices=("none", "bf16"), help="bf16 autocast (CPU with AVX-512-BF16/AMX, or CUDA)")
    t.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    t.add_argument("--seed", type=int, help="seed of everything (default 0)")
    t.add_argument("--num-workers", type=int, help="data loading processes (default 0)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="where checkpoints and logs go (default runs/MODEL-DATA-TIME)")
    o.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly where it stopped")
    o.add_argument("--init", metavar="MODEL", help="start from these weights (a saved model path such as runs/x/best, "
                   "or a pretrained name) with a fresh optimizer and schedule: fine-tuning; the architecture must match")
    o.add_argument("--eval-every", type=int, help="steps between validations (default 500)")
    o.add_argument("--sample-every", type=int, help="steps between sample images in TensorBoard (default 1000)")
    o.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    o.add_argument("--log-every", type=int)
    o.add_argument("--save-dtype", choices=("fp32", "bf16", "fp16"), help="store the final/best weights at this precision")
    o.add_argument("--wandb", action="store_true", default=None, help="also log to Weights & Biases (pip install wandb)")
    o.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")


def _options(args) -> dict:
    given = {k: v for k, v in vars(args).items() if v is not None}
    opts = dict(DEFAULTS)
    if given.get("resume"):
        from . import checkpoint as ck

        _, meta = ck.load_training_state(given["resume"])
        saved = ((meta.get("meta") or {}).get("training") or {}).get("options")
        if not saved:
            raise TrainError(f"{given['resume']}: the state holds no command-line options; resume it from Python with Trainer.load_state")
        opts.update(saved)
        if saved.get("model") == "transformer" and "end_marker" not in saved:
            opts["end_marker"] = False  # a run started before the end-of-text marker existed has none
        for key in ("model", "data", "size", "bigbank"):  # what the run is cannot change on resume
            if key in given and given[key] != saved.get(key):
                raise TrainError(f"--resume: the run in {given['resume']} trained {key}={saved.get(key)!r}; cannot switch to {given[key]!r}")
        opts["out"] = given["resume"]
    opts.update(given)
    if not opts.get("model"):
        raise TrainError("say what to train: handwriting train graves|graves-prediction|transformer|mdn-transformer|recognizer ...")
    return opts


def _words_per_line(spec: Any, data: str) -> int | tuple[int, int]:
    if spec is None:
        return (2, 4) if data == "bigbank" else 1
    if isinstance(spec, (int, list, tuple)):
        return tuple(spec) if isinstance(spec, (list, tuple)) else int(spec)
    s = str(spec)
    try:
        if "-" in s:
            lo, hi = (int(x) for x in s.split("-", 1))
            return (lo, hi)
        return int(s)
    except ValueError:
        raise TrainError(f"--words-per-line {spec!r}: give a number (3) or a range (2-4)") from None


def _sha256(path: Path) -> str:
    return ckpt.sha256_file(path)


def load_data(opts: dict) -> tuple[list, list, dict]:
    """``(train samples, valid samples, provenance)`` for ``--data`` (word-disjoint split of word data,
    IAM's official split)."""
    from .datasets.torch_data import word_disjoint_split

    spec = str(opts["data"])
    kind, _, arg = spec.partition(":")
    seed, frac, limit = int(opts["seed"]), float(opts["valid_fraction"]), opts.get("limit")
    info: dict[str, Any] = {"data": spec}
    if kind == "synthetic":
        from .datasets.synthetic import random_words, synthesize

        n = int(opts["synthetic"])
        if limit:
            n = min(n, int(limit))
        samples = synthesize(random_words(n, seed=seed), writer=None, seed=seed)
        recipe = json.dumps({"synthetic": n, "seed": seed}, sort_keys=True)
        info["data_sha256"] = hashlib.sha256(recipe.encode()).hexdigest()
        info["data_recipe"] = recipe
    elif kind == "bigbank":
        from .datasets.download import bigbank_path
        from .datasets.jsonink import load_bigbank

        path = Path(opts["bigbank"]).expanduser() if opts.get("bigbank") else bigbank_path()
        samples = load_bigbank(path, limit=limit)
        info.update(data_file=str(path), data_sha256=_sha256(path))
    elif kind == "json":
        from .datasets.jsonink import load_samples

        if not arg:
            raise DataError("--data json:PATH needs the path of a handwriting-samples JSON file")
        path = Path(arg).expanduser()
        samples = load_samples(path)[:limit]
        info.update(data_file=str(path), data_sha256=_sha256(path))
    elif kind == "iam":
        from .datasets.iam import load_iam

        if not arg:
            raise DataError("--data iam:PATH needs the folder where IAM-OnDB is unpacked (see data/README.md)")
        root = Path(arg).expanduser()
        train = list(load_iam(root, "train", limit=limit))
        valid = list(load_iam(root, "valid", limit=limit))
        listing = hashlib.sha256()
        for s in train + valid:
            listing.update(f"{s.source}:{len(s.offsets)}:{s.text}\n".encode())
        info.update(data_file=str(root), data_sha256=listing.hexdigest(), data_sha256_of="the list of lines")
        info.update(train_samples=len(train), valid_samples=len(valid))
        return train, valid, info
    else:
        raise DataError(f"--data {spec!r}: use synthetic, bigbank, iam:PATH or json:PATH")
    if not samples:
        raise DataError(f"--data {spec}: no samples loaded")
    train, valid = word_disjoint_split(samples, frac, seed=seed)
    if not train or not valid:
        raise DataError(
            f"--data {spec}: {len(samples)} samples give {len(train)} training and {len(valid)} validation samples; "
            "use more data or another --valid-fraction"
        )
    info.update(train_samples=len(train), valid_samples=len(valid), valid_fraction=frac)
    return train, valid, info


def _train_config(opts: dict, kind: str, native_clip: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` for the command line's options.  Clipping defaults to Graves' for the
    Graves networks trained with RMSProp (his recipe) when the model can clip its own derivatives
    (``set_gradient_clipping``), else to the gradient norm."""
    graves = kind.startswith("graves")
    optimizer = opts.get("optimizer") or ("adamw" if kind in ("transformer", "mdn-transformer") else "adam")
    if opts.get("lr") is not None:
        lr = float(opts["lr"])
    elif optimizer == "rmsprop":
        lr = 1e-4  # Graves (2013)
    elif kind == "transformer":
        lr = 1e-2  # Greydanus & Wimpee (2025): AdamW 1e-2, weight decay 1e-4, ×0.5 every 20k of 125k steps
    else:
        lr = 1e-3
    steps = None if opts.get("epochs") and not opts.get("steps") else int(opts["steps"])
    return TrainConfig(
        steps=steps,
        epochs=opts.get("epochs"),
        batch_size=int(opts["batch_size"]),
        lr=lr,
        optimizer=optimizer,
        weight_decay=float(opts["weight_decay"]) if opts.get("weight_decay") is not None else (1e-4 if optimizer == "adamw" else 0.0),
        schedule=opts.get("schedule") or ("step" if kind in ("transformer", "mdn-transformer") else "none"),
        step_size=int(opts.get("step_size") or max(int(opts["steps"] or 1000) // 6, 1)),
        gamma=float(opts["gamma"]) if opts.get("gamma") is not None else 0.5,
        # fine-tuning (--init) starts Adam's moment estimates from zero: its first steps would move every weight by
        # about the full learning rate, which undoes a trained model; a warm-up lets the estimates settle first
        warmup_steps=int(opts["warmup"]) if opts.get("warmup") is not None else (200 if opts.get("init") else 0),
        # Graves' derivative clipping belongs to his RMSProp recipe; with Adam the gradient norm is clipped (as the
        # shipped models were trained): fine-tuning graves-synthesis-bigbank with Adam 3e-4 and Graves' clipping
        # worsened its validation NLL (-1.78 -> -1.55 nats/point in 400 steps), with norm clipping it improved
        clip=opts.get("clip") or ("graves" if graves and native_clip and optimizer == "rmsprop" else "norm"),
        clip_norm=float(opts["clip_norm"]) if opts.get("clip_norm") is not None else (10.0 if graves else 1.0),
        loss_unit=opts.get("loss_unit") or ("sequence" if optimizer == "rmsprop" else "point"),
        amp=opts["amp"],
        device=opts["device"],
        eval_every=opts.get("eval_every"),
        sample_every=opts.get("sample_every"),
        checkpoint_every=opts.get("checkpoint_every"),
        log_every=int(opts["log_every"]),
        out_dir=str(opts["out"]),
        seed=int(opts["seed"]),
        num_workers=int(opts["num_workers"]),
        wandb=bool(opts["wandb"]),
        progress=bool(opts["progress"]),
    )


def _render_sample_images(written, tag: str) -> dict:
    from .render import render_image

    images = {f"samples/{tag}": render_image(written.offsets, height=64 * max(len(written.lines), 1))}
    if written.internals and "phi" in written.internals[0]:
        from matplotlib.figure import Figure

        d = written.internals[0]
        fig = Figure(figsize=(6, 2.5), dpi=80)
        ax = fig.add_subplot(111)
        ax.imshow(np.asarray(d["phi"]).T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
        text = d.get("full_text", d.get("text", ""))
        ax.set_yticks(range(len(text)), list(text), fontsize=6)
        ax.set_xlabel("time step")
        ax.set_title(f"window weights φ: {text!r}", fontsize=8)
        fig.tight_layout()
        images[f"window/{tag}"] = fig
    elif written.internals and "attention" in written.internals[0]:
        from matplotlib.figure import Figure

        att = np.asarray(written.internals[0]["attention"])  # (layers, heads, L, U)
        fig = Figure(figsize=(6, 2.5), dpi=80)
        ax = fig.add_subplot(111)
        ax.imshow(att[-1].mean(0).T, aspect="auto", origin="lower", interpolation="nearest")
        ax.set_title("cross-attention (last layer, mean over heads)", fontsize=8)
        fig.tight_layout()
        images[f"attention/{tag}"] = fig
    return images


def text_sample_fn(texts: list[str]) -> SampleFn:
    """Sample images for text-conditioned models (handwriting + the φ window or cross-attention map)."""

    def fn(model: nn.Module, step: int) -> dict:
        from .generate import write

        w = write("\n".join(texts), model=model, bias=0.5, seed=step, return_internals=True, unknown="replace")
        return _render_sample_images(w, "text")

    return fn


def prediction_sample_fn(steps: int = 400) -> SampleFn:
    def fn(model: nn.Module, step: int) -> dict:
        from .render import render_image
        from .strokes import Normalizer

        res = model.sample(n=2, steps=steps, seed=step, bias=0.5)
        norm = getattr(model, "normalizer", None) or Normalizer()
        return {f"samples/unconditional_{i}": render_image(norm.denormalize(s), height=64) for i, s in enumerate(res.sequences())}

    return fn


def _points_per_char(samples, keep: float = 1.0, n: int = 500) -> float | None:
    """Points per (non-space) character of the first ``n`` samples after keeping ``keep`` of their points
    (recorded with a model so that a priming sample can be thinned to the density it was trained on)."""
    pts = sum(len(s.offsets) for s in samples[:n])
    chars = sum(len(s.text.replace(" ", "")) for s in samples[:n])
    return round(keep * pts / chars, 2) if chars else None


def _kappa_scale(ds, n: int = 200) -> float:
    """Characters per point over the first ``n`` items (Graves' window then starts near the right pace)."""
    items = [ds[i] for i in range(min(n, len(ds)))]
    points = sum(len(it["x"]) for it in items)
    chars = sum(len(it["text"]) for it in items)
    return round(chars / points, 4) if points and chars else 1.0 / 25.0


def _graves_setup(opts, kind, train_s, valid_s, info):
    from .datasets.torch_data import Alphabet, StitchedLines, StrokeDataset, make_loader
    from .models.graves import GravesConfig, PredictionNetwork, SynthesisNetwork
    from .strokes import AugmentConfig

    seed = int(opts["seed"])
    wpl = _words_per_line(opts.get("words_per_line"), str(opts["data"]).partition(":")[0])
    multi = wpl != 1
    if multi:
        train_items = StitchedLines(train_s, wpl, num_lines=int(opts["lines"]), seed=seed)
        valid_items = StitchedLines(valid_s, wpl, num_lines=int(opts["valid_lines"]), seed=seed + 1)
    else:
        train_items, valid_items = train_s, valid_s
    alphabet = _init_alphabet(opts, train_s + valid_s, multi) or Alphabet.from_texts(
        [s.text for s in train_s] + [s.text for s in valid_s], extra=" " if multi else ""
    )
    init = opts.get("_init")
    data_kind = str(opts["data"]).partition(":")[0]
    # bigbank is sampled densely (~50 points per character); dropping 65% of each stroke's interior points
    # (Greydanus & Wimpee's preprocessing) brings it near IAM-OnDB's density and makes training ~2.5x faster
    down = opts.get("downsample")
    down = (0.65 if data_kind == "bigbank" else None) if down is None else (float(down) or None)
    augment = AugmentConfig() if opts.get("augment") else None
    norm = init[0].normalizer if init is not None and init[0].normalizer is not None else "fit"
    train_ds = StrokeDataset(train_items, alphabet, normalizer=norm, augment=augment, downsample=down, seed=seed)
    valid_ds = StrokeDataset(valid_items, alphabet, normalizer=train_ds.normalizer, downsample=down, seed=seed)
    size = dict(SIZES["graves"][opts["size"]])
    for key in ("hidden", "layers", "mixtures", "window_mixtures"):
        if opts.get(key) is not None:
            size[key] = int(opts[key])
    # κ moves by kappa_scale · exp(κ̂) per point: start it near one character per (points per character)
    cls = SynthesisNetwork if kind == "graves" else PredictionNetwork
    if init is None:
        size.setdefault("kappa_scale", _kappa_scale(train_ds))
        config = GravesConfig(alphabet_size=len(alphabet), **size)
    else:
        config = _init_config(opts, None, cls, {k: k for k in ("hidden", "layers", "mixtures", "window_mixtures")})
    torch.manual_seed(seed)
    model = cls(config)
    model.alphabet, model.normalizer = alphabet, train_ds.normalizer
    bs, workers = int(opts["batch_size"]), int(opts["num_workers"])
    train_loader = make_loader(train_ds, bs, num_workers=workers, seed=seed)
    valid_loader = make_loader(valid_ds, bs, shuffle=False)
    info.update(words_per_line=wpl, train_items=len(train_ds), valid_items=len(valid_ds), downsample=down)
    texts = [t for t in SAMPLE_TEXTS if all(c in alphabet for c in t)] or [alphabet.chars[:12]]
    sample_fn = text_sample_fn(texts) if kind == "graves" else prediction_sample_fn()
    return model, train_loader, valid_loader, {"alphabet": alphabet, "normalizer": train_ds.normalizer}, sample_fn


def _transformer_setup(opts, kind, train_s, valid_s, info):
    from .datasets.torch_data import Alphabet, BucketBatchSampler
    from .models.tokenizer import PolarTokenizer, tokenizer_from_dict
    from .models.transformer import CursiveTransformer, CursiveTransformerConfig, TokenDataset, collate_tokens
    from .strokes import AugmentConfig

    seed = int(opts["seed"])
    data_kind = str(opts["data"]).partition(":")[0]
    wpl = _words_per_line(opts.get("words_per_line"), data_kind)
    wpl_n = wpl[1] if isinstance(wpl, tuple) else wpl
    init = opts.get("_init")
    alphabet = _init_alphabet(opts, train_s + valid_s, wpl_n > 1) or Alphabet.from_texts(
        [s.text for s in train_s] + [s.text for s in valid_s], extra=" " if wpl_n > 1 else ""
    )
    if init is not None:
        tok = tokenizer_from_dict(init[0].config.tokenizer)
    else:
        tok = PolarTokenizer()
        if data_kind != "bigbank":
            tok.fit_scale(train_s)  # bring other data to bigbank's word height, for which the bins were made
    size = dict(SIZES["transformer"][opts["size"]])
    for key in ("d_model", "n_layer", "n_head", "block_size"):
        if opts.get(key) is not None:
            size[key] = int(opts[key])
    text_len = max(50, max(len(s.text) for s in train_s + valid_s) * wpl_n + wpl_n)
    config = CursiveTransformerConfig(
        vocab_size=tok.vocab_size, text_len=text_len, alphabet_size=len(alphabet), tokenizer=tok.to_dict(),
        end_marker=opts.get("end_marker") is not False, **size
    )
    if init is not None:  # the starting model's configuration; the marker only when asked for
        config = _init_config(opts, config, CursiveTransformer, {k: k for k in ("d_model", "n_layer", "n_head", "block_size")})
        config = dataclasses.replace(config, end_marker=config.end_marker or opts.get("end_marker") is True)
        text_len = config.text_len
    common = dict(tokenizer=tok, alphabet=alphabet, block_size=config.block_size, text_len=text_len, words_per_line=wpl_n)
    train_ds = TokenDataset(
        train_s, downsample=(0.65, 0.1), augment=AugmentConfig() if opts.get("augment") else None, seed=seed, **common
    )
    valid_ds = TokenDataset(valid_s, downsample=0.65, seed=seed + 1, **common)
    torch.manual_seed(seed)
    model = CursiveTransformer(config)
    model.alphabet = alphabet
    bs, workers = int(opts["batch_size"]), int(opts["num_workers"])
    lengths = np.array([len(s.offsets) for s in train_s])
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_sampler=BucketBatchSampler(lengths, bs, seed=seed), collate_fn=collate_tokens, num_workers=workers
    )
    valid_loader = torch.utils.data.DataLoader(valid_ds, batch_size=bs, shuffle=False, collate_fn=collate_tokens)
    info.update(words_per_line=wpl_n, tokenizer_scale=tok.scale, points_per_char=_points_per_char(train_s, keep=0.35))
    texts = [t for t in SAMPLE_TEXTS if all(c in alphabet for c in t)] or [alphabet.chars[:12]]
    return model, train_loader, valid_loader, {"alphabet": alphabet}, text_sample_fn(texts)


def build_training(opts: dict) -> tuple:
    """``(model, train_loader, valid_loader, train_config, meta, sample_fn)`` for the command line's
    options (a dict over :data:`DEFAULTS`)."""
    kind = opts["model"]
    if opts.get("end_marker") is not None and kind != "transformer":
        raise TrainError(f"--end-marker is for the cursive transformer (handwriting train transformer), not {kind}")
    if kind == "recognizer" and opts.get("init"):
        raise TrainError("--init is for the generators (graves, graves-prediction, transformer, mdn-transformer)")
    if kind == "recognizer":
        from .models.recognizer import build_recognizer_training

        names = ("steps", "batch_size", "lr", "seed", "valid_fraction", "limit", "hidden", "layers", "device", "amp",
                 "eval_every", "num_workers", "progress")  # fmt: skip
        rec_opts = {k: opts[k] for k in names if opts.get(k) is not None}
        rec_opts.update(data=opts.get("bigbank"), out_dir=str(opts["out"]))
        model, train_loader, valid_loader, config = build_recognizer_training(None, **rec_opts)
        config.checkpoint_every = opts.get("checkpoint_every")
        config.wandb = bool(opts.get("wandb"))
        path = Path(opts["bigbank"]) if opts.get("bigbank") else None
        if path is None:
            from .datasets.download import bigbank_path

            path = bigbank_path()
        info = {"data": "bigbank", "data_file": str(path), "data_sha256": _sha256(path)}
        info.update(getattr(valid_loader, "data_info", {}))
        config.sample_every = None
        return model, train_loader, valid_loader, config, {"training": info, "alphabet": getattr(model, "alphabet", None)}, None
    if kind == "mdn-transformer":
        try:
            from .models import mdn_transformer  # noqa: F401
        except ImportError as exc:
            raise TrainError(f"mdn-transformer is not available in this version ({exc})") from exc
        setup = getattr(mdn_transformer, "build_training", None)
        if setup is None:
            raise TrainError("handwriting.models.mdn_transformer has no build_training(opts, train, valid, info) yet")
    init = None
    if opts.get("init"):
        init = load_init(str(opts["init"]))
        opts = {**opts, "_init": init}
    train_s, valid_s, info = load_data(opts)
    if init is not None:
        info["init_from"] = init[1]
    if kind in ("graves", "graves-prediction"):
        model, tl, vl, meta, sample_fn = _graves_setup(opts, kind, train_s, valid_s, info)
    elif kind == "transformer":
        model, tl, vl, meta, sample_fn = _transformer_setup(opts, kind, train_s, valid_s, info)
    else:
        model, tl, vl, meta, sample_fn = setup(opts, train_s, valid_s, info)
    config = _train_config(opts, kind, native_clip=callable(getattr(model, "set_gradient_clipping", None)))
    meta["training"] = info
    if init is not None:
        state = init[0].state_dict()
        if hasattr(model, "with_end_marker_rows"):  # --end-marker on a model saved without one
            state = model.with_end_marker_rows(state)
        model.load_state_dict(state)  # (--resume then loads the run's own weights over them)
    return model, tl, vl, config, meta, sample_fn


def load_init(source: str) -> tuple[torch.nn.Module, dict]:
    """The model named by ``--init`` (a saved model path such as ``runs/x/best``, or a pretrained name) and a
    record of where it came from (for the new run's metadata)."""
    from .generate import resolve_model  # the path-or-pretrained-name rule that write() and the CLI use
    from .pretrained import PretrainedError

    try:
        model = resolve_model(source)
    except (ckpt.CheckpointError, PretrainedError) as exc:
        raise TrainError(f"--init {source}: {exc}") from exc
    meta, weights = model.meta, ckpt.model_paths(source)[0]
    tr, w = meta.get("training") or {}, meta.get("weights") or {}
    record = {"source": source, "path": str(weights) if weights.is_file() else w.get("file"), "sha256": w.get("sha256"),
              "steps": tr.get("steps"), "wall_time_s": tr.get("wall_time_s"), "command": tr.get("command"),
              "init_from": tr.get("init_from")}  # fmt: skip
    return model, record


def _init_alphabet(opts: dict, samples, multi: bool):
    """With ``--init``: the starting model's alphabet, after checking that the data's texts fit in it."""
    init = opts.get("_init")
    if init is None:
        return None
    alphabet = init[0].alphabet
    used = {c for s in samples for c in s.text} | ({" "} if multi else set())
    missing = "".join(sorted(used - set(alphabet.chars)))
    if missing:
        raise TrainError(f"--init {opts['init']}: the data uses characters the model has no embedding for: {missing!r} "
                         f"(its alphabet: {alphabet.chars!r}); drop the samples that use them or train from scratch")
    return alphabet


def _init_config(opts: dict, config, model_cls: type, given: dict[str, str]):
    """With ``--init``: the starting model's configuration (architecture and fitted constants such as
    Graves' κ scale), after checking the model kind and any size option given on the command line
    (``given`` maps option → config field)."""
    init = opts.get("_init")
    if init is None:
        return config
    model, rec = init
    if type(model) is not model_cls:
        raise TrainError(f"--init {rec['source']}: holds a {type(model).__name__}, but this run trains a {model_cls.__name__}")
    for opt, field in given.items():
        if opts.get(opt) is not None and int(opts[opt]) != getattr(model.config, field):
            raise TrainError(f"--init {rec['source']}: the model has {field}={getattr(model.config, field)}, but "
                             f"--{opt.replace('_', '-')} {opts[opt]} was given; leave the size options out when fine-tuning")
    return dataclasses.replace(model.config)


def _command_line(opts: dict) -> str:
    parts = ["handwriting", "train", str(opts["model"])]
    for k, v in opts.items():
        if k == "end_marker" and v is False:
            parts.append("--no-end-marker")
            continue
        if k in ("model", "resume") or v is None or v == DEFAULTS.get(k) or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if k == "progress":
            parts.append("--no-progress")
        elif v is True:
            parts.append(flag)
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def run(args) -> int:
    import datetime as _dt

    opts = _options(args)
    if not opts.get("out"):
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        opts["out"] = str(Path("runs") / f"{opts['model']}-{str(opts['data']).partition(':')[0]}-{stamp}")
    out = Path(opts["out"])
    model, train_loader, valid_loader, config, meta, sample_fn = build_training(opts)
    training = meta.setdefault("training", {})
    training.update(
        command=_command_line(opts),
        argv=list(sys.argv),
        options={k: v for k, v in opts.items() if k != "resume"},
        git_commit=ckpt.git_commit(),
    )
    trainer = Trainer(model, train_loader, valid_loader, config, sample_fn=sample_fn, meta=meta)
    if opts.get("resume"):
        trainer.load_state(opts["resume"])
        if trainer.step >= trainer.total_steps():
            print(f"{opts['resume']}: already trained {trainer.step} steps; raise --steps to train further")
            return 0
    if trainer.is_main:
        n = sum(p.numel() for p in model.parameters())
        counts = ""
        if "train_samples" in training:
            counts = f" ({training['train_samples']} training / {training['valid_samples']} validation samples)"
        print(f"training {type(model).__name__} ({n / 1e6:.2f}M parameters) on {training.get('data', opts['data'])}"
              f"{counts}, device {trainer.device}, {config.steps or '-'} steps; writing to {out}")  # fmt: skip
    try:
        summary = trainer.fit()
        if trainer.is_main:
            trainer.save_model(out / "final", dtype=opts.get("save_dtype"))
            if opts.get("save_dtype") and (out / "best.safetensors").is_file():
                best, _ = ckpt.load_model(out / "best", verify=True)
                meta_best = ckpt.read_meta(out / "best")
                extra = {k: meta_best.get(k) for k in ("alphabet", "normalizer", "tokenizer", "training", "metrics")}
                ckpt.save_model(out / "best", best, extra, dtype=opts["save_dtype"])
    finally:
        trainer.close()
    if trainer.is_main:
        v = summary.get("valid") or {}
        msg = f"done: {summary['steps']} steps in {summary['wall_time_s']:.1f} s"
        if v:
            msg += f"; validation NLL {v['nll_per_sequence']:.2f} nats/sequence ({v['nll_per_point']:.4f} nats/point)"
        if summary["skipped_steps"]:
            msg += f"; {summary['skipped_steps']} non-finite steps skipped"
        print(msg)
        hint = f"; try: handwriting write \"hello\" --model {out / 'best'}" if opts["model"] in ("graves", "transformer", "mdn-transformer") else ""
        print(f"model: {out / 'final'}.safetensors (best: {out / 'best'}.safetensors){hint}")
    return 0
