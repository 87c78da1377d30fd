"""Grids: the variants a config's ``sweep:`` block asks for, with stable readable names.

A config's ``sweep:`` axes (validated by ``experiments.sweep_config``) multiply out into
*variants*; each variant runs with every seed, and each (variant, seed) is a cell of
the runner. An agent's variants are the combinations of the environment axes (which
apply to every agent, the references included) and the agent's own axes; an axis of
another agent does not multiply it. So::

    sweep:
      agents.LinUCB.params.alpha: [0.5, 2]
      env.kwargs.reward: [listen, time]

gives ``LinUCB@reward=listen,alpha=0.5`` ... (4 variants), ``random@reward=listen``,
``random@reward=time``, and the same for ``oracle`` and every other listed agent.

Names are ``<agent>@<label>=<value>,...``: environment axes first, then the agent's,
each in the order of the ``sweep:`` block; the label is the last part of the key
(``alpha``, ``reward``) unless two axes of a variant share it (then the results column,
e.g. ``params.max_steps``). A value is written as YAML would read it back where it can
(``0.5``, ``1e-05``, ``true``, ``null``, ``listen``) and with the characters that cannot
be part of a directory name replaced by ``_`` (a world directory by its last part), so
that the same config always gives the same names and a rerun finds its cells.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from experiments.schema import MAX_CELLS, AgentSpec, EnvConfig, ExperimentConfig, SweepAxis
from musicrec_gym.errors import ConfigError

#: Characters a value may keep in a name (the rest become ``_``).
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")

#: One variant's values: ``(axis, value)`` per axis, in the order of the sweep block.
Assignment = tuple[tuple[SweepAxis, Any], ...]


def value_label(value: Any) -> str:
    """How a swept value is written in a name: ``0.5``, ``1e-05``, ``true``, ``listen``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    text = str(value)
    if "/" in text or "\\" in text:
        text = PurePath(text.replace("\\", "/")).name or text
    return _UNSAFE.sub("_", text) or "_"


def axis_labels(axis: SweepAxis) -> tuple[str, ...]:
    """The label of each value of an axis, made distinct with ``-<item>`` when needed."""
    labels = [value_label(v) for v in axis.values]
    if len(set(labels)) < len(labels):
        labels = [f"{label}-{i}" for i, label in enumerate(labels)]
    return tuple(labels)


def grid(axes: Sequence[SweepAxis]) -> list[Assignment]:
    """Every combination of the axes' values (the last axis varies fastest); ``[()]`` for none."""
    return [
        tuple(zip(axes, values, strict=True))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def variant_name(base: str, assignment: Assignment) -> str:
    """``<base>@<label>=<value>,...``; just ``base`` for an empty assignment."""
    if not assignment:
        return base
    labels = [axis.label for axis, _ in assignment]
    parts = []
    for axis, value in assignment:
        key = axis.column if labels.count(axis.label) > 1 else axis.label
        parts.append(f"{key}={axis_labels(axis)[axis.values.index(value)]}")
    return f"{base}@{','.join(parts)}"


def columns(assignment: Assignment) -> tuple[tuple[str, Any], ...]:
    """The results-table columns of an assignment: ``(axis.column, value)`` per axis."""
    return tuple((axis.column, value) for axis, value in assignment)


@dataclass(frozen=True)
class AgentVariant:
    """One agent at one grid point.

    Attributes:
        name: ``<agent>@<label>=<value>,...`` (the agent's name when nothing is swept).
        base: The agent's name in the config.
        agent: The agent with the variant's parameters and budget (named ``name``).
        env: The environment at the variant's grid point.
        point: ``(column, value)`` of the environment axes (the references of a
            normalised score are those of the same point).
        swept: ``(column, value)`` of every axis of the variant.
    """

    name: str
    base: str
    agent: AgentSpec
    env: EnvConfig
    point: tuple[tuple[str, Any], ...] = ()
    swept: tuple[tuple[str, Any], ...] = ()


def apply_env(env: EnvConfig, assignment: Assignment) -> EnvConfig:
    """The environment with the assignment's environment values set."""
    kwargs = dict(env.kwargs)
    num_envs = env.num_envs
    for axis, value in assignment:
        if axis.field == ("num_envs",):
            num_envs = value
        elif axis.field[0] == "kwargs":
            kwargs[axis.field[1]] = value
    return dataclasses.replace(env, kwargs=kwargs, num_envs=num_envs)


def apply_agent(spec: AgentSpec, name: str, assignment: Assignment) -> AgentSpec:
    """The agent named ``name`` with the assignment's parameters and budget set."""
    params = dict(spec.params)
    train_steps = spec.train_steps
    for axis, value in assignment:
        if axis.field == ("train_steps",):
            train_steps = value
        elif axis.field[0] == "params":
            params[axis.field[1]] = value
    return dataclasses.replace(spec, name=name, params=params, train_steps=train_steps)


def count_variants(config: ExperimentConfig) -> int:
    """How many variants ``agent_variants`` gives, without expanding the grid."""
    env_points = math.prod(len(a.values) for a in config.sweep if a.agent is None)
    own = sum(
        math.prod(len(a.values) for a in config.sweep if a.agent == spec.name)
        for spec in config.agents
    )
    return env_points * own


def agent_variants(config: ExperimentConfig) -> list[AgentVariant]:
    """Every variant of every agent (references included): environment points outermost.

    Raises:
        ConfigError: The grid has more than ``MAX_CELLS`` cells (variants x seeds); a
            config read by ``experiments.config`` never does, one built in code may.
    """
    n_variants = count_variants(config)
    if n_variants * len(config.seeds) > MAX_CELLS:
        raise ConfigError(
            f"{config.source}: sweep: this grid has {n_variants * len(config.seeds):,} cells "
            f"({n_variants:,} agent variants x {len(config.seeds)} seed(s)); the limit is "
            f"{MAX_CELLS:,} cells (MAX_CELLS)"
        )
    env_axes = [a for a in config.sweep if a.agent is None]
    variants = []
    for env_assignment in grid(env_axes):
        env = apply_env(config.env, env_assignment)
        for spec in config.agents:
            own_axes = [a for a in config.sweep if a.agent == spec.name]
            for own in grid(own_axes):
                assignment = env_assignment + own
                name = variant_name(spec.name, assignment)
                variants.append(
                    AgentVariant(
                        name=name,
                        base=spec.name,
                        agent=apply_agent(spec, name, own),
                        env=env,
                        point=columns(env_assignment),
                        swept=columns(assignment),
                    )
                )
    return variants
