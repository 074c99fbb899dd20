"""Autoregressive semantic-code generation for UnifiedVoice v2, without transformers' `generate`.

Reproduces upstream `inference_speech` + HF generation semantics (transformers 4.52 as vendored
by index-tts, spec §4.1.3 and fixture README §5.10):

- prompt = conds | text (ids 0/1 removed) | start_mel at mel position 0; the k-th generated code
  is fed back at mel position k + 1 (position 1 is never used: upstream quirk);
- the repetition penalty applies to every id in upstream's running `input_ids`, i.e. the fake
  prompt ids (all 1), the start id and every generated code;
- greedy / sampling run the processors on raw logits; beam search and beam-sample on
  log-softmax scores, then add the running beam scores (HF BeamSearchScorer, early_stopping=False,
  eos = pad = stop token).

Randomness only comes from the `torch.Generator` passed in (or one seeded from params.seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from index_tts.modules import multinomial, score_filter
from index_tts.modules.unified_voice import UnifiedVoice


@dataclass(frozen=True)
class DecodeParams:
    """Decoding settings; defaults are upstream IndexTTS2 infer()'s."""

    do_sample: bool = True
    temperature: float = 0.8
    top_p: float = 0.8            # 1.0 disables
    top_k: int = 30               # 0 disables
    num_beams: int = 3
    repetition_penalty: float = 10.0
    length_penalty: float = 0.0
    max_mel_tokens: int = 1500    # most new codes, stop token included
    seed: int | None = None
    # Not a user setting: the benchmark forces an exact code count (HF min_new_tokens: the stop
    # token is impossible before this many codes), so runs with random weights compare.
    min_new_tokens: int = 0

    @classmethod
    def from_any(cls, params) -> "DecodeParams":
        """Accept DecodeParams, engines.base.GenerationParams, or anything with these attributes."""
        if params is None:
            return cls()
        if isinstance(params, cls):
            return params
        return cls(**{f: getattr(params, f) for f in cls.__dataclass_fields__ if hasattr(params, f)})

    def verify(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.max_mel_tokens < 1:
            raise ValueError(f"max_mel_tokens must be >= 1, got {self.max_mel_tokens}")
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


@dataclass
class GenerationResult:
    codes: torch.Tensor             # [1, n] int64, the stop token included if produced
    code_len: int                   # index of the first stop token, or n
    spk_latent: torch.Tensor        # [1, 32, d] speaker perceiver latents
    sequence_score: float | None = None  # beam search: best hypothesis score
    # First `record_steps` steps (num_beams=1 only): raw logits and processed scores, [1, V] each.
    step_logits: list[torch.Tensor] = field(default_factory=list)
    step_scores: list[torch.Tensor] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Logits processors (HF semantics)


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """scores [R, V], seen bool [R, V]: s<0 -> s*penalty, s>0 -> s/penalty on seen ids."""
    if penalty == 1.0:
        return scores
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalised, scores)


def apply_top_k(scores: torch.Tensor, top_k: int, min_keep: int) -> tuple[torch.Tensor, torch.return_types.topk]:
    """-> (scores with all but the top k set to -inf, the top k as torch.topk gives them)."""
    top = torch.topk(scores, min(max(top_k, min_keep), scores.size(-1)), dim=-1)
    return scores.masked_fill(scores < top.values[..., -1:], float("-inf")), top


