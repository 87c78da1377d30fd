"""Validation of a config's ``sweep:`` block into ``SweepAxis`` objects.

Every value of a sweep list is checked as if written in place, the key must not also be
set in place, and the grid's size (``MAX_SWEEP_VALUES``, ``MAX_CELLS``) and its variant
names (``MAX_VARIANT_NAME_LENGTH``) are checked before the grid is expanded.
"""

from __future__ import annotations

from typing import Any

from experiments.schema import (
    AGENT_SWEEP_KEYS,
    MAX_CELLS,
    MAX_NUM_ENVS,
    MAX_SWEEP_VALUES,
    MAX_TRAIN_STEPS,
    MAX_VARIANT_NAME_LENGTH,
    AgentSpec,
    EnvConfig,
    SweepAxis,
    reference_types,
)
from experiments.value_checks import check_agent_params, check_env_kwargs
from musicrec_gym import ENV_ID
from musicrec_gym.errors import ConfigError, did_you_mean, unknown_name_message
from musicrec_gym.validation import Validator, describe
from musicrec_gym.yamlconfig import KeyPath, Pinned, dotted


def sweep_entries(v: Validator, raw: Any) -> list[tuple[str, list[Any], KeyPath]]:
    """The ``(key, values, path)`` of every entry of a ``sweep:`` block (shape only)."""
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw:
        raise v.doc.error(
            ("sweep",),
            "must be a mapping of sweep keys to lists of values, e.g. "
            f"`agents.LinUCB.params.alpha: [0.5, 1.0]`, got {describe(raw)}",
        )
    entries = []
    for key, values in raw.items():
        where: KeyPath = ("sweep", key)
        if not isinstance(key, str):
            raise v.doc.error(where, f"a sweep key must be a dotted string, got {key!r}", key=True)
        if not isinstance(values, list) or not values:
            raise v.doc.error(
                where, f"must be a non-empty list of values to try, got {describe(values)}"
            )
        if len(values) > MAX_SWEEP_VALUES:
            raise v.doc.error(
                where,
                f"lists {len(values):,} values; the limit is {MAX_SWEEP_VALUES:,} values per "
                "sweep key (MAX_SWEEP_VALUES)",
            )
        entries.append((key, values, where))
    return entries


def check_grid_size(
    v: Validator, n_variants: int, n_seeds: int, what: str, sizes: list[tuple[str, int]]
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


def distinct_values(v: Validator, values: list[Any], where: KeyPath) -> tuple[Any, ...]:
    """The values of a sweep list, refused when one is listed twice."""
    for i, value in enumerate(values):
        for j, other in enumerate(values[:i]):
            if value == other and isinstance(value, bool) == isinstance(other, bool):
                raise v.doc.error(
                    (*where, i),
                    f"value {describe(value)} is listed twice (also item {j} of the list)",
                )
    return tuple(values)


def set_in_place(v: Validator, key: str, where: KeyPath, place: KeyPath) -> ConfigError:
    """The error of a sweep key that is also set in place (at ``place``)."""
    return v.doc.error(
        where,
        f"{key} is also set in place ({dotted(place)}, line {v.doc.line(place, key=True)}); "
        "a setting is either fixed or swept: remove one of the two",
        key=True,
    )


def unknown_sweep_key(
    v: Validator, key: str, where: KeyPath, forms: tuple[str, ...]
) -> ConfigError:
    """The error of a sweep key of none of ``forms``."""
    return v.doc.error(
        where, f"unknown sweep key {key!r}. Allowed forms: {', '.join(forms)}.", key=True
    )


def agent_sweep(
    v: Validator,
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
    from musicrec_gym.envs.core import ENV_KWARGS, SETTING_KWARGS

    doc = v.doc
    index = {spec.name: i for i, spec in enumerate(specs)}
    axes: list[SweepAxis] = []
    pending: list[tuple[Any, ...]] = []
    for key, values, where in sweep_entries(v, raw):
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
                raise set_in_place(v, key, where, ("env", "num_envs"))
            field_: tuple[str, ...] = ("num_envs",)
            column, label = "env.num_envs", "num_envs"

            def check(value: Any, at: KeyPath) -> None:
                Validator(Pinned(doc, at)).int_(value, at, 1, MAX_NUM_ENVS)

        elif len(parts) == 3 and parts[:2] == ["env", "kwargs"]:
            kw = parts[2]
            if kw not in ENV_KWARGS and kw not in SETTING_KWARGS:
                raise doc.error(
                    where,
                    f"{ENV_ID}: {unknown_name_message('keyword argument', kw, ENV_KWARGS)}",
                    key=True,
                )
            if kw in SETTING_KWARGS:
                raise doc.error(
                    where,
                    f"{kw} changes the setting: what the agents act on and the references; "
                    "give each setting its own config (env.kwargs)",
                    key=True,
                )
            if kw == "long_term":
                raise doc.error(
                    where,
                    "long_term changes the environment and its upper reference: give "
                    "MusicRecLongTerm-v0 its own config (env.id)",
                    key=True,
                )
            if kw in env.kwargs:
                raise set_in_place(v, key, where, ("env", "kwargs", kw))
            field_, column, label = ("kwargs", kw), f"env.{kw}", kw

            def check(value: Any, at: KeyPath, kw: str = kw) -> None:
                check_env_kwargs(Validator(Pinned(doc, at)), {kw: value}, at)

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
            place: KeyPath = ("agents", index[spec.name])
            if spec.type in reference_types(env.id) and not spec.params:
                raise doc.error(
                    where,
                    f"agent {spec.name!r} is the {spec.type} reference of every normalised "
                    "score; it cannot be swept",
                    key=True,
                )
            if tail == "train_steps":
                if spec.train_steps is not None:
                    raise set_in_place(v, key, where, (*place, "train_steps"))
                field_, column, label = ("train_steps",), "agent.train_steps", "train_steps"

                def check(value: Any, at: KeyPath) -> None:
                    Validator(Pinned(doc, at)).int_(value, at, 1, MAX_TRAIN_STEPS)

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
                    raise set_in_place(v, key, where, (*place, "params", param))
                field_, column, label = ("params", param), f"params.{param}", param

                def check(
                    value: Any, at: KeyPath, spec: AgentSpec = spec, param: str = param
                ) -> None:
                    pinned = Validator(Pinned(doc, at))
                    check_agent_params(pinned, spec.type, {**spec.params, param: value}, at)

            else:
                raise doc.error(
                    where,
                    f"after the agent name {spec.name!r} comes `params.<parameter>` or "
                    f"`train_steps`, got {tail!r}",
                    key=True,
                )
        else:
            raise unknown_sweep_key(v, key, where, AGENT_SWEEP_KEYS)
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
        1
        for kind in reference_types(env.id)
        if not any(s.type == kind and not s.params for s in specs)
    )
    check_grid_size(
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
                values=distinct_values(v, values, where),
                field=field_,
                agent=agent,
                column=column,
                label=label,
            )
        )
    return tuple(axes)


def check_variant_names(v: Validator, axes: tuple[SweepAxis, ...], specs: list[AgentSpec]) -> None:
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
