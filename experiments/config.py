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

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musicrec_gym import ENV_ID
from musicrec_gym.errors import ConfigError, did_you_mean, unknown_name_message

#: Environment ids a config may name (each must have a native vector environment).
ENV_IDS = (ENV_ID,)
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
#: What a name (experiment or agent) may contain: it becomes part of directory names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
DEFAULT_NUM_ENVS = 64
DEFAULT_EVAL_SEED = 1_000_000

# Limits. A config is small and hand-written: anything past these is a mistake (or an
# attack), refused before any time or memory goes into it.
#: Largest config file, in bytes.
MAX_CONFIG_BYTES = 1_000_000
#: Most YAML nodes of a document once aliases are expanded (a "billion laughs" bomb of
#: nested aliases is refused here, before it is expanded).
MAX_YAML_NODES = 50_000
#: Most alias uses (``*anchor``) in a document.
MAX_YAML_ALIASES = 1_000
#: Deepest nesting of mappings and lists.
MAX_YAML_DEPTH = 64
#: Longest experiment or agent name (names become parts of directory names).
MAX_NAME_LENGTH = 64
#: Longest name of a grid variant, ``<agent>@<label>=<value>,...`` (so that the
#: TensorBoard directory ``<env>__<experiment>__<variant>__seed<k>`` stays < 256 bytes).
MAX_VARIANT_NAME_LENGTH = 160
#: Longest path (a world directory, a data file).
MAX_PATH_LENGTH = 4096
#: Most seeds, and the largest seed (seeds are 32-bit throughout).
MAX_SEEDS = 100
MAX_SEED = 2**32 - 1
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

