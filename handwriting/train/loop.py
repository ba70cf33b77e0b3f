"""The :class:`Trainer`: the training loop, validation, checkpoints and exact resume.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from .._alloc import keep_freed_memory
from .._io import portable_path
from ..devices import bf16_matmul_supported, resolve_device
from ..errors import HandwritingError
from .clipping import GravesClipper
from .config import TrainConfig, TrainError, make_optimizer, make_scheduler
from .distributed import (
    ShardedBatchSampler,
    SkipBatchSampler,
    _samplers,
    _with_batch_sampler,
    dist_env,
    init_distributed,
)
from .loggers import Logger, MultiLogger, TensorBoardLogger, WandbLogger


class TrainingInterrupted(TrainError):
    """Ctrl-C or SIGTERM stopped training after a completed step; the message says where the state is.
    The command exits with the shell's code for the signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _StopSignals:
    """While training runs, SIGINT and SIGTERM only ask it to stop: the step in progress finishes, a resumable
    state is saved, then :class:`TrainingInterrupted` is raised.  A second signal stops at once."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed by the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving the state "
              "(send it again to stop at once, unsaved)", file=sys.stderr, flush=True)

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}


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
        self._model_precision = self._check_amp(model)
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
        self.resume_meta: dict = {}  # saved in the state only, never in a model's description (e.g. local paths)
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

    def _check_amp(self, model: nn.Module) -> bool:
        """Refuse bf16 where it is emulated; hand it to a model that sets its own matmul precision (Graves'
        fused recurrences, which autocast cannot reach).  Returns whether the model took it."""
        if self.config.amp != "bf16":
            return False
        if not bf16_matmul_supported(self.device):
            raise TrainError(
                f"--amp bf16: {self.device} has no native bf16 (a CPU needs AVX-512-BF16 or AMX, a GPU bf16 support), "
                "so PyTorch would emulate it: slower than fp32, and oneDNN has no bf16 LSTM here; use --amp none"
            )
        cfg = getattr(model, "config", None)
        if cfg is not None and hasattr(cfg, "precision"):
            cfg.precision = "bf16"
            return True
        return False

    def _autocast(self):
        if self.config.amp == "bf16" and not self._model_precision:
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
                "train_config": {k: portable_path(Path(v)) if k in ("out_dir", "log_dir") and v else v
                                 for k, v in dataclasses.asdict(self.config).items()},
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
            "resume": self.resume_meta,
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
        stop = _StopSignals()
        try:
            while self.step < total:
                if stop.signum is not None:
                    self.wall_time = wall0 + time.perf_counter() - start
                    raise self._interrupted(stop.signum)
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
                    if c.keep_checkpoints and self.out_dir is not None and self.is_main:
                        self.save_model(self.out_dir / f"step{self.step}")
            if stop.signum is not None:
                self.wall_time = wall0 + time.perf_counter() - start
                raise self._interrupted(stop.signum)
            if self.valid_loader is not None and self._last_eval_step != self.step:
                self._validate_and_keep_best()
            if c.sample_every is not None and self.step % c.sample_every != 0:
                self.log_samples()
            self.wall_time = wall0 + time.perf_counter() - start
            self.save_state()
        finally:
            bar.close()
            stop.restore()
            if self._owns_logger and self.logger is not None:
                self.logger.close()
                self.logger = None
        if self.skipped_steps and self.is_main:
            print(f"note: {self.skipped_steps} step(s) with a non-finite loss or gradient were skipped", file=sys.stderr)
        if self.skipped_steps >= 3 and self.skipped_steps > c.max_skipped_fraction * self.step:  # one bad batch is not divergence
            raise TrainError(
                f"the run diverged: {self.skipped_steps} of its {self.step} steps had a non-finite loss or gradient and "
                f"were skipped (more than {c.max_skipped_fraction:.0%}), so the model is not usable; lower --lr or "
                "clip harder (--clip-norm), and train again"
            )
        return self.summary()

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        """Save a resumable state after a completed step, and say where it is."""
        name = signal.Signals(signum).name
        where = self.save_state()
        if where is None:
            return TrainingInterrupted(f"{name} at step {self.step}: stopped (no --out, so nothing was saved)", signum)
        return TrainingInterrupted(
            f"{name} at step {self.step}: stopped; the state is saved in {where} — continue exactly with "
            f"`handwriting train --resume {where.parent}` (or Trainer.load_state)", signum
        )

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
