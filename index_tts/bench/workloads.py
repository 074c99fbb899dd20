"""Fixed benchmark workloads. Text goes in as token ids (no normaliser/tokenizer, as in the upstream
baseline) and every segment is forced to an exact number of codes, so the work does not depend on
the random weights' stop-token luck.

ref5s-100tok is upstream-cpu-baseline.md §2 exactly: one synthetic 5 s reference at 24 kHz (used
for speaker and emotion), one segment of the 20 ids 1000..1019, exactly 100 codes, 3 beams,
25 DiT steps at cfg 0.7, BigVGAN on 172 frames (1.9969 s of audio: the RTF denominator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REF_SR = 24000


def reference_signal(seconds: float = 5.0, sr: int = REF_SR) -> np.ndarray:
    """The baseline's synthetic voice (§2): a 20-harmonic buzz with 5 Hz vibrato around 120 Hz,
    4 Hz amplitude modulation and a little noise, peak 0.5, stored as 16-bit PCM.
    Returns float32 [seconds * sr], the 16-bit values / 32768 (what a WAV reader gives)."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 5 * t)
    phi = np.cumsum(f0) / sr
    x = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) * sum(np.sin(2 * np.pi * k * phi) / k for k in range(1, 21))
    x = x + np.random.default_rng(0).normal(0, 0.01, t.size)
    x = 0.5 * x / np.max(np.abs(x))
    pcm16 = np.round(x * 32767).astype(np.int16)
    return pcm16.astype(np.float32) / 32768


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    ref_seconds: float
    segments: tuple[tuple[int, int], ...]  # (text tokens, forced codes) per segment
    first_text_id: int = 1000

    def text_ids(self, vocab: int) -> list[list[int]]:
        """Consecutive ids from `first_text_id` per segment, wrapped into a smaller vocabulary
        (test models) while keeping clear of the start/stop ids 0 and 1."""
        out, next_id = [], self.first_text_id
        for n_text, _ in self.segments:
            out.append([2 + (next_id + i - 2) % (vocab - 2) for i in range(n_text)])
            next_id += n_text
        return out

    @property
    def codes(self) -> list[int]:
        return [n for _, n in self.segments]

    @property
    def codes_per_segment(self) -> int:
        """One forced count for every segment (one GenerationParams serves the whole request)."""
        counts = set(self.codes)
        if len(counts) != 1:
            raise ValueError(f"workload {self.name}: segments must share one code count, got {self.codes}")
        return counts.pop()


WORKLOADS = {
    w.name: w
    for w in (
        Workload("ref5s-100tok", "upstream-cpu-baseline.md §2: 5 s reference, 20 text ids, exactly 100 codes (2.0 s)",
                 5.0, ((20, 100),)),
        Workload("short", "one sentence: 5 s reference, 30 text ids, 150 codes (about 3 s of audio)",
                 5.0, ((30, 150),)),
        Workload("long", "a paragraph: 5 s reference, 4 segments of 40 text ids and 125 codes (10 s + 3 gaps)",
                 5.0, ((40, 125),) * 4),
        Workload("smoke", "tests only: 2 s reference, 2 segments of 8 ids and 20 codes",
                 2.0, ((8, 20), (8, 20))),
    )
}
