"""Not the product: the demo, the traffic simulator, the benchmarks (not in the wheel or images)."""
