"""The IndexTTS2 speed benchmark: `python -m index_tts.bench --help`, figures in docs/performance.md.

- `workloads`: the fixed workloads (ref5s-100tok as the upstream CPU baseline defines it, short,
  long, smoke) with forced code counts, so runs with random weights compare.
- `clock`: per-stage timing by wrapping the engine's module methods (nothing in the engine knows).
- `original`: the "original-style" path (upstream's per-segment recomputation, HF-style growing KV
  cache re-indexed every step, torch's default kernels), measured in the same process.
- `machine`: foreign CPU load during each measured window, waiting for a quiet machine, peak RSS,
  memory bandwidth and the weight-streaming floor of GPT decoding.
"""
