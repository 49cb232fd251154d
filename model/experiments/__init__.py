"""Reproducible versions of the seed notebook's experiments, written up in docs/experiments/REPORT.md.

    python -m model.experiments all      # or: init, lr-finder, batch-size

Modules, one purpose each: `common` (data, fresh models, seeds), `inits` (initialisation schemes),
`lr_finder`, `batch_size`, `claims` (verdict rules on the measured numbers), `figures`, `report`.
"""
