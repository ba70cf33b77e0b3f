"""Data-parallel training: 2 CPU processes (gloo, file init) give the gradients of one process on the same
global batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from test_train import SeqData, TinyConfig, TinyModel, collate  # noqa: E402  (tests/ is on sys.path)

from handwriting.train import ShardedBatchSampler, TrainConfig, Trainer, init_distributed

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: exact numbers, no OpenMP spinning


GLOBAL_BATCH = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]  # two steps, sequences of different lengths


class FixedBatches:
    def __iter__(self):
        return iter([list(b) for b in GLOBAL_BATCH])

    def __len__(self):
        return len(GLOBAL_BATCH)


def _loader():
    return torch.utils.data.DataLoader(SeqData(12, seed=3, augment=False), batch_sampler=FixedBatches(), collate_fn=collate)


def _trainer(steps: int, clip: str) -> Trainer:
    torch.manual_seed(0)
    model = TinyModel(TinyConfig(hidden=6, dropout=0.0))
    ddp = "WORLD_SIZE" in os.environ
    config = TrainConfig(steps=steps, lr=1e-2, clip=clip, progress=False, ddp=ddp, eval_every=1)
    return Trainer(model, _loader(), _loader(), config)


CASES = [("graves", 1), ("norm", 2)]  # (clipping, steps); one spawn runs both (starting processes is slow)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    init_distributed(torch.device("cpu"), init_method=f"file://{init_file}")
    try:
        from safetensors.torch import save_file

        for clip, steps in CASES:
            t = _trainer(steps, clip)
            assert (t.rank, t.world, t.is_main) == (rank, world, rank == 0)
            t.fit()
            result = {f"grad.{n}": p.grad for n, p in t.model.named_parameters()}
            result.update({f"param.{n}": p.detach() for n, p in t.model.named_parameters()})
            result["loss"] = torch.tensor([r["loss"] for r in t.history], dtype=torch.float64)
            result["valid"] = torch.tensor([t.validation[-1]["nll_per_sequence"]], dtype=torch.float64)
            save_file({k: v.contiguous() for k, v in result.items()}, os.path.join(out_dir, f"{clip}{rank}.safetensors"))
        dist.barrier()  # both ranks done before either tears gloo down (a rank leaving early can abort the other)
    finally:
        dist.destroy_process_group()


def test_two_process_gradients_equal_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    from safetensors.torch import load_file

    os.environ.pop("WORLD_SIZE", None)
    for clip, steps in CASES:
        ranks = [load_file(str(tmp_path / f"{clip}{r}.safetensors")) for r in range(2)]
        single = _trainer(steps, clip)
        assert single.world == 1
        single.fit()
        for n, p in single.model.named_parameters():
            for r in ranks:
                torch.testing.assert_close(r[f"grad.{n}"], p.grad, rtol=1e-5, atol=1e-7)
                torch.testing.assert_close(r[f"param.{n}"], p.detach(), rtol=1e-5, atol=1e-7)
        for r in ranks:
            torch.testing.assert_close(r["loss"], torch.tensor([h["loss"] for h in single.history], dtype=torch.float64))
            torch.testing.assert_close(r["valid"].item(), single.validation[-1]["nll_per_sequence"])
        for k in ranks[0]:  # both ranks hold identical weights
            assert torch.equal(ranks[0][k], ranks[1][k]), k


def test_sharded_batch_sampler():
    s0, s1 = ShardedBatchSampler(FixedBatches(), 0, 2), ShardedBatchSampler(FixedBatches(), 1, 2)
    assert list(s0) == [[0, 2, 4], [6, 8, 10]] and list(s1) == [[1, 3, 5], [7, 9, 11]] and len(s0) == 2
    with pytest.raises(Exception, match="cannot be shared by 8 processes"):
        list(ShardedBatchSampler(FixedBatches(), 0, 8))