Path_ = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class EnvConfig:
    """The environment every cell trains and evaluates on.

    Attributes:
        id: Environment id (``MusicRec-v0``).
        kwargs: Keyword arguments of ``MusicRecVectorEnv`` besides ``num_envs``.
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

    def reference(self, kind: str) -> AgentSpec:
        """The agent used as the ``random`` or ``oracle`` reference."""
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


# --------------------------------------------------------------------------- YAML


class _LimitedLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that refuses documents nested, aliased or expanded past the limits.

    It counts while composing (before anything is constructed), so an alias bomb or a
    deeply nested document fails in milliseconds with a message naming the file and line.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.aliases = 0
        self.nodes = 0

    def _refuse(self, message: str) -> ConfigError:
        mark = self.peek_event().start_mark if self.check_event() else None
        line = f", line {mark.line + 1}" if mark is not None else ""
        return ConfigError(f"{self.source}{line}: {message}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise self._refuse(
                    f"more than {MAX_YAML_ALIASES:,} aliases (*anchor); a config needs few"
                )
            return super().compose_node(parent, index)
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} YAML nodes; a config is far smaller")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise self._refuse(
                    f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases refer to themselves or expand past ``MAX_YAML_NODES``.

    Counts the nodes the document would have with every alias expanded, without
    expanding anything (each distinct node is visited once).
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_YAML_NODES:
                raise ConfigError(
                    f"{source}, line {node.start_mark.line + 1}: this value expands to more "
                    f"than {MAX_YAML_NODES:,} YAML nodes once its aliases (*anchor) are "
                    "expanded; a config is far smaller (is it an alias bomb?)"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError(
                    f"{source}, line {child.start_mark.line + 1}: an alias (*anchor) refers "
                    "to a value that contains it (a recursive structure); a config cannot "
                    "be recursive"
                )
            if id(child) not in sizes:
                stack.append((child, False))


class _Located:
    """A parsed YAML document with the line of every key and value, by key path.

    The document is read with ``_LimitedLoader`` (safe tags only; the nesting, aliases and
    expanded size limited by ``MAX_YAML_DEPTH``, ``MAX_YAML_ALIASES`` and
    ``MAX_YAML_NODES``), and ``text`` may have at most ``MAX_CONFIG_BYTES`` characters.
    """

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.key_lines: dict[Path_, int] = {}
        self.value_lines: dict[Path_, int] = {}
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{source}: the config is {len(text):,} characters long; the limit is "
                f"{MAX_CONFIG_BYTES:,} (a config is a short hand-written file)"
            )
        try:
            loader = _LimitedLoader(text, source)
            try:
                node = loader.get_single_node()
                if node is not None:
                    _check_expanded_size(node, source)
                    # Walk before constructing: constructing flattens merge keys in place.
                    self._walk(node, ())
                self.data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except ConfigError:
            raise
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = err.problem or err.context or "syntax error"
            raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: invalid YAML: {err}") from err
        except (ValueError, OverflowError, RecursionError) as err:
            # A scalar YAML cannot convert (a date like 2001-13-45, an int of more digits
            # than Python converts), or nesting past what the parser can hold.
            raise ConfigError(f"{source}: invalid YAML value: {err}") from err

    def _walk(self, node: yaml.Node, path: Path_, merged: bool = False) -> None:
        if merged:
            self.value_lines.setdefault(path, node.start_mark.line + 1)
        else:
            self.value_lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            merges: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    merges.append(value_node)
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"{self.source}, line {line}: {_dotted((*path, key))}: duplicate key "
                        f"{key!r} (first given on line {seen[key]})"
                    )
                seen[key] = line
                self.key_lines[(*path, key)] = line
                self._walk(value_node, (*path, key))
            # Keys merged in with `<<: *anchor` point at the anchor's lines; the mapping's
            # own keys win.
            for value_node in merges:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for sub in sources:
                    if not isinstance(sub, yaml.MappingNode):
                        continue
                    for key_node, item in sub.value:
                        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                        if (*path, key) not in self.key_lines:
                            self.key_lines[(*path, key)] = key_node.start_mark.line + 1
                            self._walk(item, (*path, key), merged=True)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.key_lines[(*path, i)] = item.start_mark.line + 1
                self._walk(item, (*path, i), merged=merged)

    def line(self, path: Path_, key: bool = False) -> int | None:
        """Line of the key (``key=True``) or the value at ``path``, else of its parent."""
        lines = self.key_lines if key else self.value_lines
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
            lines = self.value_lines
        return self.value_lines.get(())

    def error(self, path: Path_, message: str, key: bool = False) -> ConfigError:
        """A ``ConfigError`` "file, line N: key.path: message"."""
        line = self.line(path, key=key)
        where = f", line {line}" if line is not None else ""
        prefix = f"{_dotted(path)}: " if path else ""
        return ConfigError(f"{self.source}{where}: {prefix}{message}")


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------- validation


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__} ({text[:40]}...)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Validator:
    def __init__(self, doc: _Located) -> None:
        self.doc = doc

    def mapping(
        self,
        value: Any,
        path: Path_,
        required: tuple[str, ...],
        optional: tuple[str, ...],
        what: str,
    ) -> dict[str, Any]:
        if value is None and not path:
            raise self.doc.error(
                path,
                "the config is empty; it must be a mapping with keys "
                f"{', '.join((*required, *optional))}",
            )
        if not isinstance(value, dict):
            name = _dotted(path) or "the config"
            raise self.doc.error(
                path, f"{name} must be a mapping of {what}, got {_describe(value)}"
            )
        allowed = (*required, *optional)
        for key in value:
            if key not in allowed:
                raise self.doc.error(
                    (*path, key),
                    unknown_name_message("key", str(key), allowed),
                    key=True,
                )
        for key in required:
            if key not in value:
                raise self.doc.error(
                    path,
                    f"missing required key {key!r} (required: {', '.join(required)}; "
                    f"optional: {', '.join(optional) or 'none'})",
                    key=True,
                )
        return value

    def int_(self, value: Any, path: Path_, minimum: int, maximum: int | None = None) -> int:
        """An int (never a bool) in ``[minimum, maximum]``."""
        if not _is_int(value) or value < minimum:
            bound = "> 0" if minimum == 1 else f">= {minimum}"
            raise self.doc.error(
                path, f"must be an int {bound}, got {_describe(value)}{_int_hint(value)}"
            )
        if maximum is not None and value > maximum:
            raise self.doc.error(
                path,
                f"must be an int <= {maximum:,} (the documented limit for this key), "
                f"got {_describe(value)}",
            )
        return int(value)

    def name(self, value: Any, path: Path_) -> str:
        if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
            raise self.doc.error(
                path,
                f"must be a name of at most {MAX_NAME_LENGTH} characters (it becomes part "
                f"of directory names), got one of {len(value):,} characters "
                f"({value[:20]!r}...)",
            )
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            raise self.doc.error(
                path,
                "must be a name of letters, digits and _ . + - (starting with a letter or "
                f"digit; it becomes part of directory names), got {_describe(value)}",
            )
        return value

    def path_text(self, value: Any, path: Path_, what: str) -> str:
        """A file or directory path: a non-empty string of at most ``MAX_PATH_LENGTH``."""
        if not isinstance(value, str) or not value:
            raise self.doc.error(path, f"must be {what}, got {_describe(value)}")
        if len(value) > MAX_PATH_LENGTH or "\0" in value:
            raise self.doc.error(
                path,
                f"must be {what}: a path of at most {MAX_PATH_LENGTH} characters without NUL "
                f"characters, got {_describe(value)}",
            )
        return value


_NUMERIC_TEXT = re.compile(r"^[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?$")


def _int_hint(value: Any) -> str:
    """Why a number-like value is not an int, for the message."""
    if isinstance(value, str) and any(c.isdigit() for c in value) and _NUMERIC_TEXT.match(value):
        return (
            f" (YAML reads {value} as text, not a number; write a whole number with digits "
            "only, e.g. 200000)"
        )
    if isinstance(value, float):
        return " (a float; write a whole number with digits only, e.g. 200000)"
    return ""


class _Pinned:
    """Stands in for a ``_Located`` and reports every error at one key path.

    The checks of a value written in place (``_check_agent_params``, ...) are reused for
    a value of a sweep list; their errors then point at the list item, not at the place
    the value would have had.
    """

    def __init__(self, doc: _Located, path: Path_) -> None:
        self.doc = doc
        self.path = path
        self.source = doc.source

    def line(self, path: Path_, key: bool = False) -> int | None:
        return self.doc.line(self.path)

    def error(self, path: Path_, message: str, key: bool = False) -> ConfigError:
        return self.doc.error(self.path, message)


def _check_env_kwargs(v: _Validator, kwargs: Any, path: Path_) -> dict[str, Any]:
    from musicrec_gym.envs.core import ENV_KWARGS
    from musicrec_gym.sim.params import MAX_STEPS_LIMIT, REWARD_MODES

    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise v.doc.error(path, f"must be a mapping of keyword arguments, got {kwargs!r}")
    for key, value in kwargs.items():
        where = (*path, key)
        if key not in ENV_KWARGS:
            raise v.doc.error(
                where,
                f"{ENV_ID}: {unknown_name_message('keyword argument', str(key), ENV_KWARGS)}",
                key=True,
            )
        if key == "world" and value is not None:
            v.path_text(value, where, "a world directory or null (built-in world)")
        if key == "reward" and value not in REWARD_MODES:
            raise v.doc.error(where, unknown_name_message("reward mode", str(value), REWARD_MODES))
        if key == "profile_features" and not isinstance(value, bool):
            raise v.doc.error(where, f"must be true or false, got {_describe(value)}")
        if key == "max_steps" and value is not None:
            v.int_(value, where, 1, MAX_STEPS_LIMIT)
    return dict(kwargs)


_SIMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
}


def _type_ok(annotation: Any, value: Any) -> bool | None:
    """Whether ``value`` fits a simple annotation; ``None`` when the annotation is not simple."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parts = [p.strip() for p in str(text).split("|")]
    if value is None:
        return "None" in parts if all(p in (*_SIMPLE_TYPES, "None") for p in parts) else None
    verdicts = []
    for part in parts:
        if part == "None":
            continue
        if part not in _SIMPLE_TYPES:
            return None
        types = _SIMPLE_TYPES[part]
        ok = isinstance(value, types) and (part == "bool" or not isinstance(value, bool))
        verdicts.append(ok)
    return any(verdicts)


