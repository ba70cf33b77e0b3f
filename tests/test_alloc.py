"""keep_freed_memory(): the large tensors freed by one training step are reused by the next, without page faults."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting"
)

# A training step of a small MLP over a big batch (activations of 32 MB, as in the transformer benchmark):
# prints the page faults per step once the first steps have run.
PROBE = """
import resource, sys, torch
from handwriting._alloc import allocator_setting, keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory(), "keep_freed_memory() did not take effect"
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
x = torch.randn(32768, 64)
def step():
    net(x).square().mean().backward()
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4, allocator_setting())
"""


def _faults(mode: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    faults, setting = out.strip().split(" ", 1)
    return float(faults), setting


def test_freed_memory_is_reused_without_page_faults():
    kept, setting = _faults("keep")
    default, default_setting = _faults("default")
    assert setting.startswith("glibc") and default_setting == "default"
    # a step touches ~100 MB of fresh activations (25,000 pages of 4 KiB): kept memory is mostly reused
    assert kept < 6000, kept
    thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read() if sys.platform == "linux" else ""
    if "[always]" not in thp:  # with 4 KiB pages, glibc's default maps the block afresh every time
        assert default > 4 * kept and default > 15000, (default, kept)


TRAINER = """
import sys, torch
from torch import nn
from handwriting._alloc import allocator_setting
from handwriting.train import TrainConfig, Trainer

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def training_step(self, batch):
        loss = (self.w - batch).square().mean()
        return {"loss": loss, "nll_sum": float(loss), "points": 1}

config = TrainConfig(steps=1, progress=False, device="cpu", keep_freed_memory=sys.argv[1] == "1")
Trainer(Model(), [torch.ones(1)], None, config)
print(allocator_setting())
"""


@pytest.mark.parametrize("keep", [True, False])
def test_the_trainer_keeps_freed_memory_on_cpus_unless_told_not_to(keep):
    out = subprocess.run([sys.executable, "-c", TRAINER, str(int(keep))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("glibc, freed memory kept (mallopt)" if keep else "default")
