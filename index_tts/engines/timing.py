"""Duration control: picking the one tempo (duration factor) at which planned speech fills a
target length. The engines (engines.base.TimedEngine) draw the content first and say exactly how
long it will be at any factor; this finds the factor and refuses (OutOfReach) a target no factor
reaches. The service turns OutOfReach into ValidationError("duration").

Accuracy: a plan's length moves in steps (IndexTTS2: one mel frame, 256 samples = 11.6 ms, the
frames apportioned across its segments; the quick voice: one 5 ms WORLD frame per segment that
steps at once), so the factor found lands within about half a step of the target; the promise is
max(1 %, 20 ms).
"""

from __future__ import annotations

from typing import Callable

from index_tts.engines.base import GenerationParams

DURATION_FACTOR_RANGE = GenerationParams.RANGES["duration_factor"]  # (0.5, 2.0): measured in docs/creator-guide.md
TOLERANCE_S = 0.020
TOLERANCE_FRACTION = 0.01


def tolerance_s(target_s: float) -> float:
    """How far from a target duration a result may end: 1 % or 20 ms, whichever is larger."""
    return max(TOLERANCE_S, TOLERANCE_FRACTION * target_s)


class OutOfReach(ValueError):
    """No factor in the range makes the speech last the target; the message gives the range."""


def pick_factor(length: Callable[[float], int], target: int, sample_rate: int,
                factor_range: tuple[float, float] = DURATION_FACTOR_RANGE) -> float:
    """The factor in `factor_range` whose `length(factor)` (samples, non-decreasing in the factor)
    is nearest `target` samples. OutOfReach naming the reachable range in seconds when even the
    range's ends miss the target by more than the tolerance."""
    lo, hi = factor_range
    shortest, longest = length(lo), length(hi)
    slack = tolerance_s(target / sample_rate) * sample_rate
    if not shortest - slack <= target <= longest + slack:
        natural = length(1.0) / sample_rate
        raise OutOfReach(f"{target / sample_rate:.2f} s is out of reach for this text: it can take "
                                          f"{shortest / sample_rate:.2f}-{longest / sample_rate:.2f} s (duration factor "
                                          f"{lo:g}-{hi:g}; {natural:.2f} s at its natural pace)")
    a, b = _crossing(length, target, lo, hi)
    return min((a, b), key=lambda f: abs(length(f) - target))


def fit_factor(length: Callable[[float], int], limit: int, preferred: float = 1.0,
               factor_range: tuple[float, float] = DURATION_FACTOR_RANGE) -> float:
    """At most `limit` samples: `preferred` when that fits, else the slowest factor that ends by
    the limit, else the range's fastest (the caller sees the overrun in the length)."""
    lo = factor_range[0]
    if length(preferred) <= limit:
        return preferred
    if length(lo) >= limit:
        return lo
    return _crossing(length, limit, lo, preferred)[0]


def _crossing(length: Callable[[float], int], target: int, a: float, b: float) -> tuple[float, float]:
    """Factors a < b, close together, with length(a) < target <= length(b) (bisection, far finer
    than one step of the length)."""
    for _ in range(48):
        middle = (a + b) / 2
        if length(middle) < target:
            a = middle
        else:
            b = middle
    return a, b
