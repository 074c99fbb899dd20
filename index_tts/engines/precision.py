"""Kernels and precision of the IndexTTS2 engine, per machine and per quality mode.

- exact: upstream's computation. fp32 on CPU with each linear shape's fastest fp32 kernel on this
  machine (torch's default or oneDNN-packed, measured and cached, `modules/kernels.py`); on CUDA
  the GPT in fp16 as upstream's use_fp16, everything else fp32.
- balanced: the GPT and everything feeding it exactly as in exact mode (same codes for the same
  seed); the DiT/CFM and BigVGAN, which only turn the codes into sound, in bf16 where the hardware
  has it: on a CPU with native bf16 (AVX512-BF16 or AMX, detected from the CPU flags) each layer
  whose bf16 kernel measured fastest; on CUDA under autocast (bf16). Elsewhere fp32, as exact.
- fast: balanced plus fewer DiT steps and a shorter DiT prompt, one w2v-BERT pass per new voice
  (engines/indextts2.py), and on the CPU the GPT's decode layers with bf16 weights where that
  measured faster (half the bytes a decode step streams) and the voice front end's layers in bf16
  where the cast-per-call measured faster; the codes may then differ from exact mode's
  (docs/performance.md says how often).
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn.functional as F

from index_tts.modules import dit_attention, native, panel_linear
from index_tts.modules.alias_free import Activation1d
from index_tts.modules.conformer import Conv2dSubsampling2
from index_tts.modules.kernels import KernelTable, native_bf16, onednn_packing_available
from index_tts.modules.kv_cache import KVCache
from index_tts.modules.packed_linear import (KernelLinear, apply_kernels, conv_input_lengths, detach_from_file,
                                              keep_bf16_copies, linear_candidates, reduced_precision)
from index_tts.modules.unified_voice import GPT2Body
from index_tts.modules.static_decode import StaticStepGPT
from index_tts.modules.dit import Attention, bf16_attention
from index_tts.modules.wavenet import WN, SConv1d

# CUDA only, off by default until measured on a GPU (docs/performance.md): capture the GPT decode
# step as a CUDA graph (static-shape step), and torch.compile the DiT.
CUDA_GRAPHS_ENV = "INDEX_TTS_CUDA_GRAPHS"
COMPILE_DIT_ENV = "INDEX_TTS_COMPILE_DIT"

REDUCED_MODES = ("balanced", "fast")
ATTENTION_KERNELS = ("default", "bf16", "bf16_sdpa")  # the DiT attention's candidates (`_attention_kernels`; + "bf16_tiles" with AMX)
# Typical rows each module's linears multiply at the official size: 3 beams per GPT decode step,
# the conditioners' ~5 s of features, the DiT's 2 CFG branches x (prompt + new) frames.
GPT_ROWS = {"": 128, "gpt.": 3, "mel_head": 3}
# The decode step timed as a whole (`_decode_step_kernels`): blocks of the GPT's width (79 MB of
# fp32 weights each at full size) at the position of a short prompt plus ~100 codes.
DECODE_STEP_BLOCKS = 2
DECODE_STEP_POSITIONS = 160
DIT_ROWS = 1204
# The DiT's WaveNet runs on the new frames and their left context only (dit.DiT.forward): 2 CFG
# branches x ~190 frames for ~100 codes.
WAVENET_FRAMES = 384
FEATURE_ROWS = 256
BIGVGAN_EXAMPLE_FRAMES = 32
# What only turns a new voice (or emotion reference) into conditioning: w2v-BERT and these GPT
# submodules. On the CPU their weights stay views of the memory-mapped checkpoint, read in place
# with torch's default kernels (packing would copy them into anonymous memory), and the engine
# drops their resident pages once a new voice is built (engines/file_pages.py): they cost memory
# only while a voice is being built (docs/performance.md, "Memory").
GPT_FRONT_END = ("conditioning_encoder", "perceiver_encoder", "emo_conditioning_encoder", "emo_perceiver_encoder")


def prepare_cpu(engine, kernels: str = "auto") -> dict[str, dict[str, int]]:
    """Put each CPU module's layers on their measured kernels and hold each weight once.

    kernels="plain" keeps torch's default fp32 layers untouched and every weight in anonymous
    memory (the bench's original-style path, holding everything as upstream does); otherwise the
    voice front end (GPT_FRONT_END, w2v-BERT) stays file-backed. Returns {module: {kernel: layer count}}.
    """
    modules = {"gpt": engine.gpt, "s2mel": engine.s2mel, "w2v": engine.w2v, "codec": engine.codec,
               "campplus": engine.campplus, "bigvgan": engine.bigvgan}
    counts: dict[str, dict[str, int]] = {}
    file_backed: dict[str, tuple[str, ...]] = {}
    if kernels != "plain":
        file_backed = {"gpt": tuple(n for n in GPT_FRONT_END if hasattr(engine.gpt, n)), "w2v": ("",)}
        table = KernelTable()
        exact_step, reduced_step = _decode_step_kernels(engine.gpt.gpt, table)
        blocks = ("gpt.h",)
        counts["gpt"] = apply_kernels(engine.gpt, table, GPT_ROWS, reduced_ok=True, in_place=file_backed["gpt"],
                                      panels=blocks if exact_step else (), reduced_panels=blocks if reduced_step else ())
        for layer in engine.gpt.modules():
            if isinstance(layer, Conv2dSubsampling2):  # the conditioners' input convolution as one product
                layer.conv_as_product = True
        for layer in engine.bigvgan.modules():
            if isinstance(layer, Activation1d):  # BigVGAN's anti-aliased activations in one pass each
                layer.in_one_pass = native.available()
        counts["w2v"] = apply_kernels(engine.w2v, table, FEATURE_ROWS, reduced_ok=True, in_place=("",))
        counts["dit"] = apply_kernels(engine.s2mel.cfm, table, DIT_ROWS, reduced_ok=True)
        counts["dit"].update(_wavenet_kernels(engine.s2mel.cfm, table))
        counts["dit"].update(_attention_kernels(engine.s2mel.cfm, table))
        counts["s2mel"] = apply_kernels(engine.s2mel, table, FEATURE_ROWS)
        for name in ("codec", "campplus"):
            counts[name] = apply_kernels(modules[name], table, FEATURE_ROWS)
        example = torch.zeros(1, engine.bigvgan.cfg.num_mels, BIGVGAN_EXAMPLE_FRAMES)
        counts["bigvgan"] = apply_kernels(engine.bigvgan, table, FEATURE_ROWS, reduced_ok=True,
                                          conv_lengths=conv_input_lengths(engine.bigvgan, example))
        for decoder in (engine.s2mel.cfm, engine.bigvgan):
            keep_bf16_copies(decoder)
    for name, module in modules.items():
        detach_from_file(module, skip=file_backed.get(name, ()))
    # also hands back what loading freed (malloc_trim), with or without panels
    panel_linear.hold_in_huge_pages([m for m in engine.gpt.modules() if isinstance(m, KernelLinear)])
    return counts


def _decode_step_kernels(body, table: KernelTable) -> tuple[bool, bool]:
    """Whether exact mode, and the reduced modes, run the GPT's decode blocks as one call of our C
    step (`gpt_decode`), which needs all four linears of every block on panels.

    The per-layer times cannot say: the C step also does a block's layer norms, gelu, residual adds
    and attention without torch's ~10 ops a block and their Python, and its threads need no barrier
    between layers, while a layer or two may time a few percent faster on another kernel (on an
    Intel Xeon, MKL's 3-row kernel against the panels: 0.53 against 0.57 ms, at the noise's size).
    So the step is a class of its own: a synthetic body of the GPT's width and DECODE_STEP_BLOCKS
    blocks, each linear on its per-layer choice (torch's step), against all on panels (the C step)."""
    if not native.available():
        return False, False
    d, heads, rows = body.h[0].ln_1.normalized_shape[0], body.h[0].attn.heads, GPT_ROWS["gpt."]
    shapes = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)]  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    allowed, reduced = linear_candidates(rows, reduced_ok=True)
    per_layer = [table.linear(i, o, rows, allowed) for i, o in shapes]
    per_layer_reduced = [table.linear(i, o, rows, allowed + reduced) for i, o in shapes]

    def op(kernels: list[str]):
        torch.manual_seed(0)
        synthetic = GPT2Body(d, DECODE_STEP_BLOCKS, heads).eval()
        for block in synthetic.h:
            for (parent, name), kernel in zip(_block_linears(block), kernels):
                layer = getattr(parent, name)
                setattr(parent, name, KernelLinear(layer.weight, layer.bias, True, kernel, kernel))
        cache = KVCache(DECODE_STEP_BLOCKS, rows, heads, DECODE_STEP_POSITIONS + 1, d // heads, torch.float32,
                        torch.device("cpu"), zeroed=True)
        x = torch.randn(rows, d)

        def step():
            with torch.no_grad():
                synthetic.step(x, cache, DECODE_STEP_POSITIONS, DECODE_STEP_POSITIONS + 1)
        return step

    # Each: every layer on panels already, or the C step measured faster than the per-layer kernels.
    key = f"decode step {d}x{heads} {DECODE_STEP_BLOCKS} blocks rows {rows}"
    exact_step = per_layer == ["panel"] * 4 or table.best(f"{key} fp32", ("layers", "c_step"), lambda c: op(
        ["panel"] * 4 if c == "c_step" else per_layer)) == "c_step"
    with reduced_precision():  # one block around all the timing, as around a decode: bf16 copies made once
        reduced_step = "panel_bf16" in reduced and (per_layer_reduced == ["panel_bf16"] * 4 or table.best(
            f"{key} reduced", ("layers", "c_step"), lambda c: op(
                ["panel_bf16"] * 4 if c == "c_step" else per_layer_reduced)) == "c_step")
    table.save()
    return exact_step, reduced_step


