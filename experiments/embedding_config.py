"""Validation of a ``task: embeddings`` config into an ``EmbeddingExperimentConfig``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from experiments.schema import (
    DEFAULT_K,
    DEFAULT_N_SESSIONS,
    MAX_K,
    MAX_N_LISTENERS,
    MAX_N_SESSIONS,
    MAX_N_TRACKS,
    EmbeddingExperimentConfig,
    SessionSource,
    SweepAxis,
)
from experiments.sweep_config import (
    check_grid_size,
    distinct_values,
    set_in_place,
    sweep_entries,
    unknown_sweep_key,
)
from experiments.value_checks import parse_seeds
from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.validation import MAX_SEED, Validator, describe
from musicrec_gym.yamlconfig import KeyPath


def parse_embeddings(v: Validator, root: dict[str, Any]) -> EmbeddingExperimentConfig:
    """An ``EmbeddingExperimentConfig`` from a parsed ``task: embeddings`` document."""
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
    seeds = parse_seeds(v, root["seeds"])
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
            f"must be a mapping of EmbeddingConfig fields, got {describe(embedding)}",
        )

    def check(values: dict[str, Any], at: KeyPath, pinned: bool) -> None:
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
    entries = sweep_entries(v, root.get("sweep"))
    points = 1
    for _, values, _ in entries:
        points *= len(values)
    check_grid_size(
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
            raise unknown_sweep_key(v, key, where, forms)
        if parts[1] not in fields:
            raise doc.error(
                where, unknown_name_message("EmbeddingConfig field", parts[1], fields), key=True
            )
        if parts[1] in embedding:
            raise set_in_place(v, key, where, ("embedding", parts[1]))
        for i, value in enumerate(values):
            check({**embedding, parts[1]: value}, (*where, i), pinned=True)
        axes.append(
            SweepAxis(
                path=key,
                values=distinct_values(v, values, where),
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


def _session_source(v: Validator, raw: Any) -> SessionSource:
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
            f"must be a mapping of reader options, got {describe(options)}",
        )
    _check_reader_options(v, kind, options)
    return SessionSource(kind=kind, path=path, options=tuple(sorted(options.items())))


def _check_reader_options(v: Validator, kind: str, options: dict[Any, Any]) -> None:
    """The reader options of a real source: known names, and values of the right type."""
    from musicrec_gym.data import sources

    table = getattr(sources, "_OPTIONS", None)  # None: the reader checks the names
    allowed = tuple(table.get(kind, ())) if table is not None else ()
    for key, value in options.items():
        where: KeyPath = ("sessions", "options", key)
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
            raise v.doc.error(where, f"must be a number of minutes > 0, got {describe(value)}")
        if key == "allow_pickle" and not isinstance(value, bool):
            raise v.doc.error(where, f"must be true or false, got {describe(value)}")


def real_source_kinds() -> tuple[str, ...]:
    """The kinds of real session source ``musicrec_gym.data.sources`` offers (if installed)."""
    try:
        from musicrec_gym.data import sources
    except ImportError:
        return ()
    kinds = getattr(sources, "SOURCE_KINDS", None) or getattr(sources, "KINDS", None)
    return tuple(kinds) if kinds else ()
