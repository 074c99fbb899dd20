"""What the machine did while we measured: foreign CPU load, memory, bandwidth.

The dev VM has 2 cores shared with other jobs, and with 2 OpenMP threads any foreign load wrecks
timings (upstream-cpu-baseline.md §3). So every measured window records the CPU time the *other*
processes used: busy jiffies of the whole machine (/proc/stat) minus this process's own
(/proc/self/stat), divided by the window length.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass

import torch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.12      # --wait-quiet: other processes below this many cores ...
QUIET_SECONDS = 15.0    # ... for this long
CLEAN_CORES = 0.05      # a window is "clean" when foreign load averaged at most this


def _machine_busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    return sum(fields[:8]) - fields[3] - fields[4]


def _own_ticks() -> int:
    with open("/proc/self/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(v) for v in fields[11:15])  # utime stime cutime cstime


@dataclass
class CpuWindow:
    """A measured window: wall seconds, our cores and other processes' cores (averages)."""

    wall_s: float = 0.0
    own_cores: float = 0.0
    foreign_cores: float = 0.0

    @property
    def clean(self) -> bool:
        return self.foreign_cores <= CLEAN_CORES


class cpu_window:
    """`with cpu_window() as w:` ... then w.wall_s, w.own_cores, w.foreign_cores."""

    def __enter__(self) -> CpuWindow:
        self.result = CpuWindow()
        self._t, self._busy, self._own = time.perf_counter(), _machine_busy_ticks(), _own_ticks()
        return self.result

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t
        own = (_own_ticks() - self._own) / CLOCK_TICKS
        busy = (_machine_busy_ticks() - self._busy) / CLOCK_TICKS
        self.result.wall_s = wall
        self.result.own_cores = own / wall if wall > 0 else 0.0
        self.result.foreign_cores = max(0.0, busy - own) / wall if wall > 0 else 0.0


def wait_quiet(max_wait_s: float, log=print) -> float:
    """Block until other processes used < QUIET_CORES for QUIET_SECONDS; returns seconds waited.

    Gives up after `max_wait_s` (the run then goes on, and its windows show the load)."""
    start = time.monotonic()
    quiet_since = time.monotonic()
    last_note = 0.0
    while True:
        with cpu_window() as w:
            time.sleep(1.0)
        now = time.monotonic()
        if w.foreign_cores >= QUIET_CORES:
            quiet_since = now
            if now - last_note > 30:
                log(f"waiting for a quiet machine: other processes use {w.foreign_cores:.2f} cores")
                last_note = now
        elif now - quiet_since >= QUIET_SECONDS:
            return now - start
        if now - start > max_wait_s:
            log(f"gave up waiting for a quiet machine after {max_wait_s:.0f} s")
            return now - start


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gib() -> float:
    """Peak resident set since start or the last `reset_peak_rss`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_breakdown_gib() -> dict:
    """Current RSS split into anonymous memory and file-backed pages (and the peak so far, VmHWM;
    AnonHugePages: the anonymous memory in 2 MB pages, such as the GPT's panels). Weights loaded
    with mmap are file-backed: resident once read, but clean, so the kernel can drop them under
    pressure."""
    from index_tts.modules import huge_pages

    out = {"AnonHugePages": huge_pages.resident_bytes() / 2**30}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(line.split()[1]) / 2**20
    except OSError:
        pass
    return out


class BandwidthProbe:
    """Best-of-`repeats` read bandwidth (bytes/s) of summing a float32 array much larger than the
    caches, with torch's threads: what streaming weights from RAM can reach here. The sum is our
    compiled one where it is built (one plain sequential stream per thread: ~26 GB/s on two Xeon
    cores, where torch's sum read ~22 and would have put the floor below what the panel kernel
    streams), else torch's. The array is in 2 MB pages where the GPT's panels are
    (modules/huge_pages.py), which reads faster than 4 KB pages here, so the floor stays the best
    the weights' memory allows. It is made once, so a probe can be taken often (between stretches
    of a decode) without mapping 1 GiB each time."""

    def __init__(self, gib: float = 1.0):
        from index_tts.modules import huge_pages

        self.array = huge_pages.empty(int(gib * 2**30)).view(torch.float32).fill_(1.0)  # also pages it in

    def __call__(self, repeats: int = 5) -> float:
        from index_tts.modules import native

        lib = native.library()
        read = ((lambda: lib.panel_linear_stream_sum(self.array.data_ptr(), self.array.numel())) if lib is not None
                else self.array.sum)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            read()
            best = min(best, time.perf_counter() - t)
        return self.array.numel() * 4 / best


BF16_PROBE_SIZE = 1024  # the probe's square product: 2.1 GFLOP, ~1-2 ms on two Xeon cores with AMX


def bf16_tflops(repeats: int = 5) -> float | None:
    """Best-of-`repeats` throughput (TFLOP/s) of a bf16 matrix product with torch's threads, where
    the CPU multiplies bf16 natively (else None): what the reduced modes' DiT and BigVGAN can get
    now. On the Intel Xeon VM of docs/performance.md a bare AMX tile loop ran at 0.7 to 2.2
    TFLOP/s a core from one minute to the next, most often near half (another guest sharing the
    physical core's tile unit, it seems). That moves our balanced and fast runs and not the
    original-style path's fp32, so the bench records it with each run."""
    from index_tts.modules.kernels import native_bf16

    if not native_bf16():
        return None
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(BF16_PROBE_SIZE, BF16_PROBE_SIZE, generator=g).bfloat16() for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * BF16_PROBE_SIZE**3 / best / 1e12


def memory_read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """One probe (BandwidthProbe), its array freed after."""
    return BandwidthProbe(gib)(repeats)


def gpt_bytes_per_decode_step(gpt: torch.nn.Module) -> int:
    """Bytes of weights one decode step must read: every GPT-2 block, ln_f, final_norm and the
    mel head (the conditioning encoders and position tables are not used per step)."""
    used = [gpt.gpt, gpt.final_norm, gpt.mel_head]
    seen, total = set(), 0
    for module in used:  # packed weights are (non-persistent) buffers, so count those too
        for p in [*module.parameters(), *module.buffers()]:
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


def machine_info() -> dict:
    from index_tts.modules.kernels import cpu_info

    cpu = cpu_info()
    info = {
        "cpu": cpu["cpu"] or platform.processor(),
        "isa_flags": cpu["flags"],
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
