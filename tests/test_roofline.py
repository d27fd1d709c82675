"""evolve.eval.roofline: the fraction of a device's float32 peak."""

from evolve.eval.roofline import FP32_PEAK_OPS, fp32_fraction


def test_fraction_of_known_devices_only():
    assert abs(FP32_PEAK_OPS["NVIDIA H200"] - 3.345e13) < 1e10
    assert abs(fp32_fraction(1689.0, "NVIDIA H200") - 0.0505) < 1e-3  # docs/results.md: 5.0 %
    assert fp32_fraction(5.0, "cpu") is None
