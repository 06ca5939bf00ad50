"""Research on real benchmarks: experiment grids, derived benchmarks and the published tables.

Not installed with the product (pyproject's package list holds `training` and `backend` only); run it from the
repository root, e.g. `python -m research.experiments --bench ../shared/benchmarks/nuaa`.
"""