def _check_agent_params(v: _Validator, kind: str, params: Any, path: Path_) -> dict[str, Any]:
    from agents.base import agent_params, make_agent

    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise v.doc.error(path, f"must be a mapping of hyperparameters, got {_describe(params)}")
    fields = {name: f for name, f in agent_params(kind).items() if f.init}
    for key, value in params.items():
        where = (*path, key)
        if key not in fields:
            allowed = sorted(fields)
            hint = did_you_mean(str(key), allowed)
            listed = ", ".join(allowed) if allowed else "none (this agent has no parameters)"
            raise v.doc.error(
                where,
                f"unknown parameter {key!r} for agent {kind!r}.{hint} Allowed: {listed}.",
                key=True,
            )
        if _type_ok(fields[key].type, value) is False:
            raise v.doc.error(
                where,
                f"parameter {key!r} of agent {kind!r} must be of type {fields[key].type}, "
                f"got {_describe(value)}",
            )
    for name, f in fields.items():
        if (
            f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and name not in params
        ):
            raise v.doc.error(path, f"agent {kind!r} requires parameter {name!r}", key=True)
    try:
        make_agent(kind, params)
    except (ConfigError, ValueError, TypeError) as err:
        # Point at the parameter the agent's own check names, else at `params`.
        named = [k for k in params if re.search(rf"\b{re.escape(str(k))}\b", str(err))]
        where = (*path, named[0]) if named else path
        raise v.doc.error(where, f"invalid parameters for agent {kind!r}: {err}") from err
    return dict(params)


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
    doc = _Located(text, source)
    v = _Validator(doc)
    root = doc.data
    task = root.get("task", "agents") if isinstance(root, dict) else "agents"
    if task not in TASKS:
        raise doc.error(("task",), unknown_name_message("task", str(task), TASKS))
    if task == "embeddings":
        return _parse_embeddings(v, root)
    return _parse_agents(v, root)


