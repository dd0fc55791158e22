"""MaskGIT sampler properties, checked with fake logits functions (no model needed, except end to end)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tokgen.sampling import maskgit_sample, text_logits_fn
from tokgen.transformer.masking import num_masked_after_step

V = 10  # codebook size; [MASK] = V
SHAPE = (3, 2, 3, 4)  # (B, t, h, w): 24 tokens per sample


class TableLogits:
    """A fixed random logits table per position; records every call (its codes and flags)."""

    def __init__(self, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.randn(*shape[1:], V, generator=gen) * 2  # (t, h, w, v)
        self.calls: list[tuple[Tensor, bool]] = []

    def __call__(self, codes: Tensor, *, guided: bool) -> Tensor:
        self.calls.append((codes.clone(), guided))
        return self.table.expand(codes.shape[0], *self.table.shape).clone()


def sample(fn, **kwargs) -> Tensor:
    kwargs.setdefault("shape", SHAPE)
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return maskgit_sample(fn, mask_id=V, **kwargs)


def known_inputs(seed: int = 1) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    known = torch.randint(0, V, SHAPE, generator=gen)
    known_mask = torch.rand(SHAPE, generator=gen) < torch.tensor([0.0, 0.3, 0.7]).view(3, 1, 1, 1)
    known_mask[:, 0] = True  # e.g. a carried-over first latent frame
    return known, known_mask


def test_output_is_complete_and_in_range() -> None:
    codes = sample(TableLogits(), steps=8)
    assert codes.shape == SHAPE and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < V  # never [MASK]


def test_known_tokens_never_change() -> None:
    known, known_mask = known_inputs()
    fn = TableLogits()
    codes = sample(fn, known=known, known_mask=known_mask, steps=6)
    assert torch.equal(codes[known_mask], known[known_mask])
    for seen, _ in fn.calls:
        assert torch.equal(seen[known_mask], known[known_mask])


@pytest.mark.parametrize(("schedule", "steps"), [("cosine", 12), ("linear", 5), ("sqrt", 7), ("cosine", 30)])
def test_schedule_is_followed_exactly(schedule: str, steps: int) -> None:
    known, known_mask = known_inputs()
    fn = TableLogits()
    codes = sample(fn, known=known, known_mask=known_mask, steps=steps, schedule=schedule)
    total = (~known_mask).flatten(1).sum(-1)  # per sample: 12, ~8, ~3 unknown tokens
    expected = [total] + [num_masked_after_step(s, steps, total, schedule) for s in range(steps - 1)]
    expected = [e for e in expected if e.any()]  # the sampler stops once nothing is masked anywhere
    seen = [c.eq(V).flatten(1).sum(-1) for c, _ in fn.calls]
    assert len(seen) == len(expected) <= steps
    for got, want in zip(seen, expected, strict=True):
        assert got.tolist() == want.tolist()
    assert not codes.eq(V).any()


def test_decided_tokens_are_never_remasked_or_changed() -> None:
    fn = TableLogits()
    sample(fn, steps=10, temperature=2.0)
    for (before, _), (after, _) in zip(fn.calls, fn.calls[1:], strict=False):
        decided = before != V
        assert torch.equal(after[decided], before[decided])


def test_single_step_fills_everything_in_one_pass() -> None:
    fn = TableLogits()
    codes = sample(fn, steps=1)
    assert len(fn.calls) == 1 and fn.calls[0][0].eq(V).all()
    assert not codes.eq(V).any()


def test_same_seed_same_codes_different_seed_different() -> None:
    fn = TableLogits()
    a = sample(fn, generator=torch.Generator().manual_seed(7))
    b = sample(fn, generator=torch.Generator().manual_seed(7))
    c = sample(fn, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_greedy_and_top1_pick_the_argmax() -> None:
    fn = TableLogits()
    argmax = fn.table.argmax(-1).expand(SHAPE)
    assert torch.equal(sample(fn, temperature=0.0), argmax)
    assert torch.equal(sample(fn, top_k=1, temperature=5.0), argmax)
    top3 = fn.table.topk(3, dim=-1).indices.expand(*SHAPE, 3)
    codes = sample(fn, top_k=3, temperature=100.0)
    assert (codes[..., None] == top3).any(-1).all()


class GuidedLogits:
    """Known conditional and null tables; asserts the doubled-batch contract on every call."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(5)
        self.cond = torch.randn(*SHAPE[1:], V, generator=gen)
        self.null = torch.randn(*SHAPE[1:], V, generator=gen)
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, codes: Tensor, *, guided: bool) -> Tensor:
        self.calls.append((codes.shape[0], guided))
        batch = SHAPE[0]
        if guided:
            assert torch.equal(codes[:batch], codes[batch:])  # [codes; codes]
            return torch.cat([self.cond.expand(batch, *self.cond.shape), self.null.expand(batch, *self.null.shape)])
        return self.cond.expand(codes.shape[0], *self.cond.shape).clone()


