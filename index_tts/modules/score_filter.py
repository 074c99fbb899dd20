"""generation.process_scores for sampling with top-k, on our compiled `score_filter.c`: the same
float results as its torch ops at a fraction of their cost (~0.8 ms a beam-3 step here, ~25 small
ops on scores that are cold after the weights have streamed).

The C path is checked against the torch path (bit for bit, on rows with and without ties, -inf,
penalties, temperatures, top-p) the first time it is asked for; if it ever disagrees, the torch
path is used from then on and `unavailable_reason()` says why.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

from index_tts.modules import native

_lock = threading.Lock()
_state: dict = {}  # "reason": None once checked, else why the C path is not used


def process(scores: Tensor, seen: Tensor, p, min_keep: int) -> Tensor | None:
    """process_scores(scores, seen, p, min_keep) for p.do_sample with p.top_k, or None where the
    torch path must answer (not CPU float32 rows, a NaN, our kernels unavailable)."""
    if not (p.do_sample and p.top_k and scores.device.type == "cpu" and scores.dtype == torch.float32
            and scores.dim() == 2 and seen.shape == scores.shape and seen.dtype == torch.bool):
        return None
    if unavailable_reason() is not None:
        return None
    return _process_native(scores, seen, p, min_keep)


def _process_native(scores: Tensor, seen: Tensor, p, min_keep: int) -> Tensor | None:
    from index_tts.modules.generation import apply_top_p

    lib = native._state["lib"]
    scores, seen = scores.contiguous(), seen.contiguous()
    rows, vocab = scores.shape
    k = min(max(p.top_k, min_keep), vocab)
    out = torch.empty_like(scores)
    top_values, top_indices = torch.empty(rows, k), torch.empty(rows, k, dtype=torch.long)
    ascending = torch.empty_like(scores)
    alone = lib.score_filter_top_k(scores.data_ptr(), seen.data_ptr(), rows, vocab, p.repetition_penalty,
                                   p.temperature, k, out.data_ptr(), top_values.data_ptr(), top_indices.data_ptr(),
                                   ascending.data_ptr())
    if alone < 0:
        return None
    if p.top_p >= 1.0:
        return out
    if not alone:
        return apply_top_p(out, p.top_p, min_keep)  # ties at the k-th value or non-finite ones: torch sorts
    probs = ascending.softmax(dim=-1)
    lib.score_filter_top_p(probs.data_ptr(), rows, vocab, k, 1 - p.top_p, min_keep, top_indices.data_ptr(),
                           out.data_ptr())
    return out


def unavailable_reason() -> str | None:
    """None when the C path is in use, else why not (checked once per process)."""
    return native.checked_once(_state, _lock, _check)


def _check() -> str | None:
    """The C path against the torch path, bit for bit, over settings x rows that take each branch."""
    from index_tts.modules.generation import DecodeParams, process_scores_torch

    gen = torch.Generator().manual_seed(0)
    for case in range(3):
        scores = torch.randn(3, 8194, generator=gen).log_softmax(-1)
        if case == 1:
            scores = (scores * 4).round() / 4  # ties everywhere, at the k-th value too
        if case == 2:
            scores[1, torch.randperm(8194, generator=gen)[:8180]] = float("-inf")  # fewer finite than k
        seen = torch.rand(3, 8194, generator=gen) < 0.05
        for top_k, top_p, temperature, penalty in ((30, 0.8, 0.8, 10.0), (30, 0.95, 1.0, 1.0), (2, 0.5, 1.3, 1.2),
                                                   (8194, 0.8, 0.8, 10.0), (5, 1.0, 0.7, 2.0)):
            p = DecodeParams(do_sample=True, top_k=top_k, top_p=top_p, temperature=temperature,
                             repetition_penalty=penalty)
            got, want = _process_native(scores, seen, p, 2), process_scores_torch(scores, seen, p, 2)
            if got is None or not torch.equal(got, want):
                return f"our score filter differs from torch's ops in this torch {torch.__version__}"
    return None
