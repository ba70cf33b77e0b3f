"""Data parallel training (``torchrun``): process groups and the batch samplers that shard and skip batches.

Data parallel
-------------
``torchrun --nproc_per_node N -m handwriting train ...`` (or ``TrainConfig(ddp=True)`` with the usual
``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment) starts one process per device (gloo on CPU, NCCL on
CUDA).  Every rank walks the same global batches and takes every ``world``-th sequence of each, so a global
batch means the same as in one process; gradients are all-reduced with weights ``points_r / points`` so they
equal the single-process gradient of the global batch exactly.  Only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import torch

from .config import TrainError


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