@pytest.mark.parametrize("guidance", [0.0, 3.0, 7.5])
def test_guidance_combines_cond_and_null_in_one_call_per_step(guidance: float) -> None:
    fn = GuidedLogits()
    codes = sample(fn, guidance=guidance, temperature=0.0, steps=6)
    expected = (fn.null + guidance * (fn.cond - fn.null)).argmax(-1).expand(SHAPE)
    assert torch.equal(codes, expected)
    assert fn.calls == [(2 * SHAPE[0], True)] * 6  # one doubled pass per step, never two passes
    if guidance == 3.0:  # the fake is informative: guidance really changed the answer
        assert not torch.equal(codes, fn.cond.argmax(-1).expand(SHAPE))


def test_no_guidance_is_one_single_batch_pass_per_step() -> None:
    fn = GuidedLogits()
    codes = sample(fn, guidance=1.0, temperature=0.0, steps=5)
    assert torch.equal(codes, fn.cond.argmax(-1).expand(SHAPE))
    assert fn.calls == [(SHAPE[0], False)] * 5


def test_text_logits_fn_pairs_halves_with_prompt_and_null() -> None:
    seen = []

    def model(codes: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        seen.append((text, text_mask))
        return torch.zeros(*codes.shape, V)

    text, text_mask = torch.randn(3, 4, 2), torch.ones(3, 4, dtype=torch.bool)
    null, null_mask = torch.randn(1, 2, 2), torch.tensor([[True, False]])
    fn = text_logits_fn(model, text, text_mask, null, null_mask)
    codes = torch.zeros(3, 1, 1, 1, dtype=torch.long)
    fn(codes, guided=False)
    fn(torch.cat([codes, codes]), guided=True)
    assert seen[0][0] is text
    guided_text, guided_mask = seen[1]
    assert guided_text.shape == (6, 4, 2) and torch.equal(guided_text[:3], text)
    assert torch.equal(guided_text[3:, :2], null.expand(3, 2, 2)) and guided_mask[3:].sum(-1).tolist() == [
        1,
        1,
        1,
    ]
    with pytest.raises(ValueError, match="needs a null prompt"):
        text_logits_fn(model, text, text_mask)(codes, guided=True)


def test_end_to_end_with_the_transformer() -> None:
    from tokgen.transformer import MaskedTransformer, TransformerConfig

    torch.manual_seed(0)
    model = MaskedTransformer(
        TransformerConfig(
            codebook_size=V,
            max_t=2,
            max_h=3,
            max_w=4,
            dim=32,
            depth=1,
            heads=2,
            dim_head=16,
            text_dim=8,
            max_text_len=4,
        )
    ).eval()
    text, text_mask = torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool)
    null, null_mask = torch.randn(1, 1, 8), torch.ones(1, 1, dtype=torch.bool)
    known, known_mask = known_inputs()
    with torch.inference_mode():
        codes = sample(
            text_logits_fn(model, text, text_mask, null, null_mask),
            guidance=3.0,
            steps=4,
            known=known,
            known_mask=known_mask,
        )
    assert codes.min() >= 0 and codes.max() < V
    assert torch.equal(codes[known_mask], known[known_mask])


