"""The validated forms of an experiment config, and the limits it is checked against.

``ExperimentConfig`` (``task: agents``: environment, seeds, budget, agents, sweep axes)
and ``EmbeddingExperimentConfig`` (``task: embeddings``), built only by
``experiments.config.parse_config``; the schema and the limits are documented there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from musicrec_gym import ENV_ID, ENV_ID_KWARGS, LONG_TERM_ENV_ID, SLATE_ENV_ID

#: Environment ids a config may name (each must have a native vector environment).
ENV_IDS = tuple(ENV_ID_KWARGS)
#: What a config may ask for: ``agents`` (the default) or ``embeddings``.
TASKS = ("agents", "embeddings")
#: The forms of a sweep key, for messages.
AGENT_SWEEP_KEYS = (
    "agents.<agent name>.params.<parameter>",
    "agents.<agent name>.train_steps",
    "env.kwargs.<argument>",
    "env.num_envs",
)
DEFAULT_N_SESSIONS = 20_000
DEFAULT_K = 10
#: Registry keys of the references every experiment evaluates.
REFERENCE_TYPES = ("random", "oracle")
#: The upper reference of the normalised score, per environment id: the greedy oracle where
#: greedy is near optimal (docs/optimum.md), the planner where it is not.
UPPER_REFERENCE = {ENV_ID: "oracle", LONG_TERM_ENV_ID: "planner", SLATE_ENV_ID: "oracle"}


def reference_types(env_id: str) -> tuple[str, str]:
    """The registry keys of the two references every experiment on ``env_id`` evaluates."""
    return ("random", UPPER_REFERENCE[env_id])


DEFAULT_NUM_ENVS = 64
DEFAULT_EVAL_SEED = 1_000_000

# Limits. A config is small and hand-written: anything past these is a mistake (or an
# attack), refused before any time or memory goes into it. The file and YAML limits
# (MAX_CONFIG_BYTES, MAX_YAML_*) are ``musicrec_gym.yamlconfig``'s; the name, path and
# seed limits (MAX_NAME_LENGTH, MAX_PATH_LENGTH, MAX_SEED) ``musicrec_gym.validation``'s.
#: Longest name of a grid variant, ``<agent>@<label>=<value>,...`` (so that the
#: TensorBoard directory ``<env>__<experiment>__<variant>__seed<k>`` stays < 256 bytes).
MAX_VARIANT_NAME_LENGTH = 160
#: Most seeds (each at most ``MAX_SEED``).
MAX_SEEDS = 100
#: Most listed agents.
MAX_AGENTS = 100
#: Largest training budget of a cell, in env steps (PPO runs ~1k steps/s on one core).
MAX_TRAIN_STEPS = 100_000_000
#: Most greedy evaluation episodes of a cell.
MAX_EVAL_EPISODES = 100_000
#: Most listeners stepped at once.
MAX_NUM_ENVS = 4096
#: Most values of one sweep key.
MAX_SWEEP_VALUES = 1_000
#: Most cells (grid variants x seeds, references included) of one experiment.
MAX_CELLS = 10_000
#: Embeddings task: longest recommendation list, and sizes of a synthetic source.
MAX_K = 1_000
MAX_N_SESSIONS = 10_000_000
MAX_N_TRACKS = 1_000_000
MAX_N_LISTENERS = 1_000_000


@dataclass(frozen=True)
class EnvConfig:
    """The environment every cell trains and evaluates on.

    Attributes:
        id: Environment id (``MusicRec-v0`` or ``MusicRecLongTerm-v0``).
        kwargs: Keyword arguments of ``MusicRecVectorEnv`` besides ``num_envs`` (the
            id's own included: ``long_term: true`` for ``MusicRecLongTerm-v0``).
        num_envs: Listeners stepped at once during training.
    """

    id: str = ENV_ID
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_envs: int = DEFAULT_NUM_ENVS


@dataclass(frozen=True)
class BudgetConfig:
    """How much each cell trains and evaluates.

    Attributes:
        train_steps: Env steps per (agent, seed), all listeners summed.
        eval_episodes: Greedy evaluation episodes per (agent, seed).
        eval_seed: Root of the evaluation seeds (the same episodes for every agent).
    """

    train_steps: int
    eval_episodes: int
    eval_seed: int = DEFAULT_EVAL_SEED


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the experiment.

    Attributes:
        name: Unique label (tables, plots, directory names).
        type: Registry key of ``agents.base.make_agent``.
        params: Hyperparameters passed to the agent's constructor.
        train_steps: Per-agent training budget (``None``: ``budget.train_steps``).
        implicit: True for a reference the config did not list.
    """

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    train_steps: int | None = None
    implicit: bool = False


@dataclass(frozen=True)
class SweepAxis:
    """One key of a ``sweep:`` block: every value is combined with every value of the others.

    Attributes:
        path: The key as written, e.g. ``agents.LinUCB.params.alpha``.
        values: The values, in the order written (each already validated).
        field: Where a value goes: ``("params", "alpha")`` or ``("train_steps",)`` of an
            agent, ``("kwargs", "reward")`` or ``("num_envs",)`` of the environment,
            ``("embedding", "ns_exponent")`` of an embeddings experiment.
        agent: The agent it belongs to; ``None`` for an axis that applies to every cell.
        column: Its column in the results tables (``params.alpha``, ``env.reward``, ...).
        label: Its short name in cell names (``alpha``, ``reward``).
    """

    path: str
    values: tuple[Any, ...]
    field: tuple[str, ...]
    agent: str | None = None
    column: str = ""
    label: str = ""


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config.

    Attributes:
        name: Experiment name.
        env: Environment settings.
        seeds: Experiment seeds (one cell per agent and seed).
        budget: Training and evaluation budget.
        agents: The listed agents, then the implicit references.
        source: Where the config was read from (for messages).
        sweep: The grid's axes (empty: one variant per agent).
    """

    name: str
    env: EnvConfig
    seeds: tuple[int, ...]
    budget: BudgetConfig
    agents: tuple[AgentSpec, ...]
    source: str = field(default="<config>", compare=False)
    sweep: tuple[SweepAxis, ...] = ()

    @property
    def task(self) -> str:
        """``agents``."""
        return "agents"

    def agent(self, name: str) -> AgentSpec:
        """The agent called ``name``."""
        for spec in self.agents:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def upper_reference(self) -> AgentSpec:
        """The agent whose return is 1 on the normalised score (oracle, or planner)."""
        return self.reference(UPPER_REFERENCE[self.env.id])

    def reference(self, kind: str) -> AgentSpec:
        """The agent used as the ``random``, ``oracle`` or ``planner`` reference."""
        for spec in self.agents:
            if spec.type == kind and not spec.params:
                return spec
        raise KeyError(kind)

    def train_steps(self, spec: AgentSpec) -> int:
        """The training budget of one agent."""
        return spec.train_steps if spec.train_steps is not None else self.budget.train_steps

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON and for comparing two configs)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


@dataclass(frozen=True)
class SessionSource:
    """Where an embeddings experiment's sessions come from.

    Attributes:
        kind: ``synthetic`` (a synthetic world's logged sessions, regenerated from its
            seed) or a kind of ``musicrec_gym.data.sources`` (real logs read from ``path``).
        path: The file or directory of a real source (``None`` for ``synthetic``).
        seed: Seed of the synthetic world and of its logged sessions (0: the built-in
            world's).
        n_sessions: Logged sessions generated for a synthetic source.
        n_tracks: Catalog size of a synthetic world.
        n_listeners: Listeners of a synthetic world.
        options: Reader options of a real source, as ``(name, value)`` pairs (e.g.
            ``gap_minutes`` of ``lastfm``; see ``musicrec_gym.data.sources``).
    """

    kind: str = "synthetic"
    path: str | None = None
    seed: int = 0
    n_sessions: int = DEFAULT_N_SESSIONS
    n_tracks: int = 1000
    n_listeners: int = 1000
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EmbeddingExperimentConfig:
    """A validated ``task: embeddings`` config: playlist completion over a grid.

    One cell per grid point (``EmbeddingConfig`` settings) and seed.

    Attributes:
        name: Experiment name.
        sessions: Where the sessions come from.
        embedding: ``EmbeddingConfig`` fields held fixed (never ``seed``).
        k: Length of the recommendation list.
        seeds: Training seeds of the embeddings (one cell per grid point and seed).
        sweep: The grid's axes (``embedding.<field>``).
        source: Where the config was read from (for messages).
    """

    name: str
    sessions: SessionSource
    embedding: dict[str, Any]
    k: int
    seeds: tuple[int, ...]
    sweep: tuple[SweepAxis, ...] = ()
    source: str = field(default="<config>", compare=False)

    @property
    def task(self) -> str:
        """``embeddings``."""
        return "embeddings"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON and for comparing two configs)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["task"] = self.task
        return data
