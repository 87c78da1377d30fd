"""Experiment configs: a YAML file, validated into dataclasses before anything runs.

Every mistake is reported as a ``ConfigError`` that names the file, the line, the key
path, what was wrong and what is allowed, e.g.::

    quickstart.yaml, line 12: agents[3].params.alpah: unknown parameter 'alpah' for
    agent 'linucb'. Did you mean 'alpha'? Allowed: alpha, ridge.

Unknown keys are errors at every level (never silently ignored).

Schema::

    name: quickstart           # required; experiment name, [A-Za-z0-9_.+-]; default run dir
                               #   runs/<name>
    env:                       # optional
      id: MusicRec-v0          # optional; the only id with a native vector environment
      kwargs: {}               # optional; MusicRec-v0 keyword arguments: world (directory
                               #   or null for the built-in world; relative paths are
                               #   relative to the working directory), reward
                               #   (listen | time | event), profile_features (bool),
                               #   max_steps (int >= 1)
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

The ``random`` and ``oracle`` references are evaluated for every seed even when the
config does not list them (an agent of that type with no ``params`` is used as the
reference when listed), so that every agent gets a normalised score
``(agent - random) / (oracle - random)`` per seed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from musicrec_gym import ENV_ID
from musicrec_gym.errors import ConfigError, did_you_mean, unknown_name_message

#: Environment ids a config may name (each must have a native vector environment).
ENV_IDS = (ENV_ID,)
#: Registry keys of the references every experiment evaluates.
REFERENCE_TYPES = ("random", "oracle")
#: What a name (experiment or agent) may contain: it becomes part of directory names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
DEFAULT_NUM_ENVS = 64
DEFAULT_EVAL_SEED = 1_000_000

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
class ExperimentConfig:
    """A validated experiment config.

    Attributes:
        name: Experiment name.
        env: Environment settings.
        seeds: Experiment seeds (one cell per agent and seed).
        budget: Training and evaluation budget.
        agents: The listed agents, then the implicit references.
        source: Where the config was read from (for messages).
    """

    name: str
    env: EnvConfig
    seeds: tuple[int, ...]
    budget: BudgetConfig
    agents: tuple[AgentSpec, ...]
    source: str = field(default="<config>", compare=False)

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


# --------------------------------------------------------------------------- YAML


class _Located:
    """A parsed YAML document with the line of every key and value, by key path."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.key_lines: dict[Path_, int] = {}
        self.value_lines: dict[Path_, int] = {}
        try:
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
                if node is not None:
                    # Walk before constructing: constructing flattens merge keys in place.
                    self._walk(node, ())
                self.data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = err.problem or err.context or "syntax error"
            raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: invalid YAML: {err}") from err

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

    def int_(self, value: Any, path: Path_, minimum: int) -> int:
        if not _is_int(value) or value < minimum:
            bound = "> 0" if minimum == 1 else f">= {minimum}"
            raise self.doc.error(path, f"must be an int {bound}, got {_describe(value)}")
        return int(value)

    def name(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            raise self.doc.error(
                path,
                "must be a name of letters, digits and _ . + - (starting with a letter or "
                f"digit; it becomes part of directory names), got {_describe(value)}",
            )
        return value


def _check_env_kwargs(v: _Validator, kwargs: Any, path: Path_) -> dict[str, Any]:
    from musicrec_gym.envs.core import ENV_KWARGS
    from musicrec_gym.sim.params import REWARD_MODES

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
        if key == "world" and value is not None and not isinstance(value, str):
            raise v.doc.error(
                where, f"must be a world directory or null (built-in world), got {value!r}"
            )
        if key == "reward" and value not in REWARD_MODES:
            raise v.doc.error(where, unknown_name_message("reward mode", str(value), REWARD_MODES))
        if key == "profile_features" and not isinstance(value, bool):
            raise v.doc.error(where, f"must be true or false, got {_describe(value)}")
        if key == "max_steps" and value is not None:
            v.int_(value, where, 1)
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


def parse_config(text: str, source: str = "<config>") -> ExperimentConfig:
    """Validate the text of an experiment config.

    Args:
        text: YAML text.
        source: Name of the file (used in messages).

    Returns:
        The validated config, with the implicit references appended to ``agents``.

    Raises:
        ConfigError: Anything wrong, with the file, line and key path.
    """
    from agents.base import agent_types

    doc = _Located(text, source)
    v = _Validator(doc)
    root = v.mapping(
        doc.data, (), ("name", "seeds", "budget", "agents"), ("env",), "experiment settings"
    )
    name = v.name(root["name"], ("name",))

    env_raw = root.get("env") or {}
    env_raw = v.mapping(env_raw, ("env",), (), ("id", "kwargs", "num_envs"), "env settings")
    env_id = env_raw.get("id", ENV_ID)
    if env_id not in ENV_IDS:
        raise doc.error(("env", "id"), unknown_name_message("environment id", str(env_id), ENV_IDS))
    env = EnvConfig(
        id=env_id,
        kwargs=_check_env_kwargs(v, env_raw.get("kwargs"), ("env", "kwargs")),
        num_envs=v.int_(env_raw.get("num_envs", DEFAULT_NUM_ENVS), ("env", "num_envs"), 1),
    )

    seeds_raw = root["seeds"]
    if not isinstance(seeds_raw, list) or not seeds_raw:
        raise doc.error(
            ("seeds",), f"must be a non-empty list of ints >= 0, got {_describe(seeds_raw)}"
        )
    seeds = tuple(v.int_(s, ("seeds", i), 0) for i, s in enumerate(seeds_raw))
    for i, s in enumerate(seeds):
        if s in seeds[:i]:
            raise doc.error(("seeds", i), f"seed {s} is listed twice")

    budget_raw = v.mapping(
        root["budget"],
        ("budget",),
        ("train_steps", "eval_episodes"),
        ("eval_seed",),
        "budget settings",
    )
    budget = BudgetConfig(
        train_steps=v.int_(budget_raw["train_steps"], ("budget", "train_steps"), 1),
        eval_episodes=v.int_(budget_raw["eval_episodes"], ("budget", "eval_episodes"), 1),
        eval_seed=v.int_(
            budget_raw.get("eval_seed", DEFAULT_EVAL_SEED), ("budget", "eval_seed"), 0
        ),
    )

    agents_raw = root["agents"]
    if not isinstance(agents_raw, list) or not agents_raw:
        raise doc.error(
            ("agents",), f"must be a non-empty list of agents, got {_describe(agents_raw)}"
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
            steps = v.int_(steps, (*path, "train_steps"), 1)
        specs.append(AgentSpec(name=label, type=kind, params=params, train_steps=steps))

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

    return ExperimentConfig(
        name=name, env=env, seeds=seeds, budget=budget, agents=tuple(specs), source=source
    )


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config file.

    Args:
        path: The YAML file.

    Raises:
        ConfigError: The file is missing or invalid (file, line, key path, what is allowed).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from err
    return parse_config(text, source=str(path))
