"""Validation of a ``task: agents`` config into an ``ExperimentConfig``."""

from __future__ import annotations

from typing import Any

from experiments.schema import (
    DEFAULT_EVAL_SEED,
    DEFAULT_NUM_ENVS,
    ENV_IDS,
    MAX_AGENTS,
    MAX_EVAL_EPISODES,
    MAX_NUM_ENVS,
    MAX_TRAIN_STEPS,
    AgentSpec,
    BudgetConfig,
    EnvConfig,
    ExperimentConfig,
    reference_types,
)
from experiments.sweep_config import (
    agent_sweep,
    check_variant_names,
)
from experiments.value_checks import check_agent_params, check_env_kwargs, parse_seeds
from musicrec_gym import ENV_ID, ENV_ID_KWARGS
from musicrec_gym.envs.factory import env_setting
from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.validation import MAX_SEED, Validator, describe
from musicrec_gym.yamlconfig import KeyPath


def parse_agents(v: Validator, root: Any) -> ExperimentConfig:
    """An ``ExperimentConfig`` from a parsed document (the implicit references appended)."""
    from agents.base import agent_types, setting_message

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
    kwargs = check_env_kwargs(v, env_raw.get("kwargs"), ("env", "kwargs"))
    for key, value in ENV_ID_KWARGS[env_id].items():  # what the id stands for
        if kwargs.setdefault(key, value) != value:
            raise doc.error(("env", "kwargs", key), f"{env_id} means {key}: {value!r}")
    try:
        setting = env_setting(kwargs)
    except ConfigError as err:
        raise doc.error(("env", "kwargs"), str(err)) from err
    env = EnvConfig(
        id=env_id,
        kwargs=kwargs,
        num_envs=v.int_(
            env_raw.get("num_envs", DEFAULT_NUM_ENVS), ("env", "num_envs"), 1, MAX_NUM_ENVS
        ),
    )

    seeds = parse_seeds(v, root["seeds"])

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
            ("agents",), f"must be a non-empty list of agents, got {describe(agents_raw)}"
        )
    if len(agents_raw) > MAX_AGENTS:
        raise doc.error(
            ("agents",), f"lists {len(agents_raw):,} agents; the limit is {MAX_AGENTS} (MAX_AGENTS)"
        )
    types = agent_types()
    specs: list[AgentSpec] = []
    first_line: dict[str, int | None] = {}
    for i, raw in enumerate(agents_raw):
        path: KeyPath = ("agents", i)
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
        if setting not in types[kind].settings:
            raise doc.error((*path, "type"), setting_message(kind, setting))
        params = check_agent_params(v, kind, raw.get("params"), (*path, "params"))
        steps = raw.get("train_steps")
        if steps is not None:
            steps = v.int_(steps, (*path, "train_steps"), 1, MAX_TRAIN_STEPS)
        specs.append(AgentSpec(name=label, type=kind, params=params, train_steps=steps))
    sweep = agent_sweep(v, root.get("sweep"), specs, env_raw, env, len(seeds))

    for kind in reference_types(env_id):
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
    check_variant_names(v, sweep, specs)

    return ExperimentConfig(
        name=name,
        env=env,
        seeds=seeds,
        budget=budget,
        agents=tuple(specs),
        source=doc.source,
        sweep=sweep,
    )
