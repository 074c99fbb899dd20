"""IndexTTS-2.5 in the bench, alone or side by side with IndexTTS2 on the same workload:

    python -m index_tts.bench --model 2.5|both --model-dir DIR_2 --model-dir-25 DIR_25
        [--workload ref5s-100tok|short|long|smoke] [--mode exact|balanced|fast] [--runs 3] [--warmup 1]
        [--prompt cold|warm] [--json out.json]

Both models speak the same audio length: 2.5's codes run at 25 Hz and each becomes two codec frames,
so a 2.0 segment forced to n codes is a 2.5 segment forced to n / 2 codes (both give int(n * 1.72)
mel frames at duration_factor 1). The text ids, the reference and the DiT/BigVGAN work are the
same; what differs is the GPT (half the decode steps, one speaker row instead of 32 latents and no
speaker conformer) and the step from codes to DiT input (2.0's teacher-forced latent pass versus
2.5's codec decoder, shown in one row). Runs, medians and the stage clock are the main bench's
(`runner.measure`, `runner.summarise`); random weights from `make_model_dir --config official` and
`--config official-2.5` give full-size figures.
"""

from __future__ import annotations

import gc
import time
from dataclasses import replace
from pathlib import Path

import torch

from index_tts.bench import machine, runner
from index_tts.bench.__main__ import load_engine
from index_tts.bench.clock import STAGES, StageClock, patched
from index_tts.bench.workloads import REF_SR, WORKLOADS, Workload, reference_signal
from index_tts.emotion import EmotionSpec

MODEL_LABELS = {"2.0": "IndexTTS2", "2.5": "IndexTTS-2.5"}
LABELS = {
    "reference": "reference processing", "conditioning": "conditioning (speaker + emotion)",
    "gpt_prefill": "GPT prefill", "gpt_decode": "GPT decode (incl. search overhead)",
    "latent": "codes -> DiT input (2.0 latent pass / 2.5 codec decoder)", "dit": "DiT / CFM", "vocoder": "BigVGAN",
}


