"""The GPT's preallocated key/value cache, with beams kept in place (gpt-fast style buffers), and
the decode step's attention over it.

kv: [layers, 2, B, max_len, H, Dh], keys then values, sized once so a decode step has static
shapes; `k` and `v` are views of it. Time-major: one position's keys for all heads are one
contiguous run, so a decode step reads a row's cache front to back (`attend`).

Beam search reorders beams after every step: new beam b continues old beam rows[b]. Moving a
beam's past costs a copy of every filled position of every layer (about 25 MB per moved beam at
100 positions on the full-size GPT), so it is not moved:
- where our compiled attention reads the cache (`shared_history`: fp32 on the CPU), rows share
  their common past: `origin[r, t]` is the row that holds row r's position t. A reorder only
  rewrites `origin`; each row writes new positions in its own row, and no position is written
  twice, so a shared one never changes. Beams that share their past also share its reads.
- elsewhere (CUDA, torch's attention) the cache does not keep beam b in row b: `slot[b]` is the
  row that holds beam b. On a reorder the first child of each surviving beam takes over its
  parent's row as it is; only the further children of a beam are copied, into the rows of beams
  that died. That is the fewest copies possible (none for a permutation of the beams), and no
  row is read after it was overwritten, so nothing is staged. Callers feed rows in row order
  (`rows_order`) and read results back in beam order (`beam_order`).
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F

from index_tts.modules import huge_pages, native

# The CPU caches of successive generations, one at a time, in 2 MB pages (huge_pages.py): a decode
# step reads every layer's past cold, and in 4 KB pages that is a TLB miss every 4 KB (the forward
# ~3% faster here, docs/performance.md). Mapped once per process, because faulting 2 MB pages
# anew for each generation cost more than they saved. Between generations the first page of each
# layer's keys or values of each row stays resident (~400 positions of the full-size GPT, 288 MB
# at beam 3), the rest goes back.
_KEPT = huge_pages.KeptBuffer()


class KVCache:
    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int, dtype, device,
                 zeroed: bool = False):
        # Not zeroed unless asked: attention only reads written positions, and at the default
        # 1500 codes the beam-3 cache is 1.15 GB that zeroing would make resident up front
        # (fresh pages are mapped as positions are written). A caller that reads the whole
        # buffer under a mask (the static step) asks for zeros: 0 x garbage can be NaN.
        row_bytes = heads * head_dim * torch.empty(0, dtype=dtype).element_size()
        kept = None
        if not zeroed and torch.device(device).type == "cpu":
            # max_len rounded up so that each row of each layer's keys or values starts a page
            # (address space: pages are mapped as positions are written), where that adds fewer
            # than 4096 positions (rows of 512 bytes or more; the full-size GPT's: 2048)
            whole_pages = huge_pages.PAGE // math.gcd(huge_pages.PAGE, row_bytes)
            if whole_pages <= 4096:
                max_len = -(-max_len // whole_pages) * whole_pages
                kept = _KEPT.hold(layers * 2 * batch * max_len * row_bytes)
        shape = (layers, 2, batch, max_len, heads, head_dim)
        if kept is not None:
            self.kv = kept.view(dtype).view(shape)
            weakref.finalize(self, _KEPT.release, max_len * row_bytes, huge_pages.PAGE)
        else:
            self.kv = (torch.zeros if zeroed else torch.empty)(shape, dtype=dtype, device=device)
        # The masked whole-buffer reads of the static step need every row's own past.
        self.shared_history = not zeroed and self.native_attention and native.available()
        self.origin = torch.arange(batch, dtype=torch.int32)[:, None].repeat(1, max_len)  # [B, max_len]
        self.slot = list(range(batch))   # beam -> cache row
        self._orders: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows_order, beam_order); None: identity
        self.step_plan = None  # gpt_decode's plan for this cache, made at the first step (False: none applies)

    @property
    def k(self) -> torch.Tensor:
        return self.kv[:, 0]              # [layers, B, max_len, H, Dh]

    @property
    def v(self) -> torch.Tensor:
        return self.kv[:, 1]

    @property
    def batch(self) -> int:
        return self.kv.size(2)

    @property
    def max_len(self) -> int:
        return self.kv.size(3)

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
        if self.shared_history:
            self.origin[:, :n] = self.origin[parents, :n]
            return
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
                self.kv[:, :, new_slot[b], :n].copy_(self.kv[:, :, self.slot[parent], :n])
        self._set_slots(new_slot)

    def copy_row_to_all(self, row: int = 0, length: int | None = None) -> None:
        """After a batch-1 prefill, start every beam from the same prompt (that of beam `row`)."""
        n = self.max_len if length is None else length
        source = self.slot[row]
        if self.shared_history:
            self.origin[:, :n] = source
            return
        for r in range(self.batch):
            if r != source:
                self.kv[:, :, r, :n].copy_(self.kv[:, :, source, :n])

    @property
    def native_attention(self) -> bool:
        """Our compiled attention can read this cache: fp32 on the CPU, head_dim a multiple of 16 up to 128."""
        head_dim = self.kv.size(-1)
        return self.kv.is_cpu and self.kv.dtype == torch.float32 and head_dim % 16 == 0 and head_dim <= 128

    def attend(self, layer: int, qkv: torch.Tensor, pos: int, n: int) -> torch.Tensor:
        """One decode step of layer `layer`: qkv [b, 3d] (q | k | v, one row per cache row) ->
        keys and values written at position `pos`, then each row's attention over positions
        0..n-1 (pos among them) -> [b, d]. On the CPU our compiled kernel where it is available
        (decode_attention.c), else torch's SDPA: the same arithmetic up to summation order."""
        if self.native_attention and qkv.dtype == torch.float32 and native.available():
            return _attend_native(self.kv[layer], self.origin, qkv, pos, n)
        return _attend_torch(self.kv[layer], self.origin if self.shared_history else None, qkv, pos, n)

    def own_rows(self) -> None:
        """Raises unless every row holds its own past (what torch's whole-row reads need)."""
        if self.shared_history and not torch.equal(self.origin, torch.arange(self.batch, dtype=torch.int32)[:, None].expand_as(self.origin)):
            raise RuntimeError("this cache's rows share their past: only KVCache.attend reads it")

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


