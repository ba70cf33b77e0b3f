import numpy as np
import pytest
import torch
import torch.nn.functional as F

from handwriting.models.tokenizer import BOS, END, PAD, WORD, PolarTokenizer
from handwriting.models.transformer import (
    CursiveTransformer,
    CursiveTransformerConfig,
    KVCache,
    TokenBatch,
    TokenDataset,
    collate_tokens,
)
from handwriting.strokes import AugmentConfig, Sample


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: exact numbers, no OpenMP spinning


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=40, block_size=48, n_layer=2, d_model=32, n_head=4, text_len=10, alphabet_size=15)
    cfg.update(kw)
    m = CursiveTransformer(CursiveTransformerConfig(**cfg))
    with torch.no_grad():  # move away from the trivial init so that every parameter matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def texts(B=3, U=7, alphabet=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, alphabet, (B, U), generator=g)
    mask = torch.ones(B, U, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    return text * mask, mask


@pytest.mark.parametrize("end_marker", [False, True])
def test_kv_cache_logits_equal_full_recompute_every_step(end_marker):
    m = tiny(end_marker=end_marker)
    text, mask = texts()
    toks = torch.randint(4, 40, (3, 20), generator=torch.Generator().manual_seed(1))
    toks[:, 0] = BOS
    with torch.inference_mode():
        full = m(toks, text, mask)  # (B, T, V), causal: position t sees tokens 0..t
        ctx = m.prepare_context(text, mask)
        plan = m.decode_plan(ctx)
        fast, general = m.new_caches(3, 20), m.new_caches(3, 20)
        m.step(toks[:, :5], ctx, general)  # a multi-token prefill through the general path
        for t in range(20):
            a = m.decode_step(toks[:, t], plan, fast)
            torch.testing.assert_close(a, full[:, t], atol=1e-4, rtol=0)
            if t >= 5:
                b = m.step(toks[:, t : t + 1], ctx, general)[:, -1]
                torch.testing.assert_close(b, full[:, t], atol=1e-4, rtol=0)
            # and against recomputing the whole prefix, as a sampler without a cache would
            torch.testing.assert_close(a, m(toks[:, : t + 1], text, mask)[:, -1], atol=1e-4, rtol=0)


def test_greedy_generation_matches_recompute():
    m = tiny(seed=3)
    text, mask = texts()
    out = m.generate(text, mask, max_new_tokens=20, greedy=True)
    assert out.shape[0] == 3 and out[:, 0].eq(BOS).all()
    with torch.inference_mode():
        idx = torch.full((3, 1), BOS)
        for _ in range(out.shape[1] - 1):
            idx = torch.cat([idx, m(idx, text, mask)[:, -1].argmax(-1, keepdim=True)], 1)
    for r in range(3):  # rows that ended are PAD after END in `out`
        row = out[r]
        e = (row == END).nonzero()
        n = int(e[0]) + 1 if len(e) else len(row)
        assert torch.equal(row[:n], idx[r, :n])
        assert row[n:].eq(PAD).all()


@pytest.mark.parametrize("end_marker", [False, True])
def test_padded_characters_are_masked(end_marker):
    m = tiny(end_marker=end_marker)
    text, mask = texts()
    toks = torch.randint(4, 40, (3, 12))
    with torch.inference_mode():
        ref = m(toks, text, mask)
        other = text.clone()
        other[~mask] = torch.randint(1, 15, (int((~mask).sum()),))  # change only padded characters
        torch.testing.assert_close(m(toks, other, mask), ref, atol=1e-6, rtol=0)
        # the same through the decoding plan
        plan = m.decode_plan(m.prepare_context(other, mask))
        caches = m.new_caches(3, 12)
        for t in range(12):
            torch.testing.assert_close(m.decode_step(toks[:, t], plan, caches), ref[:, t], atol=1e-4, rtol=0)
        changed = text.clone()
        changed[0, 0] = (changed[0, 0] % 14) + 1  # a real character does matter
        assert (m(toks, changed, mask)[0] - ref[0]).abs().max() > 1e-4
        # zeroing the context (the paper's ablation) makes the text irrelevant
        z1 = m(toks, text, mask, zero_context=True)
        z2 = m(toks, torch.randint(1, 15, text.shape), mask, zero_context=True)
        torch.testing.assert_close(z1, z2)


def test_cross_attention_maps():
    m = tiny()
    text, mask = texts()
    toks, attn = m.generate(text, mask, max_new_tokens=10, min_new_tokens=10,
                            generator=torch.Generator().manual_seed(0), return_attention=True)
    assert toks.shape == (3, 11)
    assert attn.shape == (3, 2, 4, 10, 7)  # batch, layers, heads, input positions, characters
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 2, 4, 10))
    assert attn[1, ..., 4:].abs().max() == 0 and attn[2, ..., 2:].abs().max() == 0
    # same tokens with and without the maps (the maps come from the general path, the tokens must agree)
    again = m.generate(text, mask, max_new_tokens=10, min_new_tokens=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, toks)


