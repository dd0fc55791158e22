"""`PromptCache`: per-instance LRU of prompt embeddings, so sampling one prompt 100 times encodes it once.

It lives on the encoder instance as a plain attribute (not a buffer), so it never enters a
``state_dict``. Entries are keyed by prompt and the whole cache is dropped whenever the encoder's
weights stamp changes: another device or dtype, new tensors (``load_state_dict(assign=True)``), or
any in-place update (an optimizer step or ``load_state_dict`` bumps the tensor version counter).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from torch import Tensor, nn

from tokgen.text.embedding import TextEmbedding


def weights_stamp(module: nn.Module) -> Hashable:
    """A value that changes whenever ``module``'s parameters move, are replaced or are updated in place."""
    return tuple((str(p.device), p.dtype, p.data_ptr(), p._version) for p in module.parameters())


class PromptCache:
    """Bounded least-recently-used map from prompt to its ``(l, d)`` embedding row.

    Args:
        capacity: most prompts kept; 0 keeps none (batches are still de-duplicated).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"PromptCache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._rows: OrderedDict[str, Tensor] = OrderedDict()
        self._stamp: Hashable = None

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Forget every entry."""
        self._rows.clear()
        self._stamp = None

    def encode(
        self, prompts: list[str], compute: Callable[[list[str]], TextEmbedding], stamp: Hashable
    ) -> TextEmbedding:
        """Embed ``prompts``, calling ``compute`` once on the distinct prompts not cached under ``stamp``."""
        if stamp != self._stamp:
            self.clear()
            self._stamp = stamp
        found = {p: self._rows[p] for p in dict.fromkeys(prompts) if p in self._rows}
        missing = [p for p in dict.fromkeys(prompts) if p not in found]
        if missing:
            # Clone: a row is a view that would otherwise keep its whole padded batch alive.
            found.update(zip(missing, (row.detach().clone() for row in compute(missing).rows()), strict=True))
        batch = TextEmbedding.from_rows([found[p] for p in prompts])
        # Store after assembling, so a batch with more distinct prompts than capacity still works.
        for prompt in dict.fromkeys(prompts):
            self._rows[prompt] = found[prompt]
            self._rows.move_to_end(prompt)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)
        return batch