def apply_top_p(scores: torch.Tensor, top_p: float, min_keep: int, top=None) -> torch.Tensor:
    """Drop the low tail whose cumulative probability is <= 1 - top_p, keeping >= min_keep.

    `top`: apply_top_k's top k, when top-k ran first. If they are all that is left (no ties at
    the k-th value) and distinct, the ascending sort is known, -inf then their values reversed:
    the same row that torch.sort gives, so the same softmax and cumsum, without sorting 8194
    entries (~0.13 ms a step)."""
    known = top is not None and _only_distinct_finite(scores, top.values)
    if known:
        values, index = top.values.flip(-1), top.indices.flip(-1)
        rest = scores.size(-1) - values.size(-1)
        sorted_scores = torch.cat([values.new_full((values.size(0), rest), float("-inf")), values], dim=-1)
    else:
        sorted_scores, order = torch.sort(scores, descending=False, dim=-1)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - top_p)
    drop_sorted[..., -min_keep:] = False
    if known:  # the -inf entries stay -inf whatever their flag
        drop = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, index, drop_sorted[..., rest:])
    else:
        drop = drop_sorted.scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def _only_distinct_finite(scores: torch.Tensor, values: torch.Tensor) -> bool:
    """`values` (descending, per row) are finite, strictly decreasing and the only finite scores."""
    return bool(torch.isfinite(values).all() and (values[..., 1:] < values[..., :-1]).all()
                and int(torch.isfinite(scores).sum()) == values.numel())


def process_scores(scores: torch.Tensor, seen: torch.Tensor, p: DecodeParams, min_keep: int) -> torch.Tensor:
    """HF order: repetition penalty, then (sampling only) temperature, top-k, top-p. Sampling with
    top-k on the CPU runs on our compiled filter where it is known to give the same floats
    (score_filter.py), else on torch's ops."""
    processed = score_filter.process(scores, seen, p, min_keep)
    return process_scores_torch(scores, seen, p, min_keep) if processed is None else processed


def process_scores_torch(scores: torch.Tensor, seen: torch.Tensor, p: DecodeParams, min_keep: int) -> torch.Tensor:
    scores = apply_repetition_penalty(scores, seen, p.repetition_penalty)
    if p.do_sample:
        if p.temperature != 1.0:
            scores = scores / p.temperature
        top = None
        if p.top_k:
            scores, top = apply_top_k(scores, p.top_k, min_keep)
        if p.top_p < 1.0:
            scores = apply_top_p(scores, p.top_p, min_keep, top)
    return scores


# ---------------------------------------------------------------------------------------------
# Entry point


@torch.no_grad()
def generate(model: UnifiedVoice, spk_cond_emb: torch.Tensor, text_tokens: torch.Tensor, emo_vec: torch.Tensor,
             params=None, *, generator: torch.Generator | None = None, spk_latent: torch.Tensor | None = None,
             spk_lengths: torch.Tensor | None = None, record_steps: int = 0) -> GenerationResult:
    """Generate semantic codes for one text segment.

    spk_cond_emb [1, T, 1024] (ignored when `spk_latent` [1, 32, d] is given), text_tokens [L] or
    [1, L], emo_vec [1, d]. `params`: DecodeParams or engines.base.GenerationParams.
    """
    p = DecodeParams.from_any(params)
    p.verify()
    if spk_latent is None:
        spk_latent = model.get_conditioning(spk_cond_emb, spk_lengths)
    prompt = model.prompt_embeddings(spk_latent, emo_vec, text_tokens)  # [1, s + 1, d]
    result = decode(model, prompt, p, generator, record_steps)
    result.spk_latent = spk_latent
    return result


def decode(model, prompt: torch.Tensor, p: DecodeParams, generator: torch.Generator | None = None,
           record_steps: int = 0) -> GenerationResult:
    """The decode loop on a ready prompt [1, s + 1, d] (its last row: start_mel at mel position 0).

    `model` is any GPT with v2's decode primitives (setup_cache, prefill, decode_step, cfg):
    UnifiedVoice or UnifiedVoice25. `result.spk_latent` is left for the caller to fill."""
    if generator is None and p.do_sample:
        generator = torch.Generator(device=prompt.device)
        if p.seed is not None:
            generator.manual_seed(p.seed)
        else:
            generator.seed()
    if p.num_beams == 1:
        return _decode_single(model, prompt, p, generator, record_steps)
    return _decode_beams(model, prompt, p, generator)