def _block_linears(block) -> list[tuple]:
    return [(block.attn, "c_attn"), (block.attn, "c_proj"), (block.mlp, "c_fc"), (block.mlp, "c_proj")]


def _wavenet_kernels(cfm, table: KernelTable) -> dict[str, int]:
    """The DiT's weight-normed WaveNet convolutions (a third of a balanced DiT forward while they
    ran in fp32) get a bf16 choice for the reduced modes too, where it measured faster."""
    if not (onednn_packing_available() and native_bf16()):
        return {}
    chosen: dict[str, int] = {}
    cond_layers = {id(m.cond_layer) for m in cfm.modules() if isinstance(m, WN)}
    for module in cfm.modules():
        if isinstance(module, SConv1d):
            c = module.conv.conv
            signature = {"in": c.in_channels, "out": c.out_channels, "k": c.kernel_size[0], "stride": 1, "padding": 0,
                         "dilation": c.dilation[0], "groups": 1, "transposed": False}
            one_frame = id(module) in cond_layers  # the time embedding: a matrix-vector product (SConv1d)
            length = 1 if one_frame else WAVENET_FRAMES
            module.reduced_kernel = table.conv(signature, length, ("default", "bf16") + (() if one_frame else ("bf16_product",)))
            chosen[module.reduced_kernel] = chosen.get(module.reduced_kernel, 0) + 1
    table.save()
    return {f"{kernel} weight-normed conv (reduced modes)": n for kernel, n in chosen.items() if kernel != "default"}


