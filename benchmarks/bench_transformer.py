"""Cursive transformer speed, side by side with a re-implementation of the reference's computation pattern.

    python benchmarks/bench_transformer.py [--repeats 5] [--json results.json] [--quick] [--threads N]

or ``handwriting bench transformer`` (through :mod:`benchmarks.harness`, which prints the same rows as a
generic table) measures, in one process and interleaved so that a busy machine slows both sides alike:

* one AdamW training step at the paper's shapes — batch 32 × 1,050 tokens, 5 layers, width 64, 4 heads,
  50 characters, vocabulary 526 — for

  - **reference-style**: our own re-implementation of the *computation pattern* of the reference code
    (Greydanus & Wimpee 2025, arXiv:2504.00051, built on minGPT/makemore): one q/k/v projection split
    into heads, explicit ``T × T`` attention scores with a masked softmax, the tanh-GELU written out
    element by element, cross-attention keys/values recomputed in every block (without a padding mask,
    as in the reference), float32, ``torch.optim.AdamW(betas=(0.9, 0.99))``.  It is not the reference's
    code (not installable from PyPI); with the same weights it computes the same function as ours
    (``ReferenceStyleTransformer.from_model``; tested);
  - **ours**: :class:`handwriting.models.transformer.CursiveTransformer` in float32 and under bf16
    autocast, with the fused attention kernel and the fused AdamW;

* sampling at batch 1: 1,000 tokens with our KV cache, and 300 tokens three ways — with the cache, by
  recomputing the whole prefix for every token with our model, and with the reference-style model (which
  recomputes the prefix, as the reference's sampler does).

Times are medians of ``repeats`` runs; on a shared machine compare the ratios, not the absolute times.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `benchmarks.*` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from handwriting._alloc import allocator_setting, keep_freed_memory
from handwriting.models.tokenizer import BOS, END
from handwriting.models.transformer import (
    CursiveTransformer,
    CursiveTransformerConfig,
    TokenBatch,
    decode_threads,
)

__all__ = ["ReferenceStyleTransformer", "run_benchmark", "bench_transformer", "configure", "run", "main", "format_table"]

SHAPES = dict(batch=32, tokens=1050, n_layer=5, d_model=64, n_head=4, text_len=50, vocab_size=526, alphabet_size=71)


# ----------------------------------------------------------------------------------------------------------
# the reference-style model (a re-implementation of the computation pattern, for timing only)


class _RefSelfAttention(nn.Module):
    def __init__(self, d, h, block_size):
        super().__init__()
        self.h = h
        self.c_attn, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.h, C // self.h).transpose(1, 2)
        k = k.view(B, T, self.h, C // self.h).transpose(1, 2)
        v = v.view(B, T, self.h, C // self.h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, T), materialised
        att = att.masked_fill(self.tril[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class _RefCrossAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, x, ctx, ctx_mask=None):
        B, T, C = x.shape
        U = ctx.shape[1]
        q = self.q(x).view(B, T, self.h, C // self.h).transpose(1, 2)
        k, v = self.kv(ctx).split(C, dim=2)  # recomputed in every block, every step
        k = k.view(B, U, self.h, C // self.h).transpose(1, 2)
        v = v.view(B, U, self.h, C // self.h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if ctx_mask is not None:
            att = att.masked_fill(~ctx_mask[:, None, None, :], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class _RefBlock(nn.Module):
    def __init__(self, d, h, block_size):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _RefSelfAttention(d, h, block_size)
        self.cross = _RefCrossAttention(d, h)
        self.fc, self.fc_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    @staticmethod
    def gelu(x):  # the tanh approximation, written out element by element
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def forward(self, x, ctx, ctx_mask):
        x = x + self.attn(self.ln1(x))
        x = x + self.cross(self.ln2(x), ctx, ctx_mask)
        return x + self.fc_out(self.gelu(self.fc(self.ln3(x))))


class ReferenceStyleTransformer(nn.Module):
    """Timing stand-in with the reference's computation pattern (see the module docstring); not for use."""

    def __init__(self, vocab_size, block_size, n_layer, d_model, n_head, text_len, alphabet_size,
                 mask_text: bool = False):
        super().__init__()
        self.block_size = block_size
        self.mask_text = mask_text  # the reference attends to padded characters too; True masks them like ours
        self.wte, self.wpe = nn.Embedding(vocab_size, d_model), nn.Embedding(block_size, d_model)
        self.cte, self.cpe = nn.Embedding(alphabet_size, d_model), nn.Embedding(text_len, d_model)
        self.blocks = nn.ModuleList(_RefBlock(d_model, n_head, block_size) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, idx, text, targets=None):
        B, T = idx.shape
        pos = torch.arange(T, dtype=torch.long, device=idx.device).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        ctx_mask = (text != 0) if self.mask_text else None
        ctx = self.cte(text) + self.cpe(torch.arange(text.shape[1], device=text.device).unsqueeze(0))
        for blk in self.blocks:
            x = blk(x, ctx, ctx_mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: CursiveTransformer) -> "ReferenceStyleTransformer":
        """The same function as ``model`` (weights copied): lets a test prove that both sides of the
        benchmark compute the same thing."""
        c = model.config
        ref = cls(c.vocab_size, c.block_size, c.n_layer, c.d_model, c.n_head, c.text_len, c.alphabet_size,
                  mask_text=True)
        ref.wte.weight.copy_(model.tok_emb.weight)
        ref.wpe.weight.copy_(model.pos_emb.weight)
        ref.cte.weight.copy_(model.text.char_emb.weight)
        ref.cpe.weight.copy_(model.text.pos_emb.weight)
        for rb, ob in zip(ref.blocks, model.blocks):
            for name in ("ln1", "ln2", "ln3", "fc", "fc_out"):
                getattr(rb, name).load_state_dict(getattr(ob, name).state_dict())
            rb.attn.c_attn.load_state_dict(ob.attn.qkv.state_dict())
            rb.attn.proj.load_state_dict(ob.attn.proj.state_dict())
            rb.cross.q.load_state_dict(ob.cross.q.state_dict())
            rb.cross.kv.load_state_dict(ob.cross.kv.state_dict())
            rb.cross.proj.load_state_dict(ob.cross.proj.state_dict())
        ref.ln_f.load_state_dict(model.ln_f.state_dict())
        ref.lm_head.weight.copy_(model.head.weight)
        return ref

    @torch.no_grad()
    def generate(self, idx, text, max_new_tokens):  # recomputes the whole prefix for every token
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size :], text)
            probs = F.softmax(logits[:, -1, :], dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


# ----------------------------------------------------------------------------------------------------------
# measurements


def _median_times(fns: dict, repeats: int, warmup: int = 1, sync=None) -> dict:
    """Run every function ``warmup`` times, then ``repeats`` rounds interleaved; median seconds per name."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            if sync:
                sync()
            t = time.perf_counter()
            f()
            if sync:
                sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def run_benchmark(repeats: int = 5, json_path=None, train: bool = True, sample: bool = True, quick: bool = False,
                  threads: int | None = None, verbose: bool = True, device: str = "cpu", reference: bool = True,
                  warmup: int = 1) -> dict:
    """Measure; return ``{"rows": [...], "table": [...], "notes": [...], "env": {...}}``; print the table when
    ``verbose``; write JSON to ``json_path`` if given.  ``quick=True`` shrinks the shapes (batch 4 × 256
    tokens, shorter samples) for smoke tests; ``reference=False`` skips the reference-style model."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    s = dict(SHAPES)
    if quick:
        s.update(batch=4, tokens=256)
    torch.manual_seed(0)
    B, T = s["batch"], s["tokens"]
    cfg = CursiveTransformerConfig(vocab_size=s["vocab_size"], block_size=max(T, 1050), n_layer=s["n_layer"],
                                   d_model=s["d_model"], n_head=s["n_head"], text_len=s["text_len"],
                                   alphabet_size=s["alphabet_size"])
    ours = CursiveTransformer(cfg).to(dev)
    ref = None
    if reference:
        ref = ReferenceStyleTransformer.from_model(ours).to(dev)
        ref.mask_text = False  # as the reference: the benchmark's texts have no padding anyway
    rows, notes = [], []
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "cpu": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "allocator": allocator_setting(),
        "shapes": s,
        "repeats": repeats,
    }
    amp_dtype = torch.bfloat16
    if train:
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(4, s["vocab_size"], (B, T + 1), generator=g).to(dev)
        text = torch.randint(1, s["alphabet_size"], (B, s["text_len"]), generator=g).to(dev)
        batch = TokenBatch(tokens, torch.ones(B, T + 1, dtype=torch.bool, device=dev), text,
                           torch.ones(B, s["text_len"], dtype=torch.bool, device=dev))
        opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2, weight_decay=1e-4, betas=(0.9, 0.99), fused=True)
        inp, tgt = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

        def step_ours(amp):
            def f():
                cm = torch.autocast(dev.type, dtype=amp_dtype) if amp else contextlib.nullcontext()
                with cm:
                    out = ours.training_step(batch)
                opt_ours.zero_grad(set_to_none=True)
                out["loss"].backward()
                opt_ours.step()
            return f

        fns = {"fp32": step_ours(False), "bf16": step_ours(True)}
        if ref is not None:
            opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=1e-4, betas=(0.9, 0.99))

            def step_ref():
                _, loss = ref(inp, text, tgt)
                opt_ref.zero_grad(set_to_none=True)
                loss.backward()
                opt_ref.step()

            fns = {"ref": step_ref, **fns}
        t = _median_times(fns, repeats, warmup, sync)
        base = t.get("ref")
        what = f"train step, batch {B} x {T} tokens, {s['n_layer']} layers"
        if base is not None:
            rows.append({"what": what, "model": "reference-style (fp32, explicit attention)", "seconds": base,
                         "speedup": 1.0})
        rows.append({"what": what, "model": "ours fp32 (fused attention)", "seconds": t["fp32"],
                     "speedup": base / t["fp32"] if base else None})
        rows.append({"what": what, "model": "ours bf16 autocast", "seconds": t["bf16"],
                     "speedup": base / t["bf16"] if base else None})
        rows[-1]["tokens_per_s"] = B * T / t["bf16"]
    if sample:
        ours.eval()
        if ref is not None:
            ref.eval()
        text1 = torch.randint(1, s["alphabet_size"], (1, 20), generator=torch.Generator().manual_seed(1)).to(dev)
        gen = torch.Generator(device=dev).manual_seed(0)
        n_long = 1000 if not quick else 200
        n_short = 300 if not quick else 50

        def cached(n):
            return lambda: ours.generate(text1, max_new_tokens=n, generator=gen, min_new_tokens=n)

        @torch.inference_mode()
        def recompute_ours():
            with decode_threads(dev):
                idx = torch.full((1, 1), BOS, dtype=torch.long, device=dev)
                for _ in range(n_short):
                    logits = ours(idx, text1)[:, -1]
                    logits[:, END] = float("-inf")
                    idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1, generator=gen)], 1)

        fns = {"long": cached(n_long), "short": cached(n_short), "recompute": recompute_ours}
        if ref is not None:
            def recompute_ref():
                with decode_threads(dev):  # every sampling row runs with the same (single) thread on CPUs
                    ref.generate(torch.full((1, 1), BOS, dtype=torch.long, device=dev), text1, n_short)

            fns["ref"] = recompute_ref
        t = _median_times(fns, repeats, warmup, sync)
        rows.append({"what": f"sample {n_long} tokens, batch 1", "model": "ours, KV cache", "seconds": t["long"],
                     "speedup": None, "tokens_per_s": n_long / t["long"]})
        what = f"sample {n_short} tokens, batch 1"
        base = t.get("ref")
        if base is not None:
            rows.append({"what": what, "model": "reference-style, recompute prefix", "seconds": base, "speedup": 1.0})
        rows.append({"what": what, "model": "ours, recompute prefix", "seconds": t["recompute"],
                     "speedup": base / t["recompute"] if base else None})
        rows.append({"what": what, "model": "ours, KV cache", "seconds": t["short"],
                     "speedup": base / t["short"] if base else None,
                     "speedup_vs_recompute": t["recompute"] / t["short"]})
        notes.append(f"KV cache vs recomputing the prefix (ours), {n_short} tokens: "
                     f"{t['recompute'] / t['short']:.1f}x; {n_long} tokens take {t['long']:.2f} s")
    notes.append("reference-style = our re-implementation of the reference's computation pattern (explicit T x T "
                 "attention, fp32, AdamW), not its code; same weights and outputs as ours (tested)")
    notes.append("sampling rows run single-threaded on CPUs (DECODE_THREADS), the training rows with "
                 f"{env['threads']} thread(s); medians of interleaved runs; on a shared machine compare ratios "
                 "within one run")
    table = [{"what": r["what"], "model": r["model"], "seconds": r["seconds"],
              "speed-up": "" if r.get("speedup") is None else f"{r['speedup']:.1f}x"} for r in rows]
    result = {"rows": rows, "table": table, "notes": notes, "env": env}
    if verbose:
        print(format_table(result))
    if json_path:
        from handwriting._io import atomic_write

        with atomic_write(json_path) as f:
            json.dump(result, f, indent=2)
    return result


