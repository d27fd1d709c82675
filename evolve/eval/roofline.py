"""The float32 peaks of the accelerators we measure on, for the roofline fraction that the
benchmarks report beside GPops/s (``scripts/bench_eval.py``, ``scripts/check_gpu.py``).

A peak counts one float32 operation per lane and clock: streaming multiprocessors x
float32 lanes each x boost clock (an FMA counts as one operation, as one of our ``fma``
instructions does). CPUs have no entry: their clock and vector width vary with the
machine, so their fraction is not reported.
"""

from __future__ import annotations

# device_kind (as JAX names it) -> float32 operations per second
FP32_PEAK_OPS: dict[str, float] = {
    "NVIDIA H200": 132 * 128 * 1.98e9,  # 3.35e13
    "NVIDIA H100 80GB HBM3": 132 * 128 * 1.98e9,
}


def fp32_fraction(gpops: float, device_kind: str) -> float | None:
    """``gpops`` (1e9 instruction-points a second) as a fraction of the device's float32
    peak, or None for a device without a known peak."""
    peak = FP32_PEAK_OPS.get(device_kind)
    return None if peak is None else gpops * 1e9 / peak
