"""A GPT decode step with static shapes, so a CUDA graph can capture it.

`UnifiedVoice.decode_step` slices the KV cache to the filled length and takes Python ints for the
positions: shapes change every step and each step launches ~300 small kernels from Python. Here
the inputs live in fixed buffers (codes [B], mel position [1], cache row [1], visible-position
mask [1, max_len]), attention runs over the whole preallocated cache with the mask, and nothing
reads a value back to the host. On CUDA with `graphs=True` the step is captured once per cache and
replayed (one launch per step); elsewhere it runs eagerly, computing what the dynamic step does
(tests check the codes are identical).

`StaticStepGPT(model)` is duck-typed for `generation.generate`: it delegates everything to the
model except `decode_step`.
"""

from __future__ import annotations

import torch

from index_tts.modules.kv_cache import KVCache
from index_tts.modules.unified_voice import UnifiedVoice


class StaticStepGPT:
    def __init__(self, model: UnifiedVoice, graphs: bool = False):
        self._model = model
        self._graphs = graphs
        self._cache: KVCache | None = None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def setup_cache(self, batch: int, max_len: int, **kwargs) -> KVCache:
        # Zeroed: the step reads the whole buffer, unwritten positions masked (0 x garbage = NaN).
        return self._model.setup_cache(batch, max_len, zeroed=True, **kwargs)

    def _bind(self, cache: KVCache) -> None:
        """Fixed input buffers for this cache (a new generation brings a new cache)."""
        dev = cache.kv.device
        self._cache = cache
        self.codes = torch.zeros(cache.batch, dtype=torch.long, device=dev)
        self.mel_pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.input_pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.visible = torch.zeros(1, cache.max_len, dtype=torch.bool, device=dev)
        self.graph, self.logits_out = None, None

    def _step(self) -> torch.Tensor:
        model = self._model
        x = model.embed_mel(self.codes.view(-1, 1), self.mel_pos)                # [B, 1, d]
        h = model.gpt(x, self._cache, self.input_pos, visible=self.visible)
        return model.logits(h[:, -1])                                              # [B, V]

    def _capture(self) -> None:
        # Warm-up on a side stream, then capture. Each run rewrites the same cache row with the same
        # keys/values, so running the current step more than once changes nothing.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits_out = self._step()

    @torch.no_grad()
    def decode_step(self, codes: torch.Tensor, mel_pos: int, input_pos: int, cache: KVCache,
                    kv_len: int | None = None) -> torch.Tensor:
        """As `UnifiedVoice.decode_step` (codes [B] at cache row `input_pos`) -> logits [B, V]."""
        if cache is not self._cache:
            self._bind(cache)
        if kv_len is not None and kv_len != input_pos + 1:
            raise ValueError("the static step attends over rows 0..input_pos")
        codes = codes.view(-1)
        self.codes.copy_(codes if cache.rows_order is None else codes[cache.rows_order])  # cache rows' order
        self.mel_pos.fill_(mel_pos)
        self.input_pos.fill_(input_pos)
        self.visible[:, : input_pos + 1] = True
        self.visible[:, input_pos + 1:] = False
        if not (self._graphs and cache.kv.is_cuda):
            logits = self._step()
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
            logits = self.logits_out.clone()
        return logits if cache.beam_order is None else logits[cache.beam_order]  # back in beam order
