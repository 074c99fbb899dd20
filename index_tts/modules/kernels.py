"""Which kernel each class of linear/convolution shape uses on this machine, measured once.

Why: the fastest way to multiply differs by CPU. On an AMD Zen 5, torch's default fp32 path (MKL)
ran the GPT's 3-row decode products at a fifth of oneDNN's speed; on an Intel Xeon MKL was fine
and the oneDNN-packed path lost in the DiT (docs/performance.md). So nothing is assumed: for each
shape class the candidates are timed here, the fastest one the mode allows is used, and the
choice is cached per machine (CPU model, ISA flags, torch version, thread count) in
`~/.cache/index_tts/kernels-<key>.json`.

Candidates:
- "default": torch's own fp32 path (`F.linear` / `addmm`, `F.conv1d`);
- "onednn": fp32 with the weight pre-packed for oneDNN (`packed_linear.KernelLinear`);
- "onednn4": the same packed weight, with fewer than 4 rows padded to 4 (zero rows, dropped after):
  on the Zen 4 of docs/performance.md oneDNN's 4-row kernel streamed the GPT's weights 1-8%
  faster than its 3-row one (beam-3 decode), with the same values in the real rows;
- "onednn_dense": oneDNN on the weight as it lies, unpacked (reordered per call): for weights that
  must stay views of their memory-mapped file (the voice front end), where packing would copy them;
- "panel": our own kernel for few rows (`panel_linear.c`, compiled for this CPU at first use): the
  weight as one sequential stream of 64-column panels; only offered for classes under 16 rows (the
  beam-3 decode), and only where it could be built (a C compiler, torch's OpenMP runtime);
- "bf16": bf16 weights and inputs, fp32 out; only for layers that may run in reduced precision
  (the DiT and BigVGAN in the balanced and fast modes) and only where the CPU has native bf16
  arithmetic (AVX512-BF16 or AMX, read from the CPU flags);
- "panel_bf16": the panel kernel with bf16 weights (half the bytes to stream; inputs and sums stay
  fp32, so no bf16 arithmetic is needed): a reduced choice for the GPT's decode layers, which only
  the fast mode runs reduced;
- "bf16_cast": as "bf16", with the weight cast at each call and nothing held: the reduced choice
  for weights that stay in their file (the voice front end, which only the fast mode runs reduced).
  Casting 16 MB costs ~1 ms where the 256-row product saves ~5 (Intel Xeon with AMX).

`INDEX_TTS_KERNELS=default|onednn|onednn4|onednn_dense|panel|bf16|panel_bf16|bf16_cast` forces one candidate everywhere it
is allowed (a comma-separated list: the first one each class allows); tests run the conformance
fixtures under each.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

CANDIDATES = ("default", "onednn", "onednn4", "onednn_dense", "panel", "bf16", "panel_bf16", "bf16_cast", "bf16_product")
# candidates that change the numbers: the reduced modes only
REDUCED = ("bf16", "panel_bf16", "bf16_cast", "bf16_sdpa", "bf16_tiles", "bf16_product")
PANEL_MAX_ROWS = 16
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
FORCE_ENV = "INDEX_TTS_KERNELS"
_lock = threading.Lock()


def cpu_info() -> dict:
    """CPU model (with family/model numbers) and the ISA flags that matter here, from
    /proc/cpuinfo's first processor (empty elsewhere)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name", "")
    if "cpu family" in fields and "model" in fields:
        cpu = f"{cpu} (family {fields['cpu family']}, model {fields['model']})"
    flags = set(fields.get("flags", "").split())
    return {"cpu": cpu, "flags": [f for f in ISA_FLAGS if f in flags]}