def _attention_kernels(cfm, table: KernelTable) -> dict[str, int]:
    """The DiT's attention (a fifth of a balanced forward in fp32) gets a bf16 choice for the reduced
    modes where one measured faster than torch's fp32 kernel on the DiT's shape: `bf16_attention`
    ("bf16": two bf16 GEMMs and a softmax; won on an AMD Zen 4 without AMX), torch's own flash
    attention on bf16 inputs ("bf16_sdpa": fp32 sums inside; on an Intel Xeon with AMX 5.2 ms
    against 8.2 and fp32's 12.5), or ours on AMX tiles where the CPU has them ("bf16_tiles",
    dit_attention.py). Each is timed with the output laid out for `wo`, as the DiT uses it."""
    layers = [m for m in cfm.modules() if isinstance(m, Attention)]
    if not (layers and native_bf16()):
        return {}
    shape = (2, layers[0].n_head, DIT_ROWS // 2, layers[0].head_dim)  # CFG batch 2 x 602 frames
    candidates = ATTENTION_KERNELS + (("bf16_tiles",) if shape[-1] == dit_attention.HEAD_DIM and dit_attention.available(shape[2]) else ())

    def op(candidate: str):
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
        mask = None  # as the DiT runs one utterance: every frame a key
        if candidate != "default":  # from and to bf16, as between the bf16 linears
            q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
        if candidate == "bf16_tiles":
            return lambda: dit_attention.attention_bf16(q, k, v)
        attention = (lambda: bf16_attention(q, k, v, mask)) if candidate == "bf16" else (
            lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        return lambda: attention().transpose(1, 2).reshape(shape[0], shape[2], -1)

    kernel = table.best("attention {}x{}x{}x{}".format(*shape), candidates, op)
    for layer in layers:
        layer.reduced_kernel = kernel
    table.save()
    return {f"{kernel} attention (reduced modes)": len(layers)} if kernel != "default" else {}


def _gib(modules) -> float:
    seen, total = set(), 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total / 2**30


def weights_gib(engine) -> float:
    """Bytes of every parameter and buffer the engine holds (packed ones included), in GiB."""
    return _gib(getattr(engine, name) for name in ("gpt", "s2mel", "w2v", "codec", "campplus", "bigvgan"))


def front_end_gib(engine) -> float:
    """Of those, the file-backed voice front end's (resident only while a new voice is built)."""
    if engine.device != "cpu" or engine.kernels == "plain":
        return 0.0
    return _gib([engine.w2v, *(getattr(engine.gpt, n) for n in GPT_FRONT_END if hasattr(engine.gpt, n))])


def reduced_precision_note(device: str) -> str:
    """What the balanced/fast modes run the DiT and BigVGAN in, on this device."""
    if device.startswith("cuda"):
        return "bf16 (CUDA autocast)"
    if native_bf16():
        return "bf16 where measured faster (the CPU has native bf16)"
    return "fp32 (this CPU has no native bf16: balanced computes as exact)"


def decoder_precision(device: str, quality: str):
    """Context for the DiT/CFM and BigVGAN calls of one segment in this quality mode."""
    if quality not in REDUCED_MODES:
        return contextlib.nullcontext()
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return reduced_precision()


def gpt_precision(device: str, quality: str):
    """Context for the GPT and what feeds it (a new voice's front end, each segment's decode and
    latent pass): reduced only in the fast mode (balanced keeps exact mode's codes), and only on
    the CPU (CUDA runs the GPT in fp16 as upstream)."""
    if quality == "fast" and not device.startswith("cuda"):
        return reduced_precision()
    return contextlib.nullcontext()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def prepare_cuda(engine, gpt_dtype: torch.dtype = torch.float16) -> None:
    if getattr(engine, "fp16_gpt", True):
        engine.gpt.to(gpt_dtype)  # upstream: fp16 for 2.0, bf16 for 2.5; every other module stays fp32
    if _flag(COMPILE_DIT_ENV):
        engine.s2mel.cfm.estimator = torch.compile(engine.s2mel.cfm.estimator, dynamic=True)


def decode_model(engine):
    """What `generate` decodes with: the GPT, or its static step captured as a CUDA graph."""
    if engine.device.startswith("cuda") and _flag(CUDA_GRAPHS_ENV):
        if getattr(engine, "_static_gpt", None) is None:
            engine._static_gpt = StaticStepGPT(engine.gpt, graphs=True)
        return engine._static_gpt
    return engine.gpt