def _attend_torch(kv: torch.Tensor, origin: torch.Tensor | None, qkv: torch.Tensor, pos: int, n: int) -> torch.Tensor:
    """kv [2, B, max_len, H, Dh] of one layer; origin [B, max_len] or None (every row its own)."""
    b, heads = qkv.size(0), kv.size(3)
    d = qkv.size(1) // 3
    kv[:, :b, pos].copy_(qkv[:, d:].view(b, 2, heads, -1).transpose(0, 1))
    q = qkv[:, :d].view(b, heads, 1, -1)                                        # [b, H, 1, Dh]
    if origin is None:
        keys, values = (kv[i, :b, :n].transpose(1, 2) for i in (0, 1))          # [b, H, n, Dh]
    else:
        rows = origin[:b, :n].to(device=kv.device, dtype=torch.long)
        keys, values = (kv[i][rows, torch.arange(n, device=kv.device)].transpose(1, 2) for i in (0, 1))
    return F.scaled_dot_product_attention(q, keys, values).view(b, d)


def _attend_native(kv: torch.Tensor, origin: torch.Tensor, qkv: torch.Tensor, pos: int, n: int) -> torch.Tensor:
    _, batch, max_len, heads, head_dim = kv.shape
    qkv = qkv.contiguous()
    out = torch.empty(qkv.size(0), heads * head_dim)
    failed = native._state["lib"].decode_attention(qkv.data_ptr(), qkv.size(0), heads, head_dim, kv.data_ptr(), batch,
                                                   max_len, origin.data_ptr(), pos, n, head_dim ** -0.5, out.data_ptr())
    if failed:
        raise MemoryError("decode_attention: out of memory")
    return out


def self_check() -> None:
    """Raises unless the compiled attention computes what torch's does (run once, when the library loads)."""
    g = torch.Generator().manual_seed(0)
    kv = torch.randn(2, 3, 40, 4, 32, generator=g)
    qkv = torch.randn(3, 3 * 4 * 32, generator=g)
    origin = torch.randint(0, 3, (3, 40), generator=g, dtype=torch.int32)
    origin[:, 20:] = torch.arange(3, dtype=torch.int32)[:, None]
    for pos, n in ((20, 21), (30, 31), (38, 39)):  # positions from 20 on: each row's own
        want_kv, got_kv = kv.clone(), kv.clone()
        want, got = _attend_torch(want_kv, origin, qkv, pos, n), _attend_native(got_kv, origin, qkv, pos, n)
        if not (torch.equal(want_kv, got_kv) and torch.allclose(got, want, atol=1e-5, rtol=1e-4)):
            raise RuntimeError(f"the compiled attention disagrees with torch's (position {pos})")