def _forbid_early_stop(scores: torch.Tensor, step: int, p: DecodeParams, stop: int) -> torch.Tensor:
    """HF MinNewTokensLengthLogitsProcessor: stop scores -inf while fewer than min_new_tokens codes."""
    if step < p.min_new_tokens:
        scores = scores.clone()  # may alias the raw logits, which are recorded
        scores[:, stop] = float("-inf")
    return scores


def _initial_seen(model: UnifiedVoice, rows: int, prompt_len: int, device) -> torch.Tensor:
    """Ids in upstream's fake prompt `input_ids`: s ones, then the start token."""
    seen = torch.zeros(rows, model.cfg.number_mel_codes, dtype=torch.bool, device=device)
    if prompt_len > 1:
        seen[:, 1] = True
    seen[:, model.cfg.start_mel_token] = True
    return seen


def _finish(model: UnifiedVoice, generated: list[int], device) -> tuple[torch.Tensor, int]:
    codes = torch.tensor([generated], dtype=torch.long, device=device)
    stop = model.cfg.stop_mel_token
    code_len = generated.index(stop) if stop in generated else len(generated)
    return codes, code_len


def _decode_single(model: UnifiedVoice, prompt: torch.Tensor, p: DecodeParams, generator, record_steps: int) -> GenerationResult:
    """Greedy (argmax) or multinomial sampling over processed raw logits, batch 1."""
    device, prompt_len, stop = prompt.device, prompt.size(1), model.cfg.stop_mel_token
    cache = model.setup_cache(1, prompt_len + p.max_mel_tokens)
    logits = model.prefill(prompt, cache)                 # [1, V]
    seen = _initial_seen(model, 1, prompt_len, device)
    generated: list[int] = []
    result = GenerationResult(codes=torch.empty(0), code_len=0, spk_latent=torch.empty(0))
    for step in range(p.max_mel_tokens):
        scores = _forbid_early_stop(process_scores(logits.float(), seen, p, min_keep=1), step, p, stop)
        if step < record_steps:
            result.step_logits.append(logits.float().clone())
            result.step_scores.append(scores.clone())
        if p.do_sample:
            token = multinomial.draw(scores.softmax(dim=-1), 1, generator)[0, 0]
        else:
            token = scores.argmax(dim=-1)[0]
        code = int(token)
        generated.append(code)
        if code == stop or step + 1 == p.max_mel_tokens:
            break
        seen[0, code] = True
        # k-th generated code (k = step + 1) goes in at mel position k + 1.
        logits = model.decode_step(token.view(1), mel_pos=step + 2, input_pos=prompt_len + step, cache=cache)
    result.codes, result.code_len = _finish(model, generated, device)
    return result


class _Hypotheses:
    """Finished beam hypotheses (HF BeamHypotheses, early_stopping=False)."""

    def __init__(self, num_beams: int, length_penalty: float):
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.beams: list[tuple[float, list[int], bool]] = []  # (score, codes, ended_with_stop)
        self.worst_score = 1e9

    def add(self, codes: list[int], sum_logprobs: float, generated_len: int, ended: bool) -> None:
        score = sum_logprobs / (generated_len**self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, codes, ended))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / generated_len**self.length_penalty

    def best(self) -> tuple[float, list[int], bool]:
        # sorted() is stable and HF pops the last element: on ties the later-added one wins.
        return sorted(self.beams, key=lambda b: b[0])[-1]


def _draw_candidates(flat: torch.Tensor, n: int, generator) -> torch.Tensor:
    """Multinomial draw of n distinct flat indices from softmax(flat) [1, N].

    torch refuses when fewer than n entries have non-zero probability (top-k/top-p can leave
    as few as 2 per beam, and dead beams carry -1e9); the missing ones are then filled with the
    best-scored remaining entries, which can never outrank the drawn ones.
    """
    probs = flat.softmax(dim=-1)
    available = int((probs > 0).sum())
    if available >= n:
        return multinomial.draw(probs, n, generator)
    drawn = multinomial.draw(probs, available, generator) if available else flat.new_empty((1, 0), dtype=torch.long)
    rest = flat.masked_fill(probs > 0, float("-inf"))
    fill = torch.topk(rest, n - available, dim=-1).indices
    return torch.cat([drawn, fill], dim=-1)


