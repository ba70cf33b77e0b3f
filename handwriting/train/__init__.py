"""Train a model: one trainer for every model of the course (Graves' networks, the transformers, the recognizer).

The package: :mod:`.config` (how: :class:`TrainConfig`, optimizers, schedule), :mod:`.loop` (the
:class:`Trainer`), :mod:`.clipping` (Graves' derivative clipping), :mod:`.distributed` (``torchrun``),
:mod:`.loggers`, :mod:`.recipes` (one per model kind: data, model, defaults) and :mod:`.command`
(``handwriting train``).

The :class:`Trainer` runs any ``nn.Module`` that follows the training contract of ``docs/INTERFACES.md``:
``model.training_step(batch) -> {"loss", "nll_sum", "points", "sequences"}``.  It brings the optimizers
(Adam, AdamW, Graves' RMSProp with momentum), a step-decay schedule, Graves' gradient clipping or norm
clipping, bf16 autocast, validation NLL in nats per sequence (Graves' figure) and per point, TensorBoard
(and optionally Weights & Biases) logging with sample images, skipping of non-finite steps, atomic
checkpoints, an *exact* resume, and data-parallel training launched by ``torchrun``.

Exact resume: :mod:`.loop`; Graves' clipping: :mod:`.clipping`; data parallel: :mod:`.distributed`.
"""

from ..datasets.sources import load_data
from ..devices import DeviceError, bf16_matmul_supported, resolve_device
from .clipping import GravesClipper
from .command import DEFAULTS, EPILOG, configure, run
from .config import TrainConfig, TrainError, lr_factor, make_optimizer, make_scheduler
from .distributed import ShardedBatchSampler, SkipBatchSampler, init_distributed
from .loggers import Logger, MultiLogger, TensorBoardLogger, WandbLogger
from .loop import Trainer, TrainingInterrupted, isolated_rng
from .recipes import (
    MODEL_KINDS,
    SAMPLE_TEXTS,
    SIZES,
    build_training,
    load_init,
    text_sample_fn,
)

__all__ = [
    "TrainConfig",
    "TrainError",
    "TrainingInterrupted",
    "Trainer",
    "Logger",
    "TensorBoardLogger",
    "WandbLogger",
    "MultiLogger",
    "GravesClipper",
    "ShardedBatchSampler",
    "SkipBatchSampler",
    "DeviceError",
    "bf16_matmul_supported",
    "resolve_device",
    "init_distributed",
    "isolated_rng",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "load_data",
    "load_init",
    "build_training",
    "text_sample_fn",
    "DEFAULTS",
    "EPILOG",
    "MODEL_KINDS",
    "SAMPLE_TEXTS",
    "SIZES",
    "configure",
    "run",
]
