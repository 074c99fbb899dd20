"""torch.multinomial without replacement, the same draw from the same generator, on our compiled
`multinomial.c` where it is known to reproduce torch: beam sampling's per-step draw otherwise
spends ~0.47 ms drawing exponentials for entries whose probability is zero.

The C draw is checked bit for bit against torch (indices and the generator state afterwards) the
first time it is asked for; if it ever disagrees, torch.multinomial is used from then on and
`unavailable_reason()` says why.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

from index_tts.modules import native

_lock = threading.Lock()
_state: dict = {}  # "reason": None once the C draw is checked, else why it is not used


def draw(probs: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """torch.multinomial(probs, n, replacement=False, generator=generator) for probs [1, N]."""
    if _usable(probs, generator) and unavailable_reason() is None:
        drawn = _draw_native(probs, n, generator)
        if drawn is not None:
            return drawn
    return torch.multinomial(probs, n, generator=generator)


def _usable(probs: Tensor, generator) -> bool:
    return (probs.device.type == "cpu" and probs.dtype == torch.float32 and probs.dim() == 2 and probs.size(0) == 1
            and isinstance(generator, torch.Generator) and generator.device.type == "cpu")


def _draw_native(probs: Tensor, n: int, generator: torch.Generator) -> Tensor | None:
    """The draw, or None where the C code leaves it to torch (see multinomial_draw)."""
    probs = probs.contiguous()
    state = generator.get_state()
    out = torch.empty(1, n, dtype=torch.long)
    if native._state["lib"].multinomial_draw(probs.data_ptr(), probs.size(1), n, state.data_ptr(), out.data_ptr()):
        return None
    generator.set_state(state)
    return out


def unavailable_reason() -> str | None:
    """None when the C draw is in use, else why not (checked once per process)."""
    return native.checked_once(_state, _lock, _check)


def _check() -> str | None:
    """Compare with torch.multinomial on dense and sparse rows: same indices, same state after."""
    for seed, (count, nonzero, n) in enumerate([(40, 40, 1), (24582, 90, 6), (8194, 3, 2), (1000, 999, 7)]):
        gen = torch.Generator().manual_seed(seed)
        probs = torch.zeros(1, count)
        probs[0, torch.randperm(count, generator=gen)[:nonzero]] = torch.rand(nonzero, generator=gen) + 1e-3
        probs /= probs.sum()
        torch.empty(seed * 101).exponential_(generator=gen)  # start mid-way through MT19937's words
        ours, theirs = torch.Generator(), torch.Generator()
        ours.set_state(gen.get_state())
        theirs.set_state(gen.get_state())
        for _ in range(3):
            got, want = _draw_native(probs, n, ours), torch.multinomial(probs, n, generator=theirs)
            if got is None or not torch.equal(got, want) or not torch.equal(ours.get_state(), theirs.get_state()):
                return f"our draw differs from torch.multinomial's in this torch {torch.__version__}"
    return None
