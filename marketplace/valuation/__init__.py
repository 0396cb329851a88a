"""Valuation: LinFiK labels from LoGra-projected per-sample gradients (DESIGN.md §4)."""

__all__: list[str] = []