def test_contract_errors() -> None:
    fn = TableLogits()
    with pytest.raises(ValueError, match=r"mask_id 3 lies inside the logits vocabulary \[0, 10\)"):
        maskgit_sample(fn, shape=SHAPE, mask_id=3, generator=torch.Generator())
    with pytest.raises(ValueError, match="pass both or neither"):
        sample(fn, known=torch.zeros(SHAPE, dtype=torch.long))
    with pytest.raises(ValueError, match=r"known codes must lie in \[0, 10\)"):
        sample(fn, known=torch.full(SHAPE, V), known_mask=torch.ones(SHAPE, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown mask schedule"):
        sample(fn, schedule="zigzag")
    single = lambda codes, *, guided: fn.table.expand(SHAPE[0], *fn.table.shape)  # ignores the doubled batch
    with pytest.raises(ValueError, match=r"logits_fn returned \(3, 2, 3, 4, 10\) for codes \(6, 2, 3, 4\)"):
        sample(single, guidance=2.0)


def test_tokens_follow_the_tempered_softmax() -> None:
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    fn = lambda codes, *, guided: logits.expand(*codes.shape, 4)
    codes = maskgit_sample(
        fn,
        shape=(4000, 1, 1, 1),
        mask_id=4,
        steps=1,
        temperature=2.0,
        generator=torch.Generator().manual_seed(0),
    )
    freq = torch.bincount(codes.flatten(), minlength=4).float() / 4000
    assert torch.allclose(freq, (logits / 2.0).softmax(-1), atol=0.03)


class GridLogits(TableLogits):
    """``TableLogits`` for any number of latent frames up to the table's (a one-frame grid reads frame 0's)."""

    def __call__(self, codes: Tensor, *, guided: bool) -> Tensor:
        self.calls.append((codes.clone(), guided))
        return self.table[: codes.shape[1]].expand(codes.shape[0], codes.shape[1], *self.table.shape[1:]).clone()


def test_first_frame_is_decoded_alone_then_kept() -> None:
    fn = GridLogits()
    codes = sample(fn, steps=4, first_frame=True)
    grids = [c.shape[1] for c, _ in fn.calls]
    assert grids == [1] * 4 + [2] * 4  # the first frame's own passes on a one-frame grid, then the clip
    first = fn.calls[3][0]  # the one-frame grid before its last step, then the clip's first input
    clip_inputs = [c for c, _ in fn.calls[4:]]
    assert (clip_inputs[0][:, 0] != V).all() and (clip_inputs[0][:, 1] == V).all()  # frame 0 given, the rest masked
    for c in clip_inputs:  # frame 0 never changes in the clip's passes
        assert torch.equal(c[:, 0], codes[:, 0])
    assert (first[:, 0] == V).any()  # ...and it was really sampled in the first pass, not given
    assert (codes != V).all()
    again = sample(GridLogits(), steps=4, first_frame=True)
    assert torch.equal(codes, again)  # one generator, so still a pure function of the seed


def test_first_frame_needs_no_pass_where_frame_zero_is_known() -> None:
    known, known_mask = known_inputs()
    fn = GridLogits()
    codes = sample(fn, steps=3, first_frame=True, known=known, known_mask=known_mask)
    assert [c.shape[1] for c, _ in fn.calls] == [2] * 3
    assert torch.equal(codes[known_mask], known[known_mask])
    one_frame = sample(GridLogits(), shape=(3, 1, 3, 4), steps=3, first_frame=True)  # an image: one pass set
    assert one_frame.shape == (3, 1, 3, 4)