def native_bf16() -> bool:
    """The CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16): detected, not guessed."""
    flags = set(cpu_info()["flags"])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def onednn_packing_available() -> bool:
    """oneDNN and the (internal, inductor-used) packed-linear ops exist in this torch build."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    return hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")


def machine_key() -> dict:
    """What the timings depend on: the machine, torch, the threads, and our own C kernels' source
    (a changed kernel is timed again)."""
    from index_tts.modules.native import sources_digest

    info = cpu_info()
    return {"cpu": info["cpu"], "flags": info["flags"], "torch": torch.__version__, "threads": torch.get_num_threads(),
            "native": sources_digest()}


def cache_path(key: dict | None = None) -> Path:
    key = machine_key() if key is None else key
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "index_tts" / f"kernels-{digest}.json"


def forced() -> tuple[str, ...]:
    """The candidates INDEX_TTS_KERNELS forces, in order of preference (comma-separated)."""
    names = tuple(n.strip() for n in os.environ.get(FORCE_ENV, "").split(",") if n.strip())
    for name in names:
        if name not in CANDIDATES:
            raise ValueError(f"{FORCE_ENV} must name candidates among {', '.join(CANDIDATES)}, got {name!r}")
    return names


# ---------------------------------------------------------------------------------------------
# Timing


def interleaved_ms(ops: dict[str, "callable"], rounds: int = 7) -> dict[str, float]:
    """Best-of-`rounds` ms per candidate, the candidates timed in turn within each round, so a
    burst of foreign load on a shared machine hits all of them rather than one."""
    for op in ops.values():
        op(), op()
    best = {name: float("inf") for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            start = time.perf_counter()
            op()
            best[name] = min(best[name], 1000 * (time.perf_counter() - start))
    return best


def padded_rows(x: torch.Tensor, rows: int = 4) -> torch.Tensor:
    """x [n, in] with zero rows appended up to `rows` ("onednn4"; n < rows)."""
    return torch.cat([x, x.new_zeros(rows - x.size(0), x.size(1))])


def linear_op(candidate: str, n_in: int, n_out: int, rows: int):
    """One [rows, n_in] x [n_in, n_out] product (+ bias) with this candidate, as a call to time."""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(n_out, n_in, generator=g), torch.randn(n_out, generator=g)
    x = torch.randn(rows, n_in, generator=g)
    if candidate == "default":
        return lambda: F.linear(x, w, b)
    if candidate in ("panel", "panel_bf16"):
        from index_tts.modules import panel_linear

        panels = panel_linear.pack(w, torch.bfloat16 if candidate == "panel_bf16" else torch.float32)
        return lambda: panel_linear.linear(x, panels, b, n_out)
    if candidate == "onednn_dense":
        return lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    if candidate in ("onednn", "onednn4"):
        packed = torch.ops.mkldnn._reorder_linear_weight(w)
        if candidate == "onednn4" and rows < 4:
            return lambda: torch.ops.mkldnn._linear_pointwise(padded_rows(x), packed, b, "none", [], "")[:rows]
        return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
    if candidate == "bf16_cast":
        return lambda: torch.ops.mkldnn._linear_pointwise(x.bfloat16(), w.bfloat16(), b.bfloat16(), "none", [], "").float()
    packed, b16 = torch.ops.mkldnn._reorder_linear_weight(w.bfloat16()), b.bfloat16()
    return lambda: torch.ops.mkldnn._linear_pointwise(x.bfloat16(), packed, b16, "none", [], "").float()


def conv_op(candidate: str, signature: dict, length: int):
    """One Conv1d/ConvTranspose1d of this signature on [1, in, length], as a call to time."""
    g = torch.Generator().manual_seed(0)
    s = signature
    transposed = s["transposed"]
    shape = (s["in"], s["out"] // s["groups"], s["k"]) if transposed else (s["out"], s["in"] // s["groups"], s["k"])
    w, b = torch.randn(shape, generator=g), torch.randn(s["out"], generator=g)
    x = torch.randn(1, s["in"], length, generator=g)
    conv = F.conv_transpose1d if transposed else F.conv1d
    kw = dict(stride=s["stride"], padding=s["padding"], dilation=s["dilation"], groups=s["groups"])
    if candidate == "bf16":
        w16, b16 = w.bfloat16(), b.bfloat16()
        return lambda: conv(x.bfloat16(), w16, b16, **kw).float()
    if candidate == "bf16_product":  # stride 1, no groups, no padding (packed_linear.conv_as_product)
        from index_tts.modules.packed_linear import conv_as_product, product_weight

        w16, b16 = product_weight(w), b.bfloat16()
        return lambda: conv_as_product(x.bfloat16(), w16, b16, s["k"], s["dilation"]).float()
    return lambda: conv(x, w, b, **kw)


# ---------------------------------------------------------------------------------------------
# The per-machine table


class KernelTable:
    """{class key: {candidate: ms}} for this machine, kept in the user cache."""

    def __init__(self, path: Path | None = None):
        self.path = cache_path() if path is None else path
        self.times: dict[str, dict[str, float]] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("machine") == machine_key():
                self.times = data.get("times", {})
        except (OSError, ValueError):
            pass

    def best(self, key: str, candidates: tuple[str, ...], make_op) -> str:
        """The fastest of `candidates` for this class (a forced one wins when it is allowed).
        make_op(candidate) -> a call to time; only classes not in the cache are timed."""
        force = forced()
        if force:  # the first forced candidate this class allows, else the first allowed
            return next((c for c in force if c in candidates), candidates[0])
        if len(candidates) == 1:
            return candidates[0]
        with _lock:
            row = self.times.setdefault(key, {})
            todo = [c for c in candidates if c not in row]
            if todo:
                measured = interleaved_ms({c: make_op(c) for c in candidates})
                row.update({c: round(measured[c], 4) for c in candidates})  # all timed together
                self.dirty = True
            return min(candidates, key=lambda c: row[c])

    def linear(self, n_in: int, n_out: int, rows: int, candidates: tuple[str, ...]) -> str:
        return self.best(f"linear {n_in}->{n_out} rows {rows}", candidates,
                         lambda c: linear_op(c, n_in, n_out, rows))

    def conv(self, signature: dict, length: int, candidates: tuple[str, ...]) -> str:
        s = signature
        key = (f"{'convT' if s['transposed'] else 'conv'}1d {s['in']}->{s['out']} k{s['k']} s{s['stride']} "
               f"d{s['dilation']} g{s['groups']} len {length}")
        return self.best(key, candidates, lambda c: conv_op(c, signature, length))

    def save(self) -> None:
        if not self.dirty:
            return
        from index_tts.fileio import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine_key(), "times": self.times}
        atomic_write_text(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
        self.dirty = False

    def summary(self) -> list[str]:
        """One line per class: the times and the winner among fp32 and among all."""
        lines = []
        for key in sorted(self.times):
            row = self.times[key]
            fp32 = {c: t for c, t in row.items() if c not in REDUCED}
            win32 = min(fp32, key=fp32.get) if fp32 else "-"
            winall = min(row, key=row.get)
            cells = ", ".join(f"{c} {t:.2f} ms" for c, t in sorted(row.items()))
            reduced_only = key.startswith("attention") or key.endswith(" reduced")  # classes exact mode never uses
            lines.append(f"{key}: {cells} -> " + (f"reduced {winall}" if reduced_only else f"exact {win32}"
                         + (f", reduced {winall}" if set(REDUCED) & set(row) else "")))
        return lines


def describe_cached() -> dict:
    """For `doctor` and the bench: the machine key, the cache file and its choices."""
    from index_tts.modules import multinomial, native, score_filter

    table = KernelTable()
    return {"machine": machine_key(), "native_bf16": native_bf16(), "onednn": onednn_packing_available(),
            "native": native.unavailable_reason() or "yes", "sampling_draw": multinomial.unavailable_reason() or "yes",
            "score_filter": score_filter.unavailable_reason() or "yes",
            "cache": str(table.path), "cached": table.path.is_file(), "choices": table.summary()}


def report_lines() -> list[str]:
    """The CPU kernels measured on this machine, as the engine will use them (for `doctor`)."""
    k = describe_cached()
    m = k["machine"]
    lines = [f"Kernels: {m['cpu']}; ISA {' '.join(m['flags']) or '-'}; torch {m['torch']}, {m['threads']} threads; "
             f"native bf16: {'yes' if k['native_bf16'] else 'no'}; oneDNN packing: {'yes' if k['onednn'] else 'no'}; "
             f"our compiled kernels (panel linear, decode attention): {k['native']}; "
             f"our sampling draw: {k['sampling_draw']}; our score filter: {k['score_filter']}"]
    if not k["cached"]:
        return lines + [f"  not measured yet (the engine measures them at its first load; cache {k['cache']})"]
    convs = [c for c in k["choices"] if c.startswith("conv")]
    lines.append(f"  measured choices ({k['cache']}):")
    lines += [f"  {c}" for c in k["choices"] if not c.startswith("conv")]
    if convs:
        to_bf16 = sum(c.endswith("reduced bf16") for c in convs)
        lines.append(f"  {len(convs)} convolution classes (BigVGAN): bf16 in the reduced modes for {to_bf16}")
    return lines
