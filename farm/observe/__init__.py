"""Observability: Prometheus metrics (local /metrics or Ray's metrics export) and
structured logs carrying film, scene, unit and phase ids."""
