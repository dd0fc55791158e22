"""`Quantizer`: one interface over the VQ, FSQ and LFQ quantizers of vector-quantize-pytorch.

Axis legend: b batch, n tokens, d model width.

Each library quantizer returns a different tuple (VQ: ``(quantized, indices, loss)``, FSQ:
``(quantized, indices)``, LFQ: a named tuple whose loss is the entropy penalty), indices in different
dtypes (int64, int32), and looks codes up through a different call; this wrapper hides that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

from tokgen.tokenizer.config import TokenizerConfig

SCORES_PER_BLOCK = 1 << 20  # VQ code search: rows x codebook_size scores at a time (4 MB in fp32)


@dataclass
class QuantizerOutput:
    """What `Quantizer.forward` returns.

    Attributes:
        quantized: ``(b, n, d)`` float32, the code vectors (with straight-through gradients in training).
        indices: ``(b, n)`` long, code ids in ``[0, codebook_size)``.
        loss: scalar float32, the quantizer's own weighted loss (commitment for VQ, entropy for LFQ,
            the pull to cell centres for FSQ with ``fsq_center_weight``; zero otherwise and in eval mode).
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor


def _argmax_one_hot(logits: Tensor, *, dim: int = -1, topk: int | None = None, **_: object) -> tuple[Tensor, Tensor]:
    """What ``vector_quantize_pytorch.gumbel_sample`` returns without noise: argmax ids and their one-hot."""
    if topk is not None:
        raise NotImplementedError("top-k code sampling is not used by the tokenizer")
    indices = logits.argmax(dim=dim)
    return indices, torch.zeros_like(logits).scatter_(dim, indices.unsqueeze(dim), 1.0)


def _fsq_center_loss(fsq: FSQ, x: Tensor) -> Tensor:
    """Mean squared distance, in level units, of ``x``'s FSQ latents from the nearest level (cell centre).

    The library's ``FSQ.bound`` rounds inside, so its bounding (a shifted tanh scaled to the levels,
    offset by half a level for even level counts) is repeated here without the rounding.
    """
    levels = fsq._levels.float()
    half = (levels - 1) * (1 + 1e-3) / 2  # the library's eps
    offset = (fsq._levels % 2 == 0).float() * 0.5
    bounded = torch.tanh(fsq.project_in(x) + torch.atanh(offset / half)) * half - offset
    return (bounded - bounded.detach().round()).pow(2).mean()


class Quantizer(nn.Module):
    """VQ, FSQ or LFQ (``config.quantizer``) behind ``forward``, ``indices`` and ``embed``."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.kind = config.quantizer
        self.codebook_size = config.codebook_size
        if self.kind == "vq":
            # The library refuses a cosine-similarity codebook learned by gradient
            # ("cosine sim distance codebook not compatible with learnable codebook"), so the
            # gradient-learned variant uses a euclidean codebook.
            self.impl = VectorQuantize(
                dim=config.dim,
                codebook_size=config.codebook_size,
                codebook_dim=config.codebook_dim,
                use_cosine_sim=config.vq_ema,
                ema_update=config.vq_ema,
                learnable_codebook=not config.vq_ema,
                decay=config.vq_decay,
                commitment_weight=config.commitment_weight,
                dead_code_threshold_ratio=config.dead_code_ratio,
            )
            # The library's code picker builds its one-hot matrix in int64 and then casts it
            # ((b n) x codebook_size, 75 MB per 1152 tokens at 8192 codes): 5% of a CPU training step.
            # Without gumbel noise it is an argmax, so pick the same codes with a float one-hot.
            self.impl._codebook.gumbel_sample = _argmax_one_hot
        elif self.kind == "fsq":
            self.impl = FSQ(levels=list(config.fsq_levels), dim=config.dim)
            self.center_weight = config.fsq_center_weight
        else:
            self.impl = LFQ(
                dim=config.dim,
                codebook_size=config.codebook_size,
                entropy_loss_weight=config.lfq_entropy_weight,
            )

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x`` ``(b, n, d)``; in training mode VQ also updates its EMA codebook."""
        if self.kind == "vq" and not self.training:
            indices = self.indices(x)
            return QuantizerOutput(self.embed(indices), indices, x.new_zeros((), dtype=torch.float32))
        # Distances, rounding and codebook statistics are fragile in half precision: always fp32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            if self.kind == "fsq":
                (quantized, indices), loss = self.impl(x), None
                if self.training and self.center_weight > 0:
                    loss = self.center_weight * _fsq_center_loss(self.impl, x)
            else:  # VQ: (quantized, indices, loss); LFQ: a named tuple (quantized, indices, entropy loss)
                quantized, indices, loss = self.impl(x)
        # Outside training the library returns a shared zero buffer as the loss (VQ even marks it
        # requires_grad); hand out a fresh zero so no caller can modify that buffer.
        if loss is None or not self.training:
            loss = quantized.new_zeros(())
        return QuantizerOutput(quantized, indices.long(), loss.float().reshape(()))

    def indices(self, x: Tensor) -> Tensor:
        """Code ids ``(b, n)`` long of ``x`` ``(b, n, d)``, in any mode, never changing the codebook."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            if self.kind != "vq":  # FSQ and LFQ keep no state: their forward is pure
                return self.impl(x)[1].long()
            # The library's VQ also builds, in eval mode, a one-hot (b, n, codebook_size) matrix it
            # never uses (a third of the tokenizer's encode time at 8192 codes), and updates its EMA
            # codebook in training mode: take its distance and argmax alone, in blocks of rows whose
            # scores stay in cache (half the time of one (b n) x codebook_size matrix on a CPU).
            codebook = self.impl._codebook  # the library keeps the codebook and its input transform here
            x = codebook.transform_input(self.impl.project_in(x))  # l2-normalised for cosine similarity
            embed = self.impl.codebook  # (codebook_size, codebook_dim)
            # euclidean: argmin |x - e|^2 = argmax x.e - |e|^2 / 2
            bias = None if codebook.use_cosine_sim else -0.5 * embed.pow(2).sum(dim=-1)
            rows = max(1, SCORES_PER_BLOCK // self.codebook_size)
            flat = x.reshape(-1, x.shape[-1])  # ((b n), codebook_dim)
            ids = [F.linear(block, embed, bias).argmax(dim=-1) for block in flat.split(rows)]
            return torch.cat(ids).view(x.shape[:-1])

    def embed(self, indices: Tensor) -> Tensor:
        """Code ids ``(b, n)`` -> ``(b, n, d)`` float32, what `forward` returns as ``quantized`` for them."""
        with torch.autocast(device_type=indices.device.type, enabled=False):
            if self.kind == "vq":
                return self.impl.get_output_from_indices(indices)
            return self.impl.indices_to_codes(indices)
