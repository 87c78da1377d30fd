"""Experiments: a YAML config in, curves, tables and a plot out (``musicrec run``).

- ``experiments.config``: the config schema, validated before anything runs.
- ``experiments.runner``: one cell per (agent, seed), in parallel processes, resumable.
- ``experiments.report``: ``results.csv``, ``results.md`` and ``curves.png``.
- ``experiments.tblog``: the TensorBoard tags of a training run.
- ``experiments/configs/``: ``quickstart.yaml`` (minutes) and ``benchmark.yaml``.
"""
