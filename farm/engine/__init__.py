"""EngineCore.step() wires the pure scheduler to an executor (in-process or Ray)."""
