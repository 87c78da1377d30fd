"""Experiment configs: a YAML file, validated into dataclasses before anything runs.

Every mistake is reported as a ``ConfigError`` that names the file, the line, the key
path, what was wrong and what is allowed, e.g.::

    quickstart.yaml, line 12: agents[3].params.alpah: unknown parameter 'alpah' for
    agent 'linucb'. Did you mean 'alpha'? Allowed: alpha, ridge.

Unknown keys are errors at every level (never silently ignored).

Limits (module constants; a value past one is a ``ConfigError`` naming the key and the
limit, checked before any time or memory goes into it): a config file of at most
``MAX_CONFIG_BYTES`` (1 MB) whose YAML has at most ``MAX_YAML_NODES`` (50,000) nodes with
its aliases expanded, ``MAX_YAML_ALIASES`` (1,000) alias uses and ``MAX_YAML_DEPTH`` (64)
levels of nesting, and no recursive alias; names of at most ``MAX_NAME_LENGTH`` (64)
characters and grid variant names of at most ``MAX_VARIANT_NAME_LENGTH`` (160); at most
``MAX_SEEDS`` (100) seeds, each < 2**32; ``train_steps`` <= ``MAX_TRAIN_STEPS`` (10**8),
``eval_episodes`` <= ``MAX_EVAL_EPISODES`` (10**5), ``num_envs`` <= ``MAX_NUM_ENVS``
(4,096); at most ``MAX_AGENTS`` (100) agents, ``MAX_SWEEP_VALUES`` (1,000) values per
sweep key and ``MAX_CELLS`` (10,000) cells (grid variants, references included, times
seeds), counted before the grid is expanded. Numbers are never booleans (``true`` is not
``1``), and an int is never written as a float (``1e30``, ``2.0``).

Schema::

    name: quickstart           # required; experiment name, [A-Za-z0-9_.+-]; default run dir
                               #   runs/<name>
    env:                       # optional
      id: MusicRec-v0          # optional; the only id with a native vector environment
      kwargs: {}               # optional; MusicRec-v0 keyword arguments: world (directory
                               #   or null for the built-in world; relative paths are
                               #   relative to the working directory), reward
                               #   (listen | time | event), profile_features (bool),
                               #   max_steps (int in [1, 10000])
      num_envs: 64             # optional; listeners stepped at once during training
    seeds: [0, 1]              # required; distinct ints >= 0, one cell per agent and seed
    budget:                    # required
      train_steps: 50000       # required; env steps per (agent, seed), all listeners summed
      eval_episodes: 1000      # required; greedy evaluation episodes per (agent, seed)
      eval_seed: 1000000       # optional; the evaluation episodes of experiment seed k
                               #   are reset with SeedSequence([eval_seed, k]): the same
                               #   listeners and randomness for every agent
    agents:                    # required; non-empty list
      - name: LinUCB           # required; unique label, [A-Za-z0-9_.+-]
        type: linucb           # required; registry key (agents.base.agent_types())
        params: {alpha: 1.0}   # optional; validated against the agent's fields
        train_steps: 200000    # optional; overrides budget.train_steps

    sweep:                     # optional; a grid: every combination of the listed values
      agents.LinUCB.params.alpha: [0.5, 1.0, 2.0]   # an agent's hyperparameter
      agents.DQN.train_steps: [20000, 50000]        # an agent's training budget
      env.kwargs.reward: [listen, time]             # an environment option (every agent)
      env.num_envs: [16, 64]

A sweep key is ``agents.<agent name>.params.<parameter>``,
``agents.<agent name>.train_steps``, ``env.kwargs.<argument>`` or ``env.num_envs``; its
value a non-empty list of distinct values, each validated as if written in place, and
the key must not also be set in place. An agent's variants are the combinations of the
environment axes and its own axes (an axis of another agent does not multiply it); each
variant runs with every seed, and is named ``<agent>@<label>=<value>,...`` (e.g.
``LinUCB@alpha=0.5``, ``random@reward=time``) in tables and directory names. The
references are evaluated at every environment grid point. Seeds are not a sweep key:
they are the top-level ``seeds`` list.

``task: embeddings`` selects the other kind of experiment (``EmbeddingExperimentConfig``):
track embeddings trained on logged sessions and scored on playlist completion::

    name: embedding_ns_exponent
    task: embeddings
    sessions:                  # optional; where the sessions come from
      kind: synthetic          #   synthetic: a synthetic world's logged sessions, made
      seed: 0                  #   from its seed (0: the built-in world's); or a kind of
      n_sessions: 20000        #   musicrec_gym.data.sources (mssd, lastfm, playlists,
                               #   events) with a `path` and reader `options`
    embedding: {dim: 8}        # optional; EmbeddingConfig fields except seed
    k: 10                      # optional; length of the recommendation list
    seeds: [0, 1, 2]           # required; the embeddings' training seeds
    sweep:
      embedding.ns_exponent: [-1.0, -0.5, 0.0, 0.5, 0.75, 1.0]

The ``random`` and ``oracle`` references are evaluated for every seed even when the
config does not list them (an agent of that type with no ``params`` is used as the
reference when listed), so that every agent gets a normalised score
``(agent - random) / (oracle - random)`` per seed.
"""

