"""Discrete-event simulation of the farm: the real scheduler, a calibrated cost model,
and baselines on the same workloads (pure: no torch, no clocks, no I/O)."""
