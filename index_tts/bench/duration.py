"""python -m index_tts.bench.duration [--model-dir DIR] [--targets 12]

Duration control, measured at the engine (the figures in docs/creator-guide.md, "Timing"):
1. how far a target duration lands from the target, over targets spread across the reachable
   range: the quick voice, and with --model-dir an IndexTTS2 model (e.g. the tiny one);
2. what a duration factor does to speech on the quick voice (real espeak speech): one plan
   finished at each factor, the range's ends and beyond. Pitch (median F0, semitones from factor
   1) and timbre (long-term average spectrum, mean dB from factor 1 up to 4 kHz) should not move;
   the speaking rate says where the tempo leaves natural speech (conversation runs at about
   120-250 words a minute).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from index_tts.engines import select_engine
from index_tts.engines.base import EngineRequest, GenerationParams
from index_tts.engines.quick import QuickVoiceEngine
from index_tts.engines.timing import DURATION_FACTOR_RANGE, pick_factor

TEXT = ("The old man walked slowly down the long road to the quiet town. "
        "He stopped at the small bakery and bought some fresh bread for dinner.")
FACTORS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5)
SR = 16000


def reference_voice(f0: float = 140.0, seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.06 * np.sin(2 * np.pi * 3 * t))) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2)
    return (0.25 * wave / np.abs(wave).max()).astype(np.float32)


def request(params: GenerationParams) -> EngineRequest:
    return EngineRequest(text=TEXT, voice=reference_voice(), voice_sr=SR, voice_key="bench-voice", generation=params)


def target_errors(engine, params: GenerationParams, n: int) -> list[float]:
    """|length - target| in ms for n targets spread over the reachable range (one plan)."""
    plan = engine.plan(request(params))
    rate = plan.sample_rate
    low, high = (plan.samples(f) / rate for f in DURATION_FACTOR_RANGE)
    errors = []
    for target in np.linspace(low * 1.01, high * 0.99, n):
        factor = pick_factor(plan.samples, round(target * rate), rate)
        errors.append(abs(len(engine.finish(plan, factor).audio) / rate - target) * 1000)
    return errors


def median_f0_hz(audio: np.ndarray, rate: int) -> float:
    import pyworld

    x = audio.astype(np.float64) / 32768
    f0, _ = pyworld.harvest(x, rate, f0_floor=60, f0_ceil=500, frame_period=5)
    return float(np.median(f0[f0 > 0]))


def ltas_db(audio: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """Long-term average power spectrum (dB) over frames within 40 dB of the loudest."""
    x = audio.astype(np.float64) / 32768
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    return 10 * np.log10(power[energy > energy.max() * 1e-4].mean(axis=0) + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="also measure an IndexTTS2 model directory (e.g. the tiny one)")
    parser.add_argument("--targets", type=int, default=12)
    args = parser.parse_args()
    params = GenerationParams(seed=11, max_text_tokens_per_segment=20)
    quick = QuickVoiceEngine.load()
    runs = [("quick voice", quick, params)]
    if args.model_dir:
        runs.append((f"IndexTTS2 {args.model_dir}", select_engine("indextts2", args.model_dir)[0](),
                     GenerationParams(seed=11, max_mel_tokens=120, max_text_tokens_per_segment=20)))
    for name, engine, run_params in runs:
        errors = target_errors(engine, run_params, args.targets)
        print(f"{name}: {len(errors)} targets, |error| mean {np.mean(errors):.2f} ms, max {max(errors):.2f} ms")

    plan = quick.plan(request(params))
    words, pauses = len(TEXT.split()), params.interval_silence_ms / 1000 * (len(plan.feats) - 1)
    measured = {}
    for factor in FACTORS:
        audio = quick.finish(plan, factor).audio
        measured[factor] = (len(audio) / plan.sample_rate, median_f0_hz(audio, plan.sample_rate), ltas_db(audio))
    _, base_f0, base_ltas = measured[1.0]
    print("\nquick voice: factor, seconds, F0 shift (semitones), timbre change (LTAS, mean dB to 4 kHz), words/minute")
    for factor, (seconds, f0, spectrum) in measured.items():
        timbre = float(np.mean(np.abs((spectrum - spectrum.max()) - (base_ltas - base_ltas.max()))[:186]))
        print(f"{factor:>6.2f} {seconds:>8.2f} {12 * math.log2(f0 / base_f0):>+8.2f} {timbre:>8.2f} "
              f"{60 * words / (seconds - pauses):>7.0f}")


if __name__ == "__main__":
    main()
