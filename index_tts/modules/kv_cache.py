"""The GPT's preallocated key/value cache, with beams kept in place (gpt-fast style buffers).

kv: [layers, 2, B, H, max_len, Dh], keys then values, sized once so a decode step has static
shapes; `k` and `v` are views of it. Beam search reorders beams after every step: new beam b
continues old beam rows[b]. Moving rows costs a copy of every filled position of every layer
(about 25 MB per moved beam at 100 positions on the full-size GPT), so the cache does not keep
beam b in row b: `slot[b]` is the row that holds beam b. On a reorder the first child of each
surviving beam takes over its parent's row as it is; only the further children of a beam are
copied, into the rows of beams that died. That is the fewest copies possible (none for a
permutation of the beams), and no row is read after it was overwritten, so nothing is staged.
Callers feed rows in row order (`rows_order`) and read results back in beam order (`beam_order`).
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int, dtype, device,
                 zeroed: bool = False):
        # Not zeroed unless asked: attention only reads written positions, and at the default
        # 1500 codes the beam-3 cache is 1.15 GB that zeroing would make resident up front
        # (fresh pages are mapped as positions are written). A caller that reads the whole
        # buffer under a mask (the static step) asks for zeros: 0 x garbage can be NaN.
        shape = (layers, 2, batch, heads, max_len, head_dim)
        self.kv = (torch.zeros if zeroed else torch.empty)(shape, dtype=dtype, device=device)
        self.slot = list(range(batch))   # beam -> cache row
        self._orders: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows_order, beam_order); None: identity

    @property
    def k(self) -> torch.Tensor:
        return self.kv[:, 0]              # [layers, B, H, max_len, Dh]

    @property
    def v(self) -> torch.Tensor:
        return self.kv[:, 1]

    @property
    def batch(self) -> int:
        return self.kv.size(2)

    @property
    def max_len(self) -> int:
        return self.kv.size(4)

    @property
    def rows_order(self) -> torch.Tensor | None:
        """Row r holds beam rows_order[r]: index beam-ordered inputs with it (None: identity)."""
        return None if self._orders is None else self._orders[0]

    @property
    def beam_order(self) -> torch.Tensor | None:
        """Beam b sits in row beam_order[b]: index row-ordered outputs with it (None: identity)."""
        return None if self._orders is None else self._orders[1]

    def reorder(self, rows: torch.Tensor | list[int], length: int | None = None) -> None:
        """Beam search: beam b becomes old beam rows[b]. Only the first `length` (filled)
        positions of a row are copied, and only rows that a second child of a beam takes."""
        n = self.max_len if length is None else length
        parents = rows.tolist() if isinstance(rows, torch.Tensor) else list(rows)
        new_slot: list[int | None] = [None] * len(parents)
        kept = set()
        for b, parent in enumerate(parents):
            if self.slot[parent] not in kept:      # the first child keeps its parent's row
                new_slot[b] = self.slot[parent]
                kept.add(new_slot[b])
        free = [r for r in range(self.batch) if r not in kept]   # rows of beams that died
        for b, parent in enumerate(parents):
            if new_slot[b] is None:
                new_slot[b] = free.pop(0)
                self.kv[:, :, new_slot[b], :, :n].copy_(self.kv[:, :, self.slot[parent], :, :n])
        self._set_slots(new_slot)

    def copy_row_to_all(self, row: int = 0, length: int | None = None) -> None:
        """After a batch-1 prefill, start every beam from the same prompt (that of beam `row`)."""
        n = self.max_len if length is None else length
        source = self.slot[row]
        for r in range(self.batch):
            if r != source:
                self.kv[:, :, r, :, :n].copy_(self.kv[:, :, source, :, :n])

    def _set_slots(self, slot: list[int]) -> None:
        self.slot = slot
        if slot == list(range(len(slot))):
            self._orders = None
            return
        device = self.kv.device
        beam_order = torch.tensor(slot, device=device)
        rows_order = torch.empty_like(beam_order)
        rows_order[beam_order] = torch.arange(len(slot), device=device)
        self._orders = (rows_order, beam_order)