def workload_25(w: Workload) -> Workload:
    """The same text and audio length for 2.5: half the codes per segment."""
    if any(n % 2 for n in w.codes):
        raise ValueError(f"workload {w.name}: code counts must be even to halve them, got {w.codes}")
    return replace(w, name=w.name + "@2.5", segments=tuple((t, n // 2) for t, n in w.segments))


def load_engine_25(model_dir: Path, device: str):
    from index_tts.engines.indextts25 import IndexTTS25Engine
    from index_tts.engines.indextts2 import missing_files  # the engine contract re-exports it

    missing = missing_files(model_dir, "2.5")
    if missing:
        raise SystemExit(f"--model-dir-25 {model_dir} is not a complete IndexTTS-2.5 model directory: lacks {', '.join(missing)}")
    engine = IndexTTS25Engine(model_dir, device)
    start = time.perf_counter()
    engine._load_modules(lambda f, s: None, text=False)
    return engine, time.perf_counter() - start


def instrument_25(engine, clock: StageClock):
    """The 2.5 engine's stages, on the main bench's stage names (`latent` = the codec decoder)."""
    from index_tts.engines import indextts25

    gpt, s2mel = engine.gpt, engine.s2mel
    return patched([
        (engine, "voice_prompt", clock.wrap(engine.voice_prompt, "reference")),
        (engine, "emotion_vector", clock.wrap(engine.emotion_vector, "conditioning")),
        (gpt, "get_emovec", clock.wrap(gpt.get_emovec, "conditioning")),
        (indextts25, "generate25", clock.wrap(indextts25.generate25, "gpt_decode")),  # minus the prefill
        (gpt, "prefill", clock.wrap(gpt.prefill, "gpt_prefill")),
        (gpt, "decode_step", clock.wrap(gpt.decode_step, "gpt_decode_forward", "probe")),
        (engine.codec, "decode", clock.wrap(engine.codec.decode, "latent")),
        (s2mel.cfm, "inference", clock.wrap(s2mel.cfm.inference, "dit")),
        (s2mel.cfm.estimator, "forward", clock.wrap(s2mel.cfm.estimator.forward, "dit_forward", "probe")),
        (engine.w2v, "forward", clock.wrap(engine.w2v.forward, "w2v_bert", "probe")),
        (engine.bigvgan, "forward", clock.wrap(engine.bigvgan.forward, "vocoder")),
    ])


def run_25(engine, workload: Workload, quality: str = "exact", prompt: str = "cold", seed: int = runner.SEED):
    """One timed 2.5 run (as runner.run_ours): reference audio in memory -> int16 waveform."""
    wav = reference_signal(workload.ref_seconds)
    vocab = engine.gpt.cfg.number_text_tokens
    segments = [torch.tensor([ids + [1]], dtype=torch.int32) for ids in workload.text_ids(vocab)]  # upstream's trailing 1
    params = runner.workload_params(workload, quality, seed)
    clock, first_audio = StageClock(), []
    if prompt == "cold":
        engine._voices.clear()
    machine.reset_peak_rss()
    with instrument_25(engine, clock), machine.cpu_window() as window:
        start = time.perf_counter()
        generator = torch.Generator(device=engine.device).manual_seed(seed)
        voice = engine.voice_prompt(wav, REF_SR, key="bench-reference")
        emovec = engine.emotion_vector(voice, EmotionSpec(), "", generator)
        out, _ = engine.synthesize_tokens(voice, emovec, segments, params, generator, lang=0, duration_factor=1.0,
                                          on_segment=lambda i, pcm, sr: first_audio.append(time.perf_counter() - start))
        pcm = out.to(torch.int16).numpy()
        total = time.perf_counter() - start
    return runner._record("ours-2.5", clock, window, total, pcm, first_audio[0] if first_audio else total,
                          workload, engine.device)


def format_table(result: dict) -> str:
    """The per-stage table of each measured model (IndexTTS2 and/or IndexTTS-2.5) and, with both, their ratio."""
    names = [v for v in ("2.0", "2.5") if v in result]
    both = len(names) == 2
    first = result[names[0]]
    lines = [f"workload {result['workload']}: {result['workload_description']} (2.5: codes {result['codes_25']})",
             f"mode {result['mode']}, {result['prompt']} prompt, {first['runs']} runs, device {result['device']}",
             "| stage | " + " | ".join(MODEL_LABELS[v] for v in names) + (" | 2.5 / 2.0 |" if both else " |"),
             "|---" * (len(names) + 1 + both) + "|"]

    def row(label, get, digits=3):
        values = [get(result[v]) for v in names]
        cells = [f"{x:.{digits}f}" if x is not None else "—" for x in values]
        ratio = ""
        if both:
            x, y = values
            ratio = f" | {y / x:.2f}" if x and y else " | —"
        lines.append(f"| {label} | " + " | ".join(cells) + ratio + " |")

    for name in STAGES:
        row(LABELS[name] + " (s)", lambda s, n=name: s["stages_s"][n])
    row("**total (s)**", lambda s: s["total_s"])
    row("audio (s)", lambda s: s["audio_s"])
    row("**RTF**", lambda s: s["rtf"], 2)
    row("first audio (s)", lambda s: s["first_audio_s"])
    row("decode ms/token", lambda s: s["decode_ms_per_token"], 1)
    row("peak RSS (GiB)", lambda s: s["peak_rss_gib"], 2)
    clean = all(result[v]["all_clean"] for v in names)
    lines.append("load: " + ", ".join(f"{MODEL_LABELS[v]} {result['load_s'][v]:.1f} s" for v in names)
                 + "; other processes (cores): " + " / ".join(str(result[v]["foreign_cores"]) for v in names)
                 + ("" if clean else "  -- NOT clean: figures distorted"))
    return "\n".join(lines)


def run(args, log) -> dict:
    """`python -m index_tts.bench --model 2.5|both`: the workload on IndexTTS-2.5 (its @2.5 form:
    half the codes, the same audio) and, with both, on IndexTTS2 first. One model in memory at a
    time: each model's figures (and peak RSS) are its own."""
    w2, w25 = WORKLOADS[args.workload], workload_25(WORKLOADS[args.workload])
    result = {"workload": w2.name, "workload_description": w2.description, "codes_25": w25.codes, "mode": args.mode,
              "prompt": args.prompt, "device": args.device, "machine": machine.machine_info(), "load_s": {}}
    if args.model == "both":
        engine, result["load_s"]["2.0"] = load_engine(args.model_dir, args.device)
        log(f"IndexTTS2: {args.warmup} warm-up + {args.runs} runs")
        result["2.0"] = runner.summarise(runner.measure(lambda: runner.run_ours(engine, w2, args.mode, args.prompt),
                                                        args.runs, args.warmup, None, log))
        del engine
        gc.collect()
    engine, result["load_s"]["2.5"] = load_engine_25(args.model_dir_25, args.device)
    log(f"IndexTTS-2.5: {args.warmup} warm-up + {args.runs} runs")
    result["2.5"] = runner.summarise(runner.measure(lambda: run_25(engine, w25, args.mode, args.prompt),
                                                    args.runs, args.warmup, None, log))
    return result
