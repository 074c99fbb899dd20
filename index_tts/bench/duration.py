"""python -m index_tts.bench.duration [--model-dir DIR] [--targets 12]

Duration control, measured (the figures in docs/creator-guide.md, "Timing"):
1. how far a target `duration` lands from the target, over targets spread across the reachable
   range (the quick voice; with --model-dir also that IndexTTS2 model, e.g. the tiny one);
2. what a duration factor does to speech on the quick voice (real espeak speech through the
   service): pitch (median F0, semitones from factor 1), timbre (long-term average spectrum, mean
   dB from factor 1) and speaking rate. Pitch and timbre should not move; the rate says where the
   tempo leaves natural speech (conversation runs at about 120-250 words a minute).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import math
import tempfile

import numpy as np

from index_tts.engines import select_engine
from index_tts.engines.quick import QuickVoiceEngine
from index_tts.quickvoice import voice as quickvoice
from index_tts.service import OUTPUT_SAMPLE_RATE, GenerationParams, Synthesizer, SynthesisRequest, ValidationError

TEXT = ("The old man walked slowly down the long road to the quiet town. "
        "He stopped at the small bakery and bought some fresh bread for dinner.")
FACTORS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5)


def reference_voice(f0: float = 140.0, seconds: float = 3.0, sr: int = 16000) -> tuple[int, np.ndarray]:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.06 * np.sin(2 * np.pi * 3 * t))) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2)
    return sr, (0.25 * wave / np.abs(wave).max()).astype(np.float32)


def ltas_db(audio: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """Long-term average power spectrum (dB) over frames within 40 dB of the loudest."""
    x = audio.astype(np.float64) / 32768
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    return 10 * np.log10(power[energy > energy.max() * 1e-4].mean(axis=0) + 1e-12)


def target_errors(synth: Synthesizer, voice, params: GenerationParams, n: int) -> list[float]:
    """|length - target| in ms for n targets spread over the reachable range."""
    request = SynthesisRequest(text=TEXT, voice=voice, generation=params)
    try:
        synth.render(SynthesisRequest(text=TEXT, voice=voice, generation=params, duration=3600.0))
    except ValidationError as e:  # its message gives the reachable range
        low, high = (float(x) for x in str(e).split("can take ")[1].split(" s")[0].split("-"))
    errors = []
    for target in np.linspace(low * 1.01, high * 0.99, n):
        rendered, _ = synth.render(replace(request, duration=float(target)))
        errors.append(abs(len(rendered.audio) / OUTPUT_SAMPLE_RATE - target) * 1000)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="also measure an IndexTTS2 model directory (e.g. the tiny one)")
    parser.add_argument("--targets", type=int, default=12)
    args = parser.parse_args()
    voice = reference_voice()
    params = GenerationParams(seed=11, max_text_tokens_per_segment=20)
    with tempfile.TemporaryDirectory() as data:
        engines = [("quick voice", QuickVoiceEngine.load)]
        if args.model_dir:
            engines.append(("IndexTTS2 " + args.model_dir, select_engine("indextts2", args.model_dir)[0]))
        for name, factory in engines:
            synth = Synthesizer(factory, data_dir=data).start()
            assert synth.wait_until_loaded(1800) == "ready", synth.status().error
            run_params = params if name == "quick voice" else GenerationParams(seed=11, max_mel_tokens=120, max_text_tokens_per_segment=20)
            errors = target_errors(synth, voice, run_params, args.targets)
            print(f"{name}: {len(errors)} targets, |error| mean {np.mean(errors):.2f} ms, max {max(errors):.2f} ms")

        # One plan (the same phonemes, voice and emotion), finished at every factor, the range's
        # ends and beyond (the engine's finish takes any factor; requests are held to the range).
        engine = QuickVoiceEngine.load()
        plan = engine.plan(SynthesisRequest(text=TEXT, voice=voice, generation=params).validate())
        measured = {}
        for factor in FACTORS:
            audio = engine.finish(plan, factor).audio
            measured[factor] = (len(audio) / OUTPUT_SAMPLE_RATE, quickvoice.analyse_voice(audio.astype(np.float32) / 32768,
                                                                                          OUTPUT_SAMPLE_RATE), ltas_db(audio))
        _, base_profile, base_ltas = measured[1.0]
        words, pauses = len(TEXT.split()), params.interval_silence_ms / 1000 * (len(plan.feats) - 1)
        print("\nquick voice: factor, seconds, F0 shift (semitones), timbre change (LTAS, mean dB), words/minute")
        for factor, (seconds, profile, spectrum) in measured.items():
            shift = 12 * math.log2(profile.f0_median_hz / base_profile.f0_median_hz)
            timbre = float(np.mean(np.abs((spectrum - spectrum.max()) - (base_ltas - base_ltas.max()))[:186]))  # to 4 kHz
            print(f"{factor:>6.2f} {seconds:>8.2f} {shift:>+8.2f} {timbre:>8.2f} {60 * words / (seconds - pauses):>7.0f}")


if __name__ == "__main__":
    main()