from __future__ import annotations

from pathlib import Path

from experiments.agents_config import parse_agents
from experiments.embedding_config import parse_embeddings, real_source_kinds
from experiments.schema import (
    AGENT_SWEEP_KEYS,
    DEFAULT_EVAL_SEED,
    DEFAULT_K,
    DEFAULT_N_SESSIONS,
    DEFAULT_NUM_ENVS,
    ENV_IDS,
    MAX_AGENTS,
    MAX_CELLS,
    MAX_EVAL_EPISODES,
    MAX_K,
    MAX_N_LISTENERS,
    MAX_N_SESSIONS,
    MAX_N_TRACKS,
    MAX_NUM_ENVS,
    MAX_SEEDS,
    MAX_SWEEP_VALUES,
    MAX_TRAIN_STEPS,
    MAX_VARIANT_NAME_LENGTH,
    REFERENCE_TYPES,
    TASKS,
    AgentSpec,
    BudgetConfig,
    EmbeddingExperimentConfig,
    EnvConfig,
    ExperimentConfig,
    SessionSource,
    SweepAxis,
)
from musicrec_gym.errors import unknown_name_message
from musicrec_gym.validation import (
    MAX_NAME_LENGTH,
    MAX_PATH_LENGTH,
    MAX_SEED,
    NAME_PATTERN,
    Validator,
)
from musicrec_gym.yamlconfig import (
    MAX_CONFIG_BYTES,
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    Located,
    read_config_file,
)

__all__ = [
    "AGENT_SWEEP_KEYS",
    "DEFAULT_EVAL_SEED",
    "DEFAULT_K",
    "DEFAULT_NUM_ENVS",
    "DEFAULT_N_SESSIONS",
    "ENV_IDS",
    "MAX_AGENTS",
    "MAX_CELLS",
    "MAX_CONFIG_BYTES",
    "MAX_EVAL_EPISODES",
    "MAX_K",
    "MAX_NAME_LENGTH",
    "MAX_NUM_ENVS",
    "MAX_N_LISTENERS",
    "MAX_N_SESSIONS",
    "MAX_N_TRACKS",
    "MAX_PATH_LENGTH",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_SWEEP_VALUES",
    "MAX_TRAIN_STEPS",
    "MAX_VARIANT_NAME_LENGTH",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "NAME_PATTERN",
    "REFERENCE_TYPES",
    "TASKS",
    "AgentSpec",
    "BudgetConfig",
    "EmbeddingExperimentConfig",
    "EnvConfig",
    "ExperimentConfig",
    "SessionSource",
    "SweepAxis",
    "load_config",
    "parse_config",
    "read_config_file",
    "real_source_kinds",
]


def parse_config(
    text: str, source: str = "<config>"
) -> ExperimentConfig | EmbeddingExperimentConfig:
    """Validate the text of an experiment config.

    Args:
        text: YAML text.
        source: Name of the file (used in messages).

    Returns:
        The validated config: an ``ExperimentConfig`` (with the implicit references
        appended to ``agents``), or an ``EmbeddingExperimentConfig`` for
        ``task: embeddings``.

    Raises:
        ConfigError: Anything wrong, with the file, line and key path.
    """
    doc = Located(text, source)
    v = Validator(doc)
    root = doc.data
    task = root.get("task", "agents") if isinstance(root, dict) else "agents"
    if task not in TASKS:
        raise doc.error(("task",), unknown_name_message("task", str(task), TASKS))
    if task == "embeddings":
        return parse_embeddings(v, root)
    return parse_agents(v, root)


def load_config(path: str | Path) -> ExperimentConfig | EmbeddingExperimentConfig:
    """Read and validate an experiment config file.

    Args:
        path: The YAML file.

    Raises:
        ConfigError: The file is missing or invalid (file, line, key path, what is allowed).
    """
    path = Path(path)
    return parse_config(read_config_file(path), source=str(path))
