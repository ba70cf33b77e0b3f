"""scripts/learning_curve.py: the model a run started from is measured on the run's own validation lines."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from learning_curve import start_nll  # noqa: E402

from handwriting.cli import main  # noqa: E402
from handwriting.generate import resolve_model  # noqa: E402


def test_start_nll_of_a_checkpoint_is_what_its_run_recorded(tmp_path):
    """Rebuilding the run's validation lines from its recorded options gives, for a checkpoint of that run, the
    NLL the run itself measured — so a --start model is scored on the same lines as the run's checkpoints."""
    out = tmp_path / "run"
    argv = ["train", "graves", "--data", "synthetic", "--steps", "2", "--size", "tiny", "--synthetic", "24",
            "--batch-size", "4", "--out", str(out), "--eval-every", "2", "--checkpoint-every", "2",
            "--keep-checkpoints", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    step2 = resolve_model(str(out / "step2"))
    assert start_nll(out, step2) == pytest.approx(step2.meta["metrics"]["nll_per_point"], rel=1e-5)
    other = copy.deepcopy(step2)  # another network of the same architecture: another number
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert start_nll(out, other) != pytest.approx(step2.meta["metrics"]["nll_per_point"], rel=1e-3)


def test_averaged_checkpoints_hold_the_mean_of_their_weights(tmp_path):
    """scripts/average_checkpoints.py: every floating-point tensor is the element-wise mean of the checkpoints',
    and the output records which checkpoints (by weights SHA-256) it averages."""
    from average_checkpoints import main as average_main

    from handwriting import checkpoint as ckpt

    out = tmp_path / "run"
    argv = ["train", "graves", "--data", "synthetic", "--steps", "4", "--size", "tiny", "--synthetic", "24",
            "--batch-size", "4", "--out", str(out), "--eval-every", "2", "--checkpoint-every", "2",
            "--keep-checkpoints", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert average_main([str(out), "--steps", "2", "4", "-o", str(tmp_path / "avg")]) == 0
    a, b = (resolve_model(str(out / f"step{s}")).state_dict() for s in (2, 4))
    avg, meta = ckpt.load_model(tmp_path / "avg")
    for k, v in avg.state_dict().items():
        torch.testing.assert_close(v, (a[k] + b[k]) / 2 if v.is_floating_point() else b[k])
    assert [d["sha256"] for d in meta["training"]["averaged_from"]] == [
        ckpt.read_meta(out / f"step{s}")["weights"]["sha256"] for s in (2, 4)]
    # --models: any checkpoints of one architecture (a soup across runs), each by its path and SHA-256
    soup = [str(out / "step2"), str(tmp_path / "avg")]
    assert average_main(["--models", *soup, "-o", str(tmp_path / "soup")]) == 0
    mixed, meta = ckpt.load_model(tmp_path / "soup")
    for k, v in mixed.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (3 * a[k] + b[k]) / 4)
    assert [(d["model"], d["sha256"]) for d in meta["training"]["averaged_from"]] == [
        (m, ckpt.read_meta(m)["weights"]["sha256"]) for m in soup]
    with pytest.raises(SystemExit):
        average_main([str(out), "-o", str(tmp_path / "x")])  # a run without --steps


def test_start_nll_of_a_fine_tuned_transformer_uses_its_own_tokenizer(tmp_path):
    """A transformer fine-tuned on data that is not bigbank's: its start is scored with its own architecture and
    tokenizer (a tokenizer fitted afresh to the data has another scale), so a checkpoint of the run scores what the
    run recorded."""
    out = tmp_path / "run"
    argv = ["train", "transformer", "--data", "synthetic", "--init", "cursive-transformer-tiny", "--steps", "2",
            "--synthetic", "24", "--batch-size", "4", "--valid-lines", "8", "--out", str(out), "--eval-every", "2",
            "--checkpoint-every", "2", "--keep-checkpoints", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    step2 = resolve_model(str(out / "step2"))
    assert start_nll(out, step2) == pytest.approx(step2.meta["metrics"]["nll_per_point"], rel=1e-5)