def test_end_marker_follows_each_text():
    """With ``end_marker`` the context is the text plus one learned character after each row's last one."""
    m = tiny(end_marker=True)
    text, mask = texts()  # rows of 7, 4 and 2 characters
    ctx = m.prepare_context(text, mask)
    assert ctx.mask[:, 0, 0].sum(1).tolist() == [8, 5, 3]
    marked, mmask = m.text.mark_end(text, mask)
    assert marked[[0, 1, 2], [7, 4, 2]].eq(m.text.end_id).all() and m.text.end_id == 15
    assert torch.equal(marked[:, :7][mask], text[mask]) and mmask.sum() == mask.sum() + 3
    toks, attn = m.generate(text, mask, max_new_tokens=6, min_new_tokens=6, generator=torch.Generator().manual_seed(0),
                            return_attention=True)
    assert attn.shape == (3, 2, 4, 6, 8)  # one more column: the marker
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 2, 4, 6))
    assert attn[1, ..., 5:].abs().max() == 0 and attn[2, ..., 3:].abs().max() == 0 and attn[2, ..., 2].min() > 0
    # the marker is attended to: its embedding changes the output
    seq = torch.randint(4, 40, (3, 9), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = m(seq, text, mask)
        m.text.char_emb.weight[m.text.end_id] += 1.0
        assert (m(seq, text, mask) - ref).abs().amax(dim=(1, 2)).min() > 1e-4
    # a text as long as text_len still fits (the marker has a position of its own)
    assert m(seq[:1], torch.randint(1, 15, (1, 10))).shape == (1, 9, 40)
    with pytest.raises(ValueError, match="text_len"):
        m(seq[:1], torch.randint(1, 15, (1, 11)))
    # configurations saved before the marker existed load without it
    old = {k: v for k, v in m.config.to_dict().items() if k != "end_marker"}
    assert CursiveTransformerConfig.from_dict(old).end_marker is False


def test_a_model_without_the_marker_is_completed_with_one_for_fine_tuning():
    plain, marked = tiny(seed=0), tiny(seed=1, end_marker=True)
    fresh = marked.text.char_emb.weight[-1].clone()
    marked.load_state_dict(marked.with_end_marker_rows(plain.state_dict()))
    for name, w in plain.state_dict().items():
        n = w.shape[0] if name.startswith("text.") else None
        torch.testing.assert_close(marked.state_dict()[name][:n], w, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(marked.text.char_emb.weight[-1], fresh)  # the marker's own (fresh) embedding
    torch.testing.assert_close(marked.text.pos_emb.weight[-1], plain.text.pos_emb.weight[-1])
    assert marked.with_end_marker_rows(marked.state_dict()).keys() == marked.state_dict().keys()
    sd = plain.state_dict()
    assert plain.with_end_marker_rows(sd) is sd  # a model without the marker takes the state as it is
    text, mask = texts()
    seq = torch.randint(4, 40, (3, 9), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():  # same weights, but the marker now takes part in cross-attention
        assert (marked(seq, text, mask) - plain(seq, text, mask)).abs().max() > 1e-4


def test_generation_controls():
    m = tiny(seed=5)
    text, mask = texts()
    g = torch.Generator().manual_seed(0)
    a = m.generate(text, mask, max_new_tokens=15, min_new_tokens=15, top_k=3, temperature=0.7, generator=g)
    assert a.shape == (3, 16) and not (a[:, 1:] == END).any()
    b = m.generate(text, mask, max_new_tokens=15, min_new_tokens=15, top_k=3, temperature=0.7,
                   generator=torch.Generator().manual_seed(0))
    c = m.generate(text, mask, max_new_tokens=15, min_new_tokens=15, top_k=3, temperature=0.7,
                   generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, c)
    # top_k=1 is greedy
    assert torch.equal(m.generate(text, mask, max_new_tokens=8, top_k=1, generator=g),
                       m.generate(text, mask, max_new_tokens=8, greedy=True))
    # the length guard: block_size bounds everything
    full = m.generate(text, mask, min_new_tokens=10_000, generator=g)
    assert full.shape[1] == m.config.block_size + 1
    # priming continues a given prefix (BOS added)
    p = m.generate(text, mask, max_new_tokens=5, prefix_tokens=torch.tensor([7, 8, 9]), greedy=True)
    assert p[:, :4].tolist() == [[BOS, 7, 8, 9]] * 3
    with pytest.raises(ValueError):
        m.generate(text, mask, temperature=0)
    with pytest.raises(ValueError):
        m.generate(torch.ones(1, 11, dtype=torch.long))  # longer than text_len


def test_sampling_runs_without_dropout_and_keeps_the_training_flag():
    m = tiny(seed=5, dropout=0.5)
    text, mask = texts()
    want = m.generate(text, mask, max_new_tokens=12, generator=torch.Generator().manual_seed(3))
    m.train()
    got = m.generate(text, mask, max_new_tokens=12, generator=torch.Generator().manual_seed(3))
    assert m.training and torch.equal(got, want)  # sampled in eval mode, the flag given back
    m.eval()
    m.generate(text, mask, max_new_tokens=4, greedy=True)
    assert not m.training


def test_end_stops_each_row():
    m = tiny(seed=2)
    text, mask = texts()
    out = m.generate(text, mask, max_new_tokens=40, temperature=5.0, generator=torch.Generator().manual_seed(0))
    ended = 0
    for row in out:
        e = (row == END).nonzero()
        if len(e):
            ended += 1
            assert row[int(e[0]) + 1 :].eq(PAD).all() and row[1 : int(e[0])].ne(PAD).all()
    assert ended >= 1 and out.shape[1] <= 41


def test_attention_says_end_on_constructed_attention():
    """Rows end where the heads of every block but the first put more than the share on the end marker."""
    from handwriting.models.transformer import attention_says_end

    B, H, U = 3, 2, 4
    first = torch.zeros(B, H, U)
    first[..., 3] = 1.0  # the first block looks at column 3 in every row: ignored
    later = torch.full((B, H, U), 0.1)
    later[0, :, 3] = 0.7  # row 0: 0.7 on column 3, its marker
    later[1, 0, 1], later[1, 1, 1] = 0.9, 0.5  # row 1: 0.7 on average on column 1, its marker
    later[2, :, 1] = 0.7  # row 2: 0.7 on column 1, but its marker is column 2
    end_pos = torch.tensor([3, 1, 2])
    assert attention_says_end([first, later], end_pos, 0.6).tolist() == [True, True, False]
    assert attention_says_end([first, later], end_pos, 0.75).tolist() == [False, False, False]
    # the average over the later blocks decides: one block at 0.1 pulls row 0 down to 0.4
    assert attention_says_end([first, later, torch.full((B, H, U), 0.1)], end_pos, 0.6).tolist() == [False] * 3
    assert attention_says_end([later], end_pos, 0.6).tolist() == [True, True, False]  # one block: itself


def _polar_tiny(seed, end_marker=True):
    tok = PolarTokenizer()
    m = tiny(seed=seed, vocab_size=tok.vocab_size, block_size=64, end_marker=end_marker)
    m.config.tokenizer = tok.to_dict()
    return m, tok


@pytest.mark.parametrize("return_attention", [False, True])
def test_end_attention_ends_rows_at_their_first_pen_lift_once_the_marker_is_watched(return_attention):
    """share −1 (always past the end): each row ends right after the first pen-lifting point it draws itself,
    with the same tokens before it as without the rule (same noise); share 2 (never): no change at all.  The
    fast path and the path that returns the attention maps agree."""
    m, tok = _polar_tiny(seed=4)
    text, mask = texts()
    kw = dict(max_new_tokens=60, min_new_tokens=0, temperature=1.0, return_attention=return_attention)

    def gen(**extra):
        out = m.generate(text, mask, generator=torch.Generator().manual_seed(3), **kw, **extra)
        return out[0] if return_attention else out

    plain, never, always = gen(), gen(end_attention=2.0), gen(end_attention=-1.0)
    assert torch.equal(plain, never)
    pen_up = tok.r_offset + tok.n_r
    checked = 0
    for p, a in zip(plain, always):
        row = p.tolist()
        drawn = row[1 : row.index(END)] if END in row else row[1:]  # after BOS, up to the model's own END
        stop = next((i + 1 for i, t in enumerate(drawn) if t >= pen_up), None)
        if stop is None or stop + 1 >= len(a):
            continue
        checked += 1
        assert torch.equal(a[: stop + 1], p[: stop + 1]) and a[stop + 1] == END
        assert a[stop + 2 :].eq(PAD).all()
    assert checked >= 1
    # min_new_tokens still forbids END
    early = m.generate(text, mask, generator=torch.Generator().manual_seed(3), max_new_tokens=20, min_new_tokens=20,
                       end_attention=-1.0)
    assert not (early[:, 1:] == END).any()
    # a model without the marker has nothing to watch: the rule changes nothing
    unmarked, _ = _polar_tiny(seed=4, end_marker=False)
    a = unmarked.generate(text, mask, generator=torch.Generator().manual_seed(3), max_new_tokens=40)
    b = unmarked.generate(text, mask, generator=torch.Generator().manual_seed(3), max_new_tokens=40, end_attention=-1.0)
    assert torch.equal(a, b)


def test_writing_watches_the_end_marker():
    """write_rows draws exactly what generate(min_p=..., end_attention=END_ATTENTION) draws."""
    from handwriting.models.transformer import END_ATTENTION, bias_min_p

    m, tok = _polar_tiny(seed=6)
    text, mask = texts()
    rows = m.write_rows(text, mask, [1.0] * 3, torch.Generator().manual_seed(2), max_steps=50)
    toks = m.generate(text, mask, max_new_tokens=50, min_p=bias_min_p(1.0), end_attention=END_ATTENTION,
                      generator=torch.Generator().manual_seed(2))
    for got, t in zip(rows.offsets, toks):
        want = tok.decode(t)
        if len(want):
            assert len(got) == len(want) and np.allclose(got[:, :2], want[:, :2])
    assert rows.stopped == [bool((t == END).any()) for t in toks]


def test_text_dropout_hides_the_text_of_the_rows_it_draws_and_only_while_training():
    """A row whose text is hidden learns as if it had no text (its loss is that of the zero-context forward), the
    others as before; the rows are drawn from the global generator (a resumed run draws the same); eval mode and
    ``text_dropout=0`` hide nothing."""
    m = tiny(seed=1, text_dropout=0.5).train()
    text, mask = texts()
    toks = torch.randint(4, 40, (3, 20), generator=torch.Generator().manual_seed(2))
    toks[:, 0] = BOS
    batch = TokenBatch(toks, torch.ones_like(toks, dtype=torch.bool), text, mask, ["?"] * 3)
    torch.manual_seed(11)
    hide = torch.rand(3) < 0.5
    assert 0 < int(hide.sum()) < 3  # this seed hides some rows, not all
    torch.manual_seed(11)
    got = m.training_step(batch)["nll_sum"]
    with torch.no_grad():
        seen = F.cross_entropy(m(toks[:, :-1], text, mask).transpose(1, 2), toks[:, 1:], reduction="none").sum(1)
        blind = F.cross_entropy(m(toks[:, :-1], text, mask, zero_context=True).transpose(1, 2), toks[:, 1:],
                                reduction="none").sum(1)
    assert not torch.allclose(seen, blind)
    assert got == pytest.approx(float(torch.where(hide, blind, seen).sum()), rel=1e-5)
    m.eval()
    with torch.no_grad():
        assert m.training_step(batch)["nll_sum"] == pytest.approx(float(seen.sum()), rel=1e-5)
    # the embedding hides exactly the rows asked for
    rows = torch.tensor([False, True, False])
    ctx = m.text(text, rows)
    assert ctx[1].abs().sum() == 0 and torch.equal(ctx[[0, 2]], m.text(text)[[0, 2]])


@pytest.mark.parametrize("return_attention", [False, True])
def test_guided_sampling_takes_the_argmax_of_the_guided_logits(return_attention):
    """Greedy decoding with classifier-free guidance picks, at every step, the argmax of c + g (c - u) computed
    directly from two full forward passes (with the text, and with it hidden); guidance 0 is plain sampling."""
    m = tiny(seed=3, text_dropout=0.1)
    with torch.no_grad():  # a text that matters: the random tiny model hardly listens to it otherwise
        m.text.char_emb.weight.mul_(30)
    text, mask = texts()
    g = 1.5
    out = m.generate(text, mask, max_new_tokens=15, greedy=True, guidance=g, return_attention=return_attention)
    out = out[0] if return_attention else out
    with torch.no_grad():
        c = m(out[:, :-1], text, mask)
        u = m(out[:, :-1], text, mask, zero_context=True)
        guided = c + g * (c - u)
        guided[..., [PAD, BOS]] = float("-inf")
    for r in range(3):
        row = out[r].tolist()
        n = row.index(END) + 1 if END in row else len(row)
        assert torch.equal(guided[r, : n - 1].argmax(-1), out[r, 1:n])
    noise = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    plain = m.generate(text, mask, max_new_tokens=15, generator=noise())
    assert not torch.equal(m.generate(text, mask, max_new_tokens=15, generator=noise(), guidance=g), plain)
    assert torch.equal(m.generate(text, mask, max_new_tokens=15, generator=noise(), guidance=0.0), plain)
    with pytest.raises(ValueError, match="text_dropout"):
        tiny(seed=3).generate(text, mask, max_new_tokens=5, guidance=1.0)  # it never learnt the hidden-text branch


def test_training_step_contract_and_padding():
    m = tiny().train()
    text, mask = texts()
    toks = torch.randint(4, 40, (3, 20))
    toks[:, 0] = BOS
    tmask = torch.ones(3, 20, dtype=torch.bool)
    tmask[1, 12:] = False
    toks[1, 12:] = PAD
    out = m.training_step(TokenBatch(toks, tmask, text, mask))
    assert set(out) >= {"loss", "nll_sum", "points", "sequences"}
    assert out["points"] == 19 + 11 + 19 and out["sequences"] == 3
    assert out["loss"].item() == pytest.approx(out["nll_sum"] / out["points"], rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    # extra padding columns change nothing
    pad = TokenBatch(torch.cat([toks, torch.full((3, 5), PAD)], 1), torch.cat([tmask, torch.zeros(3, 5, dtype=torch.bool)], 1),
                     text, mask)
    assert m.training_step(pad)["nll_sum"] == pytest.approx(out["nll_sum"], rel=1e-5)


def test_config_round_trip():
    cfg = CursiveTransformerConfig(n_layer=3, tokenizer=PolarTokenizer().to_dict())
    back = CursiveTransformerConfig.from_dict(cfg.to_dict())
    assert back == cfg
    m = CursiveTransformer(CursiveTransformerConfig(n_layer=1, d_model=16, n_head=2, tokenizer=PolarTokenizer().to_dict()))
    assert isinstance(m.tokenizer, PolarTokenizer)
    with pytest.raises(ValueError):
        CursiveTransformerConfig.from_dict({"n_layers": 3})
    c = KVCache(1, 2, 3, 4)
    c.append(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(RuntimeError):
        c.append(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))


class _Alpha:  # the Alphabet interface: ids 1.., 0 = padding
    def __init__(self, chars):
        self.chars = chars

    def encode(self, text):
        return [self.chars.index(c) + 1 for c in text]

    def __len__(self):
        return len(self.chars) + 1


def word(n, seed, text):
    rng = np.random.default_rng(seed)
    off = rng.normal(0, 0.02, (n, 3)).astype(np.float32)
    off[:, 2] = 0
    off[n // 2, 2] = off[-1, 2] = 1
    return Sample(off, text)


def test_token_dataset_and_collate():
    words = [word(40, i, t) for i, t in enumerate(["ab", "ba", "abc", "c"])]
    tok = PolarTokenizer()
    al = _Alpha("abc ")
    ds = TokenDataset(words, tok, al, block_size=200, text_len=12)
    it = ds[2]
    assert it["tokens"][0] == BOS and it["tokens"][-1] == END and len(it["tokens"]) == 2 * 40 + 2
    assert it["text"] == "abc" and list(it["text_ids"]) == [1, 2, 3]
    off = tok.decode(it["tokens"])
    assert np.allclose(off[0, :2], 0, atol=1e-6)  # zero_start
    lines = TokenDataset(words, tok, al, block_size=400, text_len=12, words_per_line=3, downsample=(0.5, 0.1),
                         augment=AugmentConfig(), seed=1)
    it = lines[0]
    assert it["text"].count(" ") == 2 and it["text"].startswith("ab ")
    assert (it["tokens"] == WORD).sum() == 4
    again = lines[0]
    assert np.array_equal(again["tokens"], it["tokens"])  # reproducible per (seed, epoch, index)
    lines.set_epoch(1)
    it = lines[0]
    assert not np.array_equal(it["tokens"], again["tokens"])
    batch = collate_tokens([ds[0], ds[3], it])
    assert batch.tokens.shape[0] == 3 and batch.token_mask.sum(1).tolist() == [82, 82, len(it["tokens"])]
    assert batch.text_mask.sum(1).tolist() == [2, 1, len(it["text"])]
    assert batch.tokens[~batch.token_mask].eq(PAD).all()
    short = TokenDataset(words, tok, al, block_size=30, text_len=12)
    assert len(short[0]["tokens"]) == 31  # cut to block_size + 1
    from handwriting.errors import DataError

    with pytest.raises(DataError, match="text_len"):
        TokenDataset(words, tok, al, text_len=2)


def test_token_dataset_with_a_pen_augments_and_rerecords_each_word_before_downsampling():
    """With ``pen`` each word is augmented, then re-recorded (the recorder's lattice), then downsampled, and the
    stitched line is not augmented again: the tokens are exactly those of that pipeline."""
    from handwriting.datasets.jsonink import bigbank_pen
    from handwriting.strokes import augment, downsample

    words = [word(60, i, t) for i, t in enumerate(["ab", "ba", "abc"])]
    tok, al, aug = PolarTokenizer(), _Alpha("abc "), AugmentConfig()
    seen = []

    def pen(off):
        seen.append(off)
        return bigbank_pen(off)

    ds = TokenDataset(words, tok, al, block_size=400, text_len=12, downsample=(0.5, 0.1), augment=aug, pen=pen, seed=3)
    it = ds[1]
    rng = np.random.default_rng([3, 0, 1])
    expect = augment(words[1].offsets, rng, aug)
    assert len(seen) == 1 and np.allclose(seen[0], expect)
    frac = float(np.clip(0.5 + 0.1 * (rng.random() - 0.5), 0.0, 0.95))
    off = downsample(bigbank_pen(expect), frac, rng)
    off[0, :2] = 0.0
    assert np.array_equal(it["tokens"], tok.encode(off))
    lines = TokenDataset(words, tok, al, block_size=400, text_len=12, words_per_line=2, augment=aug, pen=pen, seed=3)
    seen.clear()
    assert lines[0]["text"].count(" ") == 1 and len(seen) == 2  # once per word of the line


@pytest.mark.parametrize("end_marker", [False, True])
def test_overfit_one_bigbank_word(bigbank_path, end_marker):
    """A tiny model memorises one real word in a few seconds; greedy decoding then writes it back."""
    from handwriting.datasets.jsonink import load_bigbank
    from handwriting.datasets.torch_data import Alphabet

    w = load_bigbank(bigbank_path, limit=1)[0]
    alphabet = Alphabet.from_texts([w.text])
    tok = PolarTokenizer()
    batch = collate_tokens([TokenDataset([w], tok, alphabet, block_size=300, downsample=0.75)[0]])
    assert batch.tokens.shape[1] > 100
    torch.manual_seed(0)
    m = CursiveTransformer(CursiveTransformerConfig(vocab_size=tok.vocab_size, block_size=300, n_layer=2, d_model=32,
                                                    n_head=2, text_len=8, alphabet_size=len(alphabet),
                                                    end_marker=end_marker))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.0)
    for step in range(150):
        out = m.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if out["loss"].item() < 0.02:
            break
    assert out["loss"].item() < 0.05
    gen = m.generate(batch.text, batch.text_mask, greedy=True)[0]
    ref = batch.tokens[0]
    n = min(len(gen), len(ref))
    assert (gen[:n] == ref[:n]).float().mean() > 0.95
    a, b = tok.decode(gen), tok.decode(ref)
    assert abs(len(a) - len(b)) <= 2


def test_benchmark_reference_style_model_computes_the_same_function(monkeypatch):
    """The benchmark's reference-style model (explicit attention matrices) and ours agree given the same
    weights, so the speed comparison is between two ways of computing one function."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not in the package
    from benchmarks.bench_transformer import ReferenceStyleTransformer, format_table

    m = tiny()
    text, mask = texts()
    toks = torch.randint(4, 40, (3, 25))
    ref = ReferenceStyleTransformer.from_model(m).eval()
    with torch.inference_mode():
        logits, loss = ref(toks[:, :-1].contiguous(), text, toks[:, 1:].contiguous())
        torch.testing.assert_close(logits, m(toks[:, :-1], text, mask), atol=1e-4, rtol=0)
        ref.mask_text = False  # the reference's behaviour: padded characters are attended to
        full = torch.randint(1, 15, (3, 7))
        torch.testing.assert_close(ref(toks, full)[0], m(toks, full, torch.ones_like(full, dtype=torch.bool)),
                                   atol=1e-4, rtol=0)
    out = m.training_step(TokenBatch(toks, torch.ones_like(toks, dtype=torch.bool), text, mask))
    assert out["loss"].item() == pytest.approx(loss.item(), rel=1e-4)
    fake = {"rows": [{"what": "x", "model": "y", "seconds": 1.0, "speedup": 2.0}],
            "env": {"torch": "t", "threads": 1, "repeats": 1}}
    assert "2.0x" in format_table(fake)


def test_fused_head_and_cross_entropy_equal_the_plain_expression():
    from handwriting.models.transformer import LinearCrossEntropy

    g = torch.Generator().manual_seed(3)
    h = torch.randn(1000, 16, generator=g, requires_grad=True)
    w = (0.3 * torch.randn(37, 16, generator=g)).requires_grad_()
    tgt = torch.randint(0, 37, (1000,), generator=g)
    plain = F.cross_entropy(h @ w.t(), tgt, reduction="sum")
    dh, dw = torch.autograd.grad(3.0 * plain, (h, w))
    fused = LinearCrossEntropy.apply(h, w, tgt, 128)  # several chunks, the last one partial
    fh, fw = torch.autograd.grad(3.0 * fused, (h, w))
    assert torch.allclose(fused, plain, rtol=1e-5)
    assert torch.allclose(fh, dh, atol=1e-5) and torch.allclose(fw, dw, atol=1e-4)
    with torch.no_grad():  # evaluation: the value alone
        assert torch.allclose(LinearCrossEntropy.apply(h, w, tgt, 128), plain, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the loss stays float32 under autocast
        v = LinearCrossEntropy.apply(h, w, tgt, 128)
    assert v.dtype == torch.float32 and torch.allclose(v, plain, rtol=1e-5)


def test_training_step_loss_and_gradients_match_logits_and_cross_entropy():
    torch.manual_seed(0)
    cfg = CursiveTransformerConfig(vocab_size=40, block_size=32, n_layer=2, d_model=16, n_head=2, text_len=6,
                                   alphabet_size=9)
    model = CursiveTransformer(cfg)
    tokens = torch.randint(4, 40, (3, 20))
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 12:] = False  # a shorter row: its padding has no target
    text = torch.randint(1, 9, (3, 6))
    batch = TokenBatch(tokens, mask, text, torch.ones(3, 6, dtype=torch.bool))
    out = model.training_step(batch)
    grads = torch.autograd.grad(out["loss"], list(model.parameters()))
    logits = model(tokens[:, :-1], text)
    m = mask[:, 1:]
    ref = F.cross_entropy(logits[m], tokens[:, 1:][m], reduction="mean")
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    assert out["points"] == int(m.sum()) and abs(out["loss"].item() - ref.item()) < 1e-5
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_sampling_draws_tokens_with_softmax_probabilities():
    from handwriting.models.transformer import GumbelNoise

    logits = torch.tensor([[2.0, 0.5, -1.0, 1.0, 0.0]]).expand(20000, 5)
    noise = GumbelNoise(20000, 5, 3, torch.Generator().manual_seed(0), "cpu")
    for i in range(3):
        freq = torch.bincount(CursiveTransformer.pick(logits, None, noise, i), minlength=5).float() / 20000
        assert torch.allclose(freq, logits[0].softmax(0), atol=0.012), (i, freq)
    top2 = torch.bincount(CursiveTransformer.pick(logits, 2, noise, 2), minlength=5).float() / 20000
    assert top2[[1, 2, 4]].sum() == 0 and abs(top2[0] - 1 / (1 + torch.e ** -1.0)) < 0.012  # top-k renormalises
    # min-p 0.3 keeps p >= 0.3 p_max: e^2 vs e^1 (0.37) and e^0.5 (0.22): tokens 0 and 3, renormalised
    kept = torch.bincount(CursiveTransformer.pick(logits, None, noise, 1, 0.3), minlength=5).float() / 20000
    assert kept[[1, 2, 4]].sum() == 0 and abs(kept[0] - 1 / (1 + torch.e ** -1.0)) < 0.012


def test_the_bias_is_min_p_truncation_at_temperature_one():
    """write_rows turns the bias into min-p (bias_min_p), not a temperature: at bias 0 it samples the model as it
    is; at bias b it draws exactly what generate(min_p=bias_min_p(b)) draws."""
    from handwriting.models.transformer import MIN_P_CAP, bias_min_p

    assert bias_min_p(0) == 0 and bias_min_p(1) == pytest.approx(0.1)
    ps = [bias_min_p(b) for b in (0, 0.5, 1, 2, 5, 1e6)]
    assert ps == sorted(ps) and ps[-1] < MIN_P_CAP
    m = tiny(seed=3, vocab_size=PolarTokenizer().vocab_size)
    m.config.tokenizer = PolarTokenizer().to_dict()
    text, mask = texts()
    for b in (0.0, 2.0):
        rows = m.write_rows(text, mask, [b] * 3, torch.Generator().manual_seed(1), max_steps=30)
        toks = m.generate(text, mask, max_new_tokens=30, min_p=bias_min_p(b), generator=torch.Generator().manual_seed(1))
        ref = [m.tokenizer.decode(t) for t in toks]
        for got, want in zip(rows.offsets, ref):
            if len(want):
                assert np.allclose(got[:, :2], want[:, :2]) and len(got) == len(want)
    with pytest.raises(ValueError, match="min_p"):
        m.generate(text, mask, min_p=1.0)


def test_token_batches_pad_with_the_tokenizers_padding_id():
    from handwriting.datasets.tokens import PAD as DATA_PAD
    from handwriting.models.tokenizer import PAD

    assert DATA_PAD == PAD  # datasets/ may not import models/, so the id is written twice: keep them equal
