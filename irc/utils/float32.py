"""float32 limits without importing numpy (the CLI checks options before anything heavy loads)."""
from __future__ import annotations

import math

FLOAT32_MAX = 3.4028234663852886e38  # np.finfo(np.float32).max
FLOAT32_TINY = 1.1754943508222875e-38  # np.finfo(np.float32).tiny: the smallest normal number


def float32_number(v: float, divisor: bool = False) -> bool:
    """Finite in float32; a ``divisor`` also at least float32's smallest normal number in
    magnitude (so its reciprocal and products stay finite)."""
    if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
        return False
    return not divisor or abs(v) >= FLOAT32_TINY
