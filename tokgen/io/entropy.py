"""The entropy coders behind ``.tok`` payloads: bit-packing, and a range coder with an adaptive model.

Axis legend: t latent frames, h w the latent grid, K codebook size. The model and its row order are
described in `tokgen.io.tokfile`; the encoder and the decoder here run exactly the same arithmetic.
"""

from __future__ import annotations

import numpy as np

try:  # the entropy coder; bit-packing works without it (constriction's submodules are attributes)
    import constriction

    _Categorical = constriction.stream.model.Categorical
    _RangeDecoder = constriction.stream.queue.RangeDecoder
    _RangeEncoder = constriction.stream.queue.RangeEncoder
except (ImportError, AttributeError):  # pragma: no cover - tests monkeypatch HAVE_CONSTRICTION instead
    _Categorical = _RangeDecoder = _RangeEncoder = None

HAVE_CONSTRICTION = _RangeEncoder is not None  # tokfile keeps its own copy (tests switch it off there)

# Dirichlet concentrations alpha = num / den the range coder's model may use (the parameter's low bits).
ALPHAS = ((1, 64), (1, 16), (1, 4), (1, 1))
CONTEXT_FLAG = 16
MAX_PROBABILITY = 255 / 256  # a cap on every code's probability: each code costs >= 1/177 bit


# --- bit-packing ----------------------------------------------------------------------------------


def bits_per_code(k: int) -> int:
    return max(1, (k - 1).bit_length())


def bitpack(codes: np.ndarray, k: int) -> tuple[bytes, int]:
    """Each code in ``ceil(log2 K)`` bits, most significant first; returns (bytes, bit count)."""
    bits = bits_per_code(k)
    flat = codes.reshape(-1).astype(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    planes = ((flat[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(planes.reshape(-1)).tobytes(), flat.size * bits


def bitunpack(payload: bytes, n: int, k: int) -> np.ndarray:
    bits = bits_per_code(k)
    planes = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: n * bits].reshape(n, bits)
    weights = np.uint64(1) << np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return (planes.astype(np.uint64) * weights).sum(axis=1).astype(np.int64)


# --- the range coder's adaptive model -------------------------------------------------------------


def range_params() -> list[int]:
    return [index + context for context in (0, CONTEXT_FLAG) for index in range(len(ALPHAS))]


class _Model:
    """The adaptive model, row by row; the encoder and the decoder run exactly the same arithmetic."""

    def __init__(self, k: int, param: int) -> None:
        num, den = ALPHAS[param % CONTEXT_FLAG]
        self.k, self.num, self.den = k, num, den
        self.context = bool(param & CONTEXT_FLAG)
        self.counts = np.zeros(k, dtype=np.int64)
        self.hits = {"time": 0, "space": 0}
        self.trials = {"time": 0, "space": 0}

    def probabilities(self, context: np.ndarray | None, kind: str) -> np.ndarray:
        """``(w, K)`` float64 probabilities for the next row, given its context codes (or None)."""
        weights = (self.counts * self.den + self.num).astype(np.float64)  # integers: exact
        if context is None or not self.context:
            probs = weights / weights.sum()
            return np.broadcast_to(probs, (1 if context is None else len(context), self.k))
        w = len(context)
        hit = (2 * self.hits[kind] + 1) / (2 * self.trials[kind] + 2)  # KT estimate of P(code == context)
        hit = min(max(hit, 1 - MAX_PROBABILITY), MAX_PROBABILITY)
        rows = np.broadcast_to(weights, (w, self.k)).copy()
        rows[np.arange(w), context] = 0.0
        rows *= (1.0 - hit) / rows.sum(axis=1, keepdims=True)
        rows[np.arange(w), context] = hit
        return rows

    def update(self, row: np.ndarray, context: np.ndarray | None, kind: str) -> None:
        np.add.at(self.counts, row, 1)
        if context is not None:
            self.hits[kind] += int((row == context).sum())
            self.trials[kind] += len(row)


def _rows(shape: tuple[int, int, int]):
    """Row order and each row's context: (t, y, context (t, y) or None, kind)."""
    t, h, _ = shape
    for i in range(t):
        for y in range(h):
            if i > 0:
                yield i, y, (i - 1, y), "time"
            elif y > 0:
                yield i, y, (i, y - 1), "space"
            else:
                yield i, y, None, "space"


def _cap(probs: np.ndarray) -> np.ndarray:
    """Without context, the first row is uniform (no counts yet) and later rows follow the counts:
    cap them too, so that every code costs at least a fixed sliver of a bit."""
    top = probs.max(axis=1, keepdims=True)
    if (top <= MAX_PROBABILITY).all():
        return probs
    probs = np.minimum(probs, MAX_PROBABILITY)
    spread = (1.0 - probs.sum(axis=1, keepdims=True)) / (probs.shape[1] - 1)
    return np.where(probs >= MAX_PROBABILITY, probs, probs + spread)


def range_encode(codes: np.ndarray, k: int, param: int) -> tuple[bytes, int]:
    model, encoder, family = _Model(k, param), _RangeEncoder(), _Categorical(perfect=False)
    for i, y, ctx, kind in _rows(codes.shape):
        row = codes[i, y]
        context = None if ctx is None else codes[ctx[0], ctx[1]]
        probs = _cap(np.ascontiguousarray(model.probabilities(context, kind)))
        if len(probs) == 1 and len(row) > 1:
            probs = np.repeat(probs, len(row), axis=0)
        encoder.encode(row.astype(np.int32), family, probs)
        model.update(row, context, kind)
    words = encoder.get_compressed()
    return words.astype("<u4").tobytes(), int(encoder.num_bits())


def range_decode(payload: bytes, shape: tuple[int, int, int], k: int, param: int) -> np.ndarray:
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    model, decoder, family = _Model(k, param), _RangeDecoder(words), _Categorical(perfect=False)
    codes = np.empty(shape, dtype=np.int64)
    for i, y, ctx, kind in _rows(shape):
        context = None if ctx is None else codes[ctx[0], ctx[1]]
        probs = _cap(np.ascontiguousarray(model.probabilities(context, kind)))
        if len(probs) == 1 and shape[2] > 1:
            probs = np.repeat(probs, shape[2], axis=0)
        row = np.asarray(decoder.decode(family, probs), dtype=np.int64)
        codes[i, y] = row
        model.update(row, context, kind)
    return codes
