"""Experiments: a YAML config in, curves, tables and a plot out (``musicrec run``).

- ``experiments.config``: the config schema, validated before anything runs.
- ``experiments.runner``: one cell per (agent, seed), in parallel processes, resumable.
- ``experiments.report``: ``results.csv``, ``results.md`` and ``curves.png``.
- ``experiments.tblog``: the TensorBoard tags of a training run.
- ``experiments.sweep``: grids (``sweep:``) expanded into named variants.
- ``experiments.backends``: the cells as Ray Tune trials (``--backend ray``).
- ``experiments.embedding_task``: ``task: embeddings`` cells (playlist completion).
- ``experiments/configs/``: ``quickstart.yaml`` (minutes), ``benchmark.yaml``,
  ``sweep_linucb.yaml`` (a grid) and ``embedding_ns_exponent.yaml``.
"""
