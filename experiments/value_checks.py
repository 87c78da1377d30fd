"""Checks of values written in a config: environment kwargs, agent parameters, seeds.

A sweep reuses them for each of its values (through a ``Pinned`` document, so that an
error points at the list item).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from experiments.schema import MAX_SEEDS
from musicrec_gym import ENV_ID
from musicrec_gym.errors import ConfigError, did_you_mean, unknown_name_message
from musicrec_gym.validation import MAX_SEED, Validator, describe
from musicrec_gym.yamlconfig import KeyPath

MAX_SETTING_SIZE = 10_000
"""The largest ``candidates`` or ``slate`` size a config may ask for (the env checks the
catalog's size)."""


def check_env_kwargs(v: Validator, kwargs: Any, path: KeyPath) -> dict[str, Any]:
    """``env.kwargs``: known ``MusicRec-v0`` keyword arguments with valid values."""
    from musicrec_gym.envs.core import ENV_KWARGS, SETTING_KWARGS
    from musicrec_gym.sim.params import MAX_STEPS_LIMIT, REWARD_MODES

    known = (*ENV_KWARGS, *SETTING_KWARGS)
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise v.doc.error(path, f"must be a mapping of keyword arguments, got {kwargs!r}")
    for key, value in kwargs.items():
        where = (*path, key)
        if key not in known:
            raise v.doc.error(
                where,
                f"{ENV_ID}: {unknown_name_message('keyword argument', str(key), known)}",
                key=True,
            )
        if key == "world" and value is not None:
            v.path_text(value, where, "a world directory or null (built-in world)")
        if key == "reward" and value not in REWARD_MODES:
            raise v.doc.error(where, unknown_name_message("reward mode", str(value), REWARD_MODES))
        if key in ("profile_features", "long_term", "string_ids") and not isinstance(value, bool):
            raise v.doc.error(where, f"must be true or false, got {describe(value)}")
        if key == "max_steps" and value is not None:
            v.int_(value, where, 1, MAX_STEPS_LIMIT)
        if key in SETTING_KWARGS and value is not None:
            v.int_(value, where, 1, MAX_SETTING_SIZE)
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


def check_agent_params(v: Validator, kind: str, params: Any, path: KeyPath) -> dict[str, Any]:
    """An agent's ``params``: known fields of fitting types that the agent accepts."""
    from agents.base import agent_params, make_agent

    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise v.doc.error(path, f"must be a mapping of hyperparameters, got {describe(params)}")
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
                f"got {describe(value)}",
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


def parse_seeds(v: Validator, raw: Any) -> tuple[int, ...]:
    """``seeds``: a non-empty list of distinct ints in ``[0, MAX_SEED]``."""
    if not isinstance(raw, list) or not raw:
        raise v.doc.error(("seeds",), f"must be a non-empty list of ints >= 0, got {describe(raw)}")
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
