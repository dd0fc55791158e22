"""Story sampler properties with fake logits functions: carried codes, known tokens, any length, seeds."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import Tensor

from tokgen.sampling.story import Segment, Window, plan_windows, story_sample
from tokgen.transformer.config import TransformerTrainConfig
from tokgen.transformer.lit import TransformerLit
from tokgen.transformer.masking import given_frames

V = 12  # codebook size; [MASK] = V
GRID = (2, 3)


class Recorder:
    """A logits factory: segment ``i`` gets noisy logits favouring codes near ``3 * i``; every call is kept."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Tensor]] = []  # (segment, codes seen)

    def __call__(self, segment: int):
        def logits_fn(codes: Tensor, *, guided: bool) -> Tensor:
            self.calls.append((segment, codes.clone()))
            logits = torch.zeros(*codes.shape, V)
            logits[..., (3 * segment) % V] = 2.0
            # Depend on the input too, so carried context changes what is sampled.
            return logits + 0.3 * torch.nn.functional.one_hot((codes.clamp(max=V - 1) + 1) % V, V)

        return logits_fn


def run(segments, *, window=5, context=2, seed=0, init=None, batch=1, recorder=None, windows=None) -> Tensor:
    """The story's codes; ``windows`` collects ``(window, its calls)`` when given."""
    recorder = recorder or Recorder()
    marks = [0]

    def on_window(win: Window) -> None:
        if windows is not None:
            windows.append((win, [seen[:batch] for _, seen in recorder.calls[marks[-1] :]]))  # guided: 2b rows
        marks.append(len(recorder.calls))

    result = story_sample(
        recorder,
        segments,
        grid=GRID,
        window=window,
        context=context,
        mask_id=V,
        generator=torch.Generator().manual_seed(seed),
        init=init,
        batch=batch,
        steps=4,
        on_window=on_window,
    )
    if windows is not None:
        assert [w for w, _ in windows] == list(result.windows)
    return result.codes


def test_plan_covers_every_frame_once_within_the_window() -> None:
    plan = plan_windows([5, 1, 7, 3], window=5, context=2)
    new = [f for w in plan for f in range(*w.new)]
    assert new == list(range(16))  # every latent frame sampled exactly once, in order
    assert all(w.stop - w.start <= 5 for w in plan)
    assert plan[0] == Window(0, 0, 0, 5)  # the first window has nothing to carry
    assert all(w.context == 2 for w in plan[1:])
    assert [w.segment for w in plan] == [0, 1, 2, 2, 2, 3]  # a window samples frames of one segment only
    with pytest.raises(ValueError, match="1 <= context < window"):
        plan_windows([3], window=4, context=4)


@pytest.mark.parametrize(("lengths", "window", "context"), [([5, 4, 4], 5, 2), ([1, 1, 1], 4, 1), ([3, 11, 2], 4, 3)])
def test_windows_carry_the_last_context_codes_exactly(lengths: list[int], window: int, context: int) -> None:
    windows: list = []
    segments = [Segment(n, guidance=1.0) for n in lengths]
    codes = run(segments, window=window, context=context, windows=windows)
    assert codes.shape == (1, sum(lengths), *GRID) and codes.min() >= 0 and codes.max() < V
    for k, (win, calls) in enumerate(windows):
        first = calls[0]
        assert first.shape[1] == win.stop - win.start <= window
        assert first[:, win.context :].eq(V).all()  # the new frames start fully masked
        if k == 0:
            assert win.context == 0
            continue
        previous, _ = windows[k - 1]
        assert win.context == min(context, previous.stop) and win.start + win.context == previous.stop
        # The carried codes are exactly the previous window's last `context` latent frames.
        assert torch.equal(first[:, : win.context], codes[:, previous.stop - win.context : previous.stop])


def test_known_tokens_never_change_and_init_is_kept() -> None:
    init = torch.randint(0, V, (2, 3, *GRID), generator=torch.Generator().manual_seed(5))
    windows: list = []
    codes = run([Segment(4), Segment(6)], init=init, batch=2, windows=windows)
    assert codes.shape == (2, 13, *GRID)
    assert torch.equal(codes[:, :3], init)  # a continued clip keeps its codes
    assert windows[0][0] == Window(0, 1, 2, 6)  # the first window already carries init's last 2 frames
    for win, calls in windows:
        for seen in calls:  # every call sees the known prefix, never masked, never changed
            assert torch.equal(seen[:, : win.context], codes[:, win.start : win.start + win.context])
        for before, after in zip(calls, calls[1:], strict=False):  # decided tokens stay decided
            decided = before != V
            assert torch.equal(after[decided], before[decided])
        assert torch.equal(calls[-1][calls[-1] != V], codes[:, win.start : win.stop][calls[-1] != V])


@pytest.mark.parametrize("total", [1, 2, 7, 23])
def test_any_total_length(total: int) -> None:
    lengths = [total] if total < 3 else [1, total - 3, 2]
    assert run([Segment(n) for n in lengths], window=4, context=3).shape == (1, total, *GRID)