def format_table(result: dict) -> str:
    rows = result["rows"]
    w = max(len(r["what"]) for r in rows) if rows else 10
    m = max(len(r["model"]) for r in rows) if rows else 10
    e = result["env"]
    out = [f"cursive transformer speed (torch {e['torch']}, {e['threads']} threads, medians of {e['repeats']}, "
           f"allocator: {e.get('allocator', 'default')}; "
           "shared machines are noisy: compare ratios within one run)",
           f"{'what':<{w}}  {'model':<{m}}  {'seconds':>8}  {'speed-up':>8}"]
    for r in rows:
        sp = "" if r.get("speedup") is None else f"{r['speedup']:.1f}x"
        extra = ""
        if "tokens_per_s" in r:
            extra = f"  ({r['tokens_per_s']:.0f} tokens/s)"
        if "speedup_vs_recompute" in r:
            extra = f"  ({r['speedup_vs_recompute']:.1f}x vs our recompute)"
        out.append(f"{r['what']:<{w}}  {r['model']:<{m}}  {r['seconds']:>8.3f}  {sp:>8}{extra}")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------
# command line (``handwriting bench transformer`` calls bench_transformer(args))


def configure(parser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="small shapes (smoke test, seconds)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step comparison")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampling comparison")
    parser.add_argument("--no-peer", action="store_true", help="skip the reference-style model")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc's allocator as it is (default: freed memory kept, for both models)")


def bench_transformer(args) -> dict:
    """Entry point for ``handwriting bench transformer`` (:mod:`benchmarks.harness`): returns the results with
    a ``table`` (rows of column -> value) and ``notes``; prints nothing and writes no file itself."""
    return run_benchmark(
        repeats=getattr(args, "repeats", 5) or 5,
        warmup=getattr(args, "warmup", 1),
        train=not getattr(args, "no_train", False),
        sample=not getattr(args, "no_sampling", False),
        quick=getattr(args, "quick", False),
        threads=getattr(args, "threads", None),
        device=getattr(args, "device", "cpu") or "cpu",
        reference=not getattr(args, "no_peer", False),
        verbose=False,
    )


def run(args) -> int:
    if not getattr(args, "default_allocator", False):
        keep_freed_memory()
    res = bench_transformer(args)
    print(format_table(res))
    for note in res["notes"]:
        print(f"  note: {note}")
    if getattr(args, "json", None):
        from handwriting._io import atomic_write

        with atomic_write(args.json) as f:
            json.dump(res, f, indent=2)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