def _decode_beams(model: UnifiedVoice, prompt: torch.Tensor, p: DecodeParams, generator) -> GenerationResult:
    """HF beam search (do_sample=False) or beam sample (do_sample=True), one prompt."""
    device, prompt_len, stop = prompt.device, prompt.size(1), model.cfg.stop_mel_token
    nb, vocab = p.num_beams, model.cfg.number_mel_codes
    cache = model.setup_cache(nb, prompt_len + p.max_mel_tokens)
    logits = model.prefill(prompt, cache).expand(nb, -1)   # every beam starts from the same prompt
    cache.copy_row_to_all(0, length=prompt_len)

    beam_scores = torch.full((nb,), -1e9, device=device)
    beam_scores[0] = 0.0  # so the first step picks distinct tokens from beam 0 only
    seen = _initial_seen(model, nb, prompt_len, device)
    sequences: list[list[int]] = [[] for _ in range(nb)]
    hyps = _Hypotheses(nb, p.length_penalty)
    done = False
    beam_index = torch.arange(nb, device=device)

    for step in range(p.max_mel_tokens):
        logprobs = F.log_softmax(logits.float(), dim=-1)
        scores = _forbid_early_stop(process_scores(logprobs, seen, p, min_keep=2), step, p, stop)
        scores = scores + beam_scores[:, None]   # [nb, V]
        flat = scores.reshape(1, nb * vocab)
        n_keep = 2 * nb
        if p.do_sample:
            picked = _draw_candidates(flat, n_keep, generator)
            cand_scores, order = torch.sort(flat.gather(-1, picked), descending=True, dim=-1)
            picked = picked.gather(-1, order)
        else:
            cand_scores, picked = torch.topk(flat, n_keep, dim=-1)
        cand_beam, cand_token = (picked // vocab)[0].tolist(), (picked % vocab)[0].tolist()
        cand_scores_list = cand_scores[0].tolist()

        next_ranks, next_tokens, next_rows = [], [], []
        for rank, (b, tok, sc) in enumerate(zip(cand_beam, cand_token, cand_scores_list)):
            if tok == stop:
                if rank >= nb:
                    continue  # an eos ranked below the top num_beams does not finish a hypothesis
                # HF stores the hypothesis without the stop token; its length counts the stop.
                hyps.add(list(sequences[b]), sc, generated_len=step + 1, ended=True)
            else:
                next_ranks.append(rank)
                next_tokens.append(tok)
                next_rows.append(b)
            if len(next_tokens) == nb:
                break
        if len(next_tokens) < nb:
            raise RuntimeError("beam search found fewer live candidates than beams")
        done = hyps.is_done(max(cand_scores_list), step + 1)

        rows = torch.tensor(next_rows, device=device)
        tokens = torch.tensor(next_tokens, device=device)
        sequences = [sequences[b] + [t] for b, t in zip(next_rows, next_tokens)]
        beam_scores = cand_scores[0, next_ranks]
        seen = seen.index_select(0, rows)
        seen[beam_index, tokens] = True
        if done or step + 1 == p.max_mel_tokens:
            break
        if next_rows != list(range(nb)):
            cache.reorder(rows, length=prompt_len + step)  # positions written so far
        logits = model.decode_step(tokens, mel_pos=step + 2, input_pos=prompt_len + step, cache=cache)

    if not done:
        # Max length reached: open beams compete with the finished hypotheses.
        for b in range(nb):
            hyps.add(list(sequences[b]), float(beam_scores[b]), generated_len=len(sequences[b]), ended=False)
    score, best, ended = hyps.best()
    generated = best + [stop] if ended else best
    codes, code_len = _finish(model, generated, device)
    return GenerationResult(codes=codes, code_len=code_len, spk_latent=torch.empty(0), sequence_score=score)