def test_same_seed_same_codes_and_segment_seeds_are_independent() -> None:
    segments = [Segment(5, temperature=2.0), Segment(4, temperature=2.0), Segment(4, temperature=2.0)]
    a, b = run(segments, seed=3), run(segments, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(segments, seed=4))
    # With per-segment seeds, changing the last one leaves the earlier segments as they were.
    seeded = [
        Segment(5, temperature=2.0, seed=10),
        Segment(4, temperature=2.0, seed=11),
        Segment(4, temperature=2.0, seed=12),
    ]
    changed = [*seeded[:2], Segment(4, temperature=2.0, seed=99)]
    x, y = run(seeded), run(changed)
    assert torch.equal(x[:, :9], y[:, :9]) and not torch.equal(x[:, 9:], y[:, 9:])


def test_each_segment_samples_under_its_own_prompt() -> None:
    recorder = Recorder()
    codes = run([Segment(5, temperature=0), Segment(3, temperature=0)], recorder=recorder)
    assert sorted({segment for segment, _ in recorder.calls}) == [0, 1]
    # Greedy sampling follows each segment's favoured code (0, then 3).
    assert codes[:, :5].eq(0).float().mean() > 0.9 and codes[:, 5:].eq(3).float().mean() > 0.9


def test_bad_init_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"init codes must be \(b=1, t0 >= 1, h=2, w=3\)"):
        run([Segment(2)], init=torch.zeros(1, 2, 3, 3, dtype=torch.long))


def test_sampling_imports_no_tokenizer_text_or_pixels() -> None:
    # STYLE.md "Imports point one way": the sampler stays a pure function of logits and a generator.
    code = "import sys, tokgen.sampling.story, tokgen.sampling.prompts; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tokgen.sampling.story" in out
    for banned in ("tokgen.tokenizer", "tokgen.text", "tokgen.io", "tokgen.generator", "lightning"):
        assert f"'{banned}" not in out, banned


def test_training_masks_cover_the_known_token_patterns_sampling_uses() -> None:
    # Every clip gets given frames; a third only the first frame, a third a prefix and a suffix.
    lit = TransformerLit(
        {"codebook_size": 16, "dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "text_dim": 16, "max_text_len": 8},
        {"continuation_prob": 0.99, "first_frame_share": 0.3, "interpolation_share": 0.3},
        {"kind": "learned", "dim": 16, "depth": 1, "max_length": 8},
    )
    codes = torch.zeros(600, 6, 2, 2, dtype=torch.long)
    mask = lit.masked_batch(codes, torch.Generator().manual_seed(0))
    assert (mask.flatten(1).sum(1) >= 1).all()  # something to predict in every clip
    given = ~mask.any(dim=(2, 3))  # (b, t): latent frames with nothing masked
    first_only = given[:, 0] & ~given[:, 1:].any(1)
    suffix = given[:, 0] & given[:, -1]  # interpolation: both ends given (a prefix never reaches the end)
    assert 0.2 < first_only.float().mean() < 0.6  # ~0.3, plus prefixes of k = 1 and fully masked rest
    assert 0.2 < suffix.float().mean() < 0.4
    middle = given[suffix][:, 1:-1]
    assert (~middle).any(1).all()  # at least one frame between the ends is left to fill
    assert given[:, 0].float().mean() > 0.95
    with pytest.raises(ValueError, match="first_frame_share \\+ train.interpolation_share must be <= 1"):
        TransformerTrainConfig(first_frame_share=0.6, interpolation_share=0.6)


def test_clips_with_context_frames_always_train_as_story_windows() -> None:
    # context_frames (token shards of story-window clips): those latent frames are never masked, every
    # clip keeps something to predict, and clips without context mask as before.
    lit = TransformerLit(
        {"codebook_size": 16, "dim": 16, "depth": 1, "heads": 2, "dim_head": 8, "text_dim": 16, "max_text_len": 8},
        {"continuation_prob": 0.0},
        {"kind": "learned", "dim": 16, "depth": 1, "max_length": 8},
    )
    codes = torch.zeros(300, 5, 2, 2, dtype=torch.long)
    context = torch.tensor([0, 2, 5] * 100)  # 5 >= t: all but the last frame given
    plain = lit.masked_batch(codes, torch.Generator().manual_seed(0))
    mask = lit.masked_batch(codes, torch.Generator().manual_seed(0), context)
    given = ~mask.any(dim=(2, 3))  # (b, t)
    assert torch.equal(mask[0::3], plain[0::3])
    assert given[1::3, :2].all() and not mask[1::3, :2].any() and mask[1::3, 2:].any(dim=(1, 2, 3)).all()
    assert given[2::3, :4].all() and mask[2::3, 4].any(dim=(1, 2)).all()
    assert not given[0::3, :2].all(1).all()  # without context the first frames are masked too, often


def test_given_frames_patterns_are_exact() -> None:
    g = torch.Generator().manual_seed(1)
    given = given_frames(400, 7, g, given_prob=1.0, first_frame_share=0.0, interpolation_share=1.0)
    prefix = given.int().cumprod(1).sum(1)  # length of the given prefix
    suffix = given.flip(1).int().cumprod(1).sum(1)
    assert (prefix >= 1).all() and (suffix >= 1).all() and (prefix + suffix <= 6).all()
    assert (given.sum(1) == prefix + suffix).all()  # nothing given in between
    assert not given_frames(50, 1, g, given_prob=1.0).any()  # a one-frame clip has nothing to give
    two = given_frames(50, 2, g, given_prob=1.0, interpolation_share=1.0)
    assert (two[:, 0] & ~two[:, 1]).all()  # too short to interpolate: the first frame is given