def _seeds(v: _Validator, raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw:
        raise v.doc.error(
            ("seeds",), f"must be a non-empty list of ints >= 0, got {_describe(raw)}"
        )
    if len(raw) > MAX_SEEDS:
        raise v.doc.error(
            ("seeds",), f"lists {len(raw):,} seeds; the limit is {MAX_SEEDS} (MAX_SEEDS)"
        )
    seeds = tuple(v.int_(s, ("seeds", i), 0, MAX_SEED) for i, s in enumerate(raw))
    first: dict[int, int] = {}
    for i, s in enumerate(seeds):
        if s in first:
            raise v.doc.error(
                ("seeds", i), f"seed {s} is listed twice (also item {first[s]} of the list)"
            )
        first[s] = i
    return seeds


def _parse_agents(v: _Validator, root: Any) -> ExperimentConfig:
    from agents.base import agent_types

    doc = v.doc
    root = v.mapping(
        root,
        (),
        ("name", "seeds", "budget", "agents"),
        ("env", "sweep", "task"),
        "experiment settings",
    )
    name = v.name(root["name"], ("name",))

    env_raw = root.get("env")
    env_raw = v.mapping(
        {} if env_raw is None else env_raw,
        ("env",),
        (),
        ("id", "kwargs", "num_envs"),
        "env settings",
    )
    env_id = env_raw.get("id", ENV_ID)
    if env_id not in ENV_IDS:
        raise doc.error(("env", "id"), unknown_name_message("environment id", str(env_id), ENV_IDS))
    env = EnvConfig(
        id=env_id,
        kwargs=_check_env_kwargs(v, env_raw.get("kwargs"), ("env", "kwargs")),
        num_envs=v.int_(
            env_raw.get("num_envs", DEFAULT_NUM_ENVS), ("env", "num_envs"), 1, MAX_NUM_ENVS
        ),
    )

    seeds = _seeds(v, root["seeds"])

    budget_raw = v.mapping(
        root["budget"],
        ("budget",),
        ("train_steps", "eval_episodes"),
        ("eval_seed",),
        "budget settings",
    )
    budget = BudgetConfig(
        train_steps=v.int_(
            budget_raw["train_steps"], ("budget", "train_steps"), 1, MAX_TRAIN_STEPS
        ),
        eval_episodes=v.int_(
            budget_raw["eval_episodes"], ("budget", "eval_episodes"), 1, MAX_EVAL_EPISODES
        ),
        eval_seed=v.int_(
            budget_raw.get("eval_seed", DEFAULT_EVAL_SEED), ("budget", "eval_seed"), 0, MAX_SEED
        ),
    )

    agents_raw = root["agents"]
    if not isinstance(agents_raw, list) or not agents_raw:
        raise doc.error(
            ("agents",), f"must be a non-empty list of agents, got {_describe(agents_raw)}"
        )
    if len(agents_raw) > MAX_AGENTS:
        raise doc.error(
            ("agents",), f"lists {len(agents_raw):,} agents; the limit is {MAX_AGENTS} (MAX_AGENTS)"
        )
    types = agent_types()
    specs: list[AgentSpec] = []
    first_line: dict[str, int | None] = {}
    for i, raw in enumerate(agents_raw):
        path: Path_ = ("agents", i)
        raw = v.mapping(raw, path, ("name", "type"), ("params", "train_steps"), "agent settings")
        label = v.name(raw["name"], (*path, "name"))
        if label in first_line:
            raise doc.error(
                (*path, "name"),
                f"duplicate agent name {label!r} (first used on line {first_line[label]}); "
                "agent names must be unique",
            )
        first_line[label] = doc.line((*path, "name"))
        kind = raw["type"]
        if not isinstance(kind, str) or kind not in types:
            raise doc.error((*path, "type"), unknown_name_message("agent type", str(kind), types))
        params = _check_agent_params(v, kind, raw.get("params"), (*path, "params"))
        steps = raw.get("train_steps")
        if steps is not None:
            steps = v.int_(steps, (*path, "train_steps"), 1, MAX_TRAIN_STEPS)
        specs.append(AgentSpec(name=label, type=kind, params=params, train_steps=steps))
    sweep = _agent_sweep(v, root.get("sweep"), specs, env_raw, env, len(seeds))

    for kind in REFERENCE_TYPES:
        if any(s.type == kind and not s.params for s in specs):
            continue
        taken = [i for i, s in enumerate(specs) if s.name == kind]
        if taken:
            raise doc.error(
                ("agents", taken[0], "name"),
                f"the name {kind!r} is reserved for the {kind} reference that every "
                f"experiment evaluates; rename this agent (or make it type {kind!r} "
                "without params)",
            )
        specs.append(AgentSpec(name=kind, type=kind, implicit=True))
    _check_variant_names(v, sweep, specs)

    return ExperimentConfig(
        name=name,
        env=env,
        seeds=seeds,
        budget=budget,
        agents=tuple(specs),
        source=doc.source,
        sweep=sweep,
    )


# ------------------------------------------------------------------------ sweeps


def _sweep_entries(v: _Validator, raw: Any) -> list[tuple[str, list[Any], Path_]]:
    """The ``(key, values, path)`` of every entry of a ``sweep:`` block (shape only)."""
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw:
        raise v.doc.error(
            ("sweep",),
            "must be a mapping of sweep keys to lists of values, e.g. "
            f"`agents.LinUCB.params.alpha: [0.5, 1.0]`, got {_describe(raw)}",
        )
    entries = []
    for key, values in raw.items():
        where: Path_ = ("sweep", key)
        if not isinstance(key, str):
            raise v.doc.error(where, f"a sweep key must be a dotted string, got {key!r}", key=True)
        if not isinstance(values, list) or not values:
            raise v.doc.error(
                where, f"must be a non-empty list of values to try, got {_describe(values)}"
            )
        if len(values) > MAX_SWEEP_VALUES:
            raise v.doc.error(
                where,
                f"lists {len(values):,} values; the limit is {MAX_SWEEP_VALUES:,} values per "
                "sweep key (MAX_SWEEP_VALUES)",
            )
        entries.append((key, values, where))
    return entries


def _check_grid_size(
    v: _Validator, n_variants: int, n_seeds: int, what: str, sizes: list[tuple[str, int]]
) -> None:
    """Refuse a grid of more than ``MAX_CELLS`` cells, before any of it is expanded."""
    cells = n_variants * n_seeds
    if cells > MAX_CELLS:
        shown = " x ".join(f"{n} ({key})" for key, n in sizes)
        raise v.doc.error(
            ("sweep",),
            f"this grid has {cells:,} cells ({n_variants:,} {what} x {n_seeds} seed(s); "
            f"sweep sizes {shown}); the limit is {MAX_CELLS:,} cells (MAX_CELLS): sweep "
            "fewer values",
        )


def _distinct_values(v: _Validator, values: list[Any], where: Path_) -> tuple[Any, ...]:
    for i, value in enumerate(values):
        for j, other in enumerate(values[:i]):
            if value == other and isinstance(value, bool) == isinstance(other, bool):
                raise v.doc.error(
                    (*where, i),
                    f"value {_describe(value)} is listed twice (also item {j} of the list)",
                )
    return tuple(values)


def _set_in_place(v: _Validator, key: str, where: Path_, place: Path_) -> ConfigError:
    return v.doc.error(
        where,
        f"{key} is also set in place ({_dotted(place)}, line {v.doc.line(place, key=True)}); "
        "a setting is either fixed or swept: remove one of the two",
        key=True,
    )


def _unknown_sweep_key(
    v: _Validator, key: str, where: Path_, forms: tuple[str, ...]
) -> ConfigError:
    return v.doc.error(
        where, f"unknown sweep key {key!r}. Allowed forms: {', '.join(forms)}.", key=True
    )


def _agent_sweep(
    v: _Validator,
    raw: Any,
    specs: list[AgentSpec],
    env_raw: dict[str, Any],
    env: EnvConfig,
    n_seeds: int,
) -> tuple[SweepAxis, ...]:
    """Validate the ``sweep:`` block of an agents experiment (every value, in place).

    The keys are read first and the grid's cells counted (``MAX_CELLS``) before any
    value is validated.
    """
    from agents.base import agent_params
    from musicrec_gym.envs.core import ENV_KWARGS

    doc = v.doc
    index = {spec.name: i for i, spec in enumerate(specs)}
    axes: list[SweepAxis] = []
    pending: list[tuple[Any, ...]] = []
    for key, values, where in _sweep_entries(v, raw):
        parts = key.split(".")
        agent: str | None = None
        if parts[0] == "seeds":
            raise doc.error(
                where,
                "seeds are not a sweep key: list them in the top-level `seeds:` (every grid "
                "point runs with every seed)",
                key=True,
            )
        if key == "env.num_envs":
            if "num_envs" in env_raw:
                raise _set_in_place(v, key, where, ("env", "num_envs"))
            field_: tuple[str, ...] = ("num_envs",)
            column, label = "env.num_envs", "num_envs"

            def check(value: Any, at: Path_) -> None:
                _Validator(_Pinned(doc, at)).int_(value, at, 1, MAX_NUM_ENVS)

        elif len(parts) == 3 and parts[:2] == ["env", "kwargs"]:
            kw = parts[2]
            if kw not in ENV_KWARGS:
                raise doc.error(
                    where,
                    f"{ENV_ID}: {unknown_name_message('keyword argument', kw, ENV_KWARGS)}",
                    key=True,
                )
            if kw in env.kwargs:
                raise _set_in_place(v, key, where, ("env", "kwargs", kw))
            field_, column, label = ("kwargs", kw), f"env.{kw}", kw

            def check(value: Any, at: Path_, kw: str = kw) -> None:
                _check_env_kwargs(_Validator(_Pinned(doc, at)), {kw: value}, at)

        elif parts[0] == "agents" and len(parts) >= 3:
            rest = key[len("agents.") :]
            matches = [s for s in specs if rest.startswith(s.name + ".")]
            if not matches:
                raise doc.error(
                    where,
                    unknown_name_message("agent name", parts[1], [s.name for s in specs])
                    + " A sweep key names an agent of `agents` by its `name`.",
                    key=True,
                )
            spec = max(matches, key=lambda s: len(s.name))
            agent, tail = spec.name, rest[len(spec.name) + 1 :]
            place: Path_ = ("agents", index[spec.name])
            if spec.type in ("random", "oracle") and not spec.params:
                raise doc.error(
                    where,
                    f"agent {spec.name!r} is the {spec.type} reference of every normalised "
                    "score; it cannot be swept",
                    key=True,
                )
            if tail == "train_steps":
                if spec.train_steps is not None:
                    raise _set_in_place(v, key, where, (*place, "train_steps"))
                field_, column, label = ("train_steps",), "agent.train_steps", "train_steps"

                def check(value: Any, at: Path_) -> None:
                    _Validator(_Pinned(doc, at)).int_(value, at, 1, MAX_TRAIN_STEPS)

            elif tail.startswith("params.") and len(tail) > len("params."):
                param = tail[len("params.") :]
                fields = sorted(n for n, f in agent_params(spec.type).items() if f.init)
                if param not in fields:
                    raise doc.error(
                        where,
                        f"unknown parameter {param!r} for agent {spec.type!r}."
                        f"{did_you_mean(param, fields)} Allowed: "
                        f"{', '.join(fields) or 'none (this agent has no parameters)'}.",
                        key=True,
                    )
                if param in spec.params:
                    raise _set_in_place(v, key, where, (*place, "params", param))
                field_, column, label = ("params", param), f"params.{param}", param

                def check(
                    value: Any, at: Path_, spec: AgentSpec = spec, param: str = param
                ) -> None:
                    pinned = _Validator(_Pinned(doc, at))
                    _check_agent_params(pinned, spec.type, {**spec.params, param: value}, at)

            else:
                raise doc.error(
                    where,
                    f"after the agent name {spec.name!r} comes `params.<parameter>` or "
                    f"`train_steps`, got {tail!r}",
                    key=True,
                )
        else:
            raise _unknown_sweep_key(v, key, where, AGENT_SWEEP_KEYS)
        pending.append((key, values, where, field_, agent, column, label, check))

    # Count the cells before validating (or expanding) any value: the references count
    # too (one per environment grid point and seed).
    env_points = 1
    own = {spec.name: 1 for spec in specs}
    for _key, values, _, _, agent, *_ in pending:
        if agent is None:
            env_points *= len(values)
        else:
            own[agent] *= len(values)
    implicit = sum(
        1 for kind in REFERENCE_TYPES if not any(s.type == kind and not s.params for s in specs)
    )
    _check_grid_size(
        v,
        env_points * (sum(own.values()) + implicit),
        n_seeds,
        "agent variants",
        [(key, len(values)) for key, values, *_ in pending],
    )

    for key, values, where, field_, agent, column, label, check in pending:
        for i, value in enumerate(values):
            check(value, (*where, i))
        axes.append(
            SweepAxis(
                path=key,
                values=_distinct_values(v, values, where),
                field=field_,
                agent=agent,
                column=column,
                label=label,
            )
        )
    return tuple(axes)


def _check_variant_names(
    v: _Validator, axes: tuple[SweepAxis, ...], specs: list[AgentSpec]
) -> None:
    """Refuse a grid whose variant names (``<agent>@<label>=<value>,...``) are too long."""
    from experiments.sweep import axis_labels

    longest = {axis.path: max(len(label) for label in axis_labels(axis)) for axis in axes}
    for spec in specs:
        mine = [a for a in axes if a.agent is None or a.agent == spec.name]
        if not mine:
            continue
        labels = [a.label for a in mine]
        parts = [
            len(a.column if labels.count(a.label) > 1 else a.label) + 1 + longest[a.path]
            for a in mine
        ]
        length = len(spec.name) + 1 + sum(parts) + len(parts) - 1
        if length > MAX_VARIANT_NAME_LENGTH:
            widest = max(mine, key=lambda a: longest[a.path])
            raise v.doc.error(
                ("sweep", widest.path),
                f"the names of agent {spec.name!r}'s grid variants "
                f"(<agent>@<label>=<value>,...) would be up to {length} characters long; "
                f"the limit is {MAX_VARIANT_NAME_LENGTH} (they become directory names): "
                "use shorter values or fewer sweep keys",
                key=True,
            )


# -------------------------------------------------------------- embeddings task


def _parse_embeddings(v: _Validator, root: dict[str, Any]) -> EmbeddingExperimentConfig:
    from musicrec_gym.embeddings import EmbeddingConfig

    doc = v.doc
    root = v.mapping(
        root,
        (),
        ("name", "task", "seeds"),
        ("sessions", "embedding", "k", "sweep"),
        "embeddings-experiment settings",
    )
    name = v.name(root["name"], ("name",))
    seeds = _seeds(v, root["seeds"])
    for i, s in enumerate(seeds):
        if s >= 2**32:
            raise doc.error(("seeds", i), f"an embedding seed must be < 2**32, got {s}")
    sessions = _session_source(v, root.get("sessions"))
    k = v.int_(root.get("k", DEFAULT_K), ("k",), 1, MAX_K)

    fields = [f.name for f in dataclasses.fields(EmbeddingConfig) if f.name != "seed"]
    embedding = root.get("embedding")
    embedding = {} if embedding is None else embedding
    if not isinstance(embedding, dict):
        raise doc.error(
            ("embedding",),
            f"must be a mapping of EmbeddingConfig fields, got {_describe(embedding)}",
        )

    def check(values: dict[str, Any], at: Path_, pinned: bool) -> None:
        try:
            EmbeddingConfig(**values)
        except ConfigError as err:
            named = [f for f in values if f"`{f}`" in str(err)]
            where = at if pinned or not named else (*at, named[0])
            raise doc.error(where, f"invalid embedding setting: {err}") from err

    for key in embedding:
        if key == "seed":
            raise doc.error(
                ("embedding", key),
                "the embedding seed is set by the top-level `seeds:` list (one cell per seed)",
                key=True,
            )
        if key not in fields:
            raise doc.error(
                ("embedding", key),
                unknown_name_message("EmbeddingConfig field", str(key), fields),
                key=True,
            )
    check(dict(embedding), ("embedding",), pinned=False)

    axes: list[SweepAxis] = []
    forms = ("embedding.<EmbeddingConfig field>",)
    entries = _sweep_entries(v, root.get("sweep"))
    points = 1
    for _, values, _ in entries:
        points *= len(values)
    _check_grid_size(
        v, points, len(seeds), "grid points", [(key, len(values)) for key, values, _ in entries]
    )
    for key, values, where in entries:
        parts = key.split(".")
        if parts[0] == "seeds" or key == "embedding.seed":
            raise doc.error(
                where,
                "seeds are not a sweep key: list them in the top-level `seeds:` (every grid "
                "point runs with every seed)",
                key=True,
            )
        if len(parts) != 2 or parts[0] != "embedding":
            raise _unknown_sweep_key(v, key, where, forms)
        if parts[1] not in fields:
            raise doc.error(
                where, unknown_name_message("EmbeddingConfig field", parts[1], fields), key=True
            )
        if parts[1] in embedding:
            raise _set_in_place(v, key, where, ("embedding", parts[1]))
        for i, value in enumerate(values):
            check({**embedding, parts[1]: value}, (*where, i), pinned=True)
        axes.append(
            SweepAxis(
                path=key,
                values=_distinct_values(v, values, where),
                field=("embedding", parts[1]),
                column=key,
                label=parts[1],
            )
        )
    return EmbeddingExperimentConfig(
        name=name,
        sessions=sessions,
        embedding=dict(embedding),
        k=k,
        seeds=seeds,
        sweep=tuple(axes),
        source=doc.source,
    )


def _session_source(v: _Validator, raw: Any) -> SessionSource:
    doc = v.doc
    if raw is None:
        return SessionSource()
    synthetic_keys = ("seed", "n_sessions", "n_tracks", "n_listeners")
    raw = v.mapping(
        raw, ("sessions",), (), ("kind", "path", "options", *synthetic_keys), "session settings"
    )
    kind = raw.get("kind", "synthetic")
    kinds = ("synthetic", *real_source_kinds())
    if kind not in kinds or (kind != "synthetic" and not real_source_kinds()):
        extra = (
            ""
            if real_source_kinds()
            else " (real logs need musicrec_gym.data.sources, which this installation "
            "does not have)"
        )
        raise doc.error(
            ("sessions", "kind"), unknown_name_message("session source", str(kind), kinds) + extra
        )
    if kind == "synthetic":
        for key in ("path", "options"):
            if key in raw:
                raise doc.error(
                    ("sessions", key),
                    f"a synthetic source is made from its seed and takes no `{key}`",
                    key=True,
                )
        return SessionSource(
            seed=v.int_(raw.get("seed", 0), ("sessions", "seed"), 0, MAX_SEED),
            n_sessions=v.int_(
                raw.get("n_sessions", DEFAULT_N_SESSIONS),
                ("sessions", "n_sessions"),
                10,
                MAX_N_SESSIONS,
            ),
            n_tracks=v.int_(raw.get("n_tracks", 1000), ("sessions", "n_tracks"), 10, MAX_N_TRACKS),
            n_listeners=v.int_(
                raw.get("n_listeners", 1000), ("sessions", "n_listeners"), 1, MAX_N_LISTENERS
            ),
        )
    for key in synthetic_keys:
        if key in raw:
            raise doc.error(
                ("sessions", key), f"`{key}` is for a synthetic source, not {kind!r}", key=True
            )
    if "path" not in raw:
        raise doc.error(
            ("sessions",), f"a {kind!r} source needs `path`: the file or directory to read"
        )
    path = v.path_text(raw["path"], ("sessions", "path"), "the file or directory to read")
    options = raw.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise doc.error(
            ("sessions", "options"),
            f"must be a mapping of reader options, got {_describe(options)}",
        )
    _check_reader_options(v, kind, options)
    return SessionSource(kind=kind, path=path, options=tuple(sorted(options.items())))


def _check_reader_options(v: _Validator, kind: str, options: dict[Any, Any]) -> None:
    """The reader options of a real source: known names, and values of the right type."""
    from musicrec_gym.data import sources

    table = getattr(sources, "_OPTIONS", None)  # None: the reader checks the names
    allowed = tuple(table.get(kind, ())) if table is not None else ()
    for key, value in options.items():
        where: Path_ = ("sessions", "options", key)
        if not isinstance(key, str) or (table is not None and key not in allowed):
            message = (
                unknown_name_message(f"option for {kind!r} sources", str(key), allowed)
                if allowed
                else f"{kind!r} sources take no option {key!r}"
            )
            raise v.doc.error(where, message, key=True)
        if key == "gap_minutes" and not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and 0 < value < math.inf  # NaN and infinity fail
        ):
            raise v.doc.error(where, f"must be a number of minutes > 0, got {_describe(value)}")
        if key == "allow_pickle" and not isinstance(value, bool):
            raise v.doc.error(where, f"must be true or false, got {_describe(value)}")


def real_source_kinds() -> tuple[str, ...]:
    """The kinds of real session source ``musicrec_gym.data.sources`` offers (if installed)."""
    try:
        from musicrec_gym.data import sources
    except ImportError:
        return ()
    kinds = getattr(sources, "SOURCE_KINDS", None) or getattr(sources, "KINDS", None)
    return tuple(kinds) if kinds else ()


def load_config(path: str | Path) -> ExperimentConfig | EmbeddingExperimentConfig:
    """Read and validate an experiment config file.

    Args:
        path: The YAML file.

    Raises:
        ConfigError: The file is missing or invalid (file, line, key path, what is allowed).
    """
    path = Path(path)
    return parse_config(read_config_file(path), source=str(path))


def read_config_file(path: str | Path) -> str:
    """The text of a config file, refused past ``MAX_CONFIG_BYTES`` without reading it all.

    Raises:
        ConfigError: The file is missing, unreadable, not UTF-8 text, or too large.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from err
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the config file is larger than {MAX_CONFIG_BYTES:,} bytes (the limit; "
            "a config is a short hand-written file)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: the config file is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from err
