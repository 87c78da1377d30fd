"""Experiments: a YAML config in, curves, tables and a plot out (``musicrec run``).

Configs (validated before anything runs):

- ``experiments.config``: ``load_config``/``parse_config`` and the documented schema.
- ``experiments.schema``: the validated config records and the limits.
- ``experiments.agents_config``, ``experiments.embedding_config``: one parser per task.
- ``experiments.sweep_config``: the ``sweep:`` block; ``experiments.value_checks``: env
  kwargs, agent parameters and seeds.
- ``experiments.sweep``: grids expanded into named variants.

Engine (what every task runs on; nothing here imports a task or the runner):

- ``experiments.task``: ``Task``, what differs between the kinds of experiment.
- ``experiments.progress``: progress events and bars.
- ``experiments.outputs``: atomic writes, reading ``result.json`` back.
- ``experiments.lifecycle``: the run directory's lock and Ctrl-C.
- ``experiments.executors``: cells in this process or a pool of processes.
- ``experiments.backends``: the cells as Ray Tune trials (``--backend ray``).
- ``experiments.limits``: what a cell's numbers can be.

Tasks and the run:

- ``experiments.cells``: ``task: agents`` cells, one per (agent, seed).
- ``experiments.embedding_task``: ``task: embeddings`` cells (playlist completion).
- ``experiments.report``: ``results.csv``, ``results.md`` and ``curves.png``.
- ``experiments.tblog``: the TensorBoard tags of a training run.
- ``experiments.runner``: ``run_experiment``, resumable, on either backend.
- ``experiments/configs/``: ``quickstart.yaml`` (minutes), ``benchmark.yaml``,
  ``sweep_linucb.yaml`` (a grid) and ``embedding_ns_exponent.yaml``.
"""
