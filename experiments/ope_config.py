"""``musicrec ope`` configs: a YAML file validated into ``OPEConfig`` before anything runs.

Every mistake is a ``ConfigError`` naming the file, line and key path, as for
experiment configs (``experiments.config``); unknown keys are errors. Schema::

    name: ope_builtin          # required; [A-Za-z0-9_.+-]; default output dir runs/ope/<name>
    dataset: runs/logs/world   # a logged-dataset directory (musicrec log) ... or
    log:                       # ... logging settings: one dataset per seed is logged
      policy: world            #   required; world | uniform | oracle:EPS | popularity:EPS
                               #   | planner:EPS | softmax:AGENT:TAU[,k=v...]
                               #   | egreedy:AGENT:EPS[,k=v...] (experiments.soft_policies)
      sessions: 10000          #   required; int in [1, 1,000,000]
      world: null              #   optional; world directory (null: the built-in world)
      reward: listen           #   optional; listen | time | event
      long_term: false         #   optional; MusicRecLongTerm-v0
      max_steps: null          #   optional; int in [1, 10000] (null: the world's)
    targets: [oracle:0.1, uniform]   # required; distinct policy specs as for log.policy
    estimators: [ips, dr]      # optional; default every one (ips snips dm dr pdis wpdis
                               #   sdr wdr)
    seeds: [0, 1, 2]           # required; distinct ints in [0, 100000]: with `log:` the
                               #   dataset seed of each replicate; with `dataset:` the seed
                               #   of each replicate's resample of the episodes
    truth_sessions: 2000       # optional; on-policy sessions per target for the session
                               #   truth, int in [100, 1,000,000]
    bootstrap: 1000            # optional; bootstrap resamples per interval, [100, 100000]
    folds: 2                   # optional; cross-fitting folds of the models, [1, 10]
    q_model: linear            # optional; the Q-model of sdr/wdr: linear | two_tower
                               #   (experiments.ope_models)

Exactly one of ``dataset`` and ``log`` is given. A relative ``dataset`` or ``world`` path
is relative to the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.ope import ESTIMATORS
from experiments.ope_models import DEFAULT_Q_MODEL, Q_MODELS
from experiments.ope_targets import TRUTH_SEED
from experiments.soft_policies import SoftPolicySpec, parse_logging_policy
from experiments.value_checks import parse_seeds
from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.logging_policies import PolicySpec
from musicrec_gym.sim.constants import MAX_STEPS_LIMIT
from musicrec_gym.validation import Validator, describe
from musicrec_gym.yamlconfig import KeyPath, Located, read_config_file

#: Most logged sessions per dataset of a config.
MAX_LOG_SESSIONS = 1_000_000
#: Most on-policy sessions of a session truth.
MAX_TRUTH_SESSIONS = 1_000_000
#: Most targets.
MAX_TARGETS = 20
#: Largest replicate seed (the truth rollouts use seed ``TRUTH_SEED``'s reset seeds).
MAX_OPE_SEED = 100_000
REWARDS = ("listen", "time", "event")


@dataclass(frozen=True)
class LogSettings:
    """How each replicate's dataset is logged (``experiments.logged.log_sessions``)."""

    policy: PolicySpec | SoftPolicySpec
    sessions: int
    world: str | None = None
    reward: str = "listen"
    long_term: bool = False
    max_steps: int | None = None

    def env_kwargs(self) -> dict[str, Any]:
        """The environment's keyword arguments."""
        return {"reward": self.reward, "long_term": self.long_term, "max_steps": self.max_steps}


@dataclass(frozen=True)
class OPEConfig:
    """A validated ``musicrec ope`` config (see the module docstring)."""

    name: str
    targets: tuple[PolicySpec | SoftPolicySpec, ...]
    seeds: tuple[int, ...]
    dataset: str | None = None
    log: LogSettings | None = None
    estimators: tuple[str, ...] = ESTIMATORS
    truth_sessions: int = 2000
    bootstrap: int = 1000
    folds: int = 2
    q_model: str = DEFAULT_Q_MODEL
    source: str = "<config>"
    text: str = field(default="", repr=False)


def parse_ope_config(text: str, source: str = "<config>") -> OPEConfig:
    """Validate the text of an ``ope`` config.

    Raises:
        ConfigError: Anything wrong, with the file, line and key path.
    """
    doc = Located(text, source)
    v = Validator(doc)
    root = v.mapping(
        doc.data,
        (),
        ("name", "targets", "seeds"),
        ("dataset", "log", "estimators", "truth_sessions", "bootstrap", "folds", "q_model"),
        "ope settings",
    )
    name = v.name(root["name"], ("name",))
    if ("dataset" in root) == ("log" in root):
        raise doc.error(
            (),
            "give exactly one of `dataset` (a logged-dataset directory) and `log` "
            f"(settings to log one per seed); got {'both' if 'log' in root else 'neither'}",
        )
    dataset = None
    log = None
    if "dataset" in root:
        dataset = v.path_text(root["dataset"], ("dataset",), "a logged-dataset directory")
    else:
        log = _log_settings(v, root["log"])
    targets = _targets(v, root["targets"])
    estimators = _estimators(v, root.get("estimators", list(ESTIMATORS)))
    seeds = tuple(parse_seeds(v, root["seeds"]))
    for i, s in enumerate(seeds):
        if s > MAX_OPE_SEED or s == TRUTH_SEED:
            raise doc.error(
                ("seeds", i),
                f"must be an int in [0, {MAX_OPE_SEED:,}] other than {TRUTH_SEED} (the truth "
                f"rollouts' seed), got {s}",
            )
    truth = v.int_(root.get("truth_sessions", 2000), ("truth_sessions",), 100, MAX_TRUTH_SESSIONS)
    reps = v.int_(root.get("bootstrap", 1000), ("bootstrap",), 100, 100_000)
    folds = v.int_(root.get("folds", 2), ("folds",), 1, 10)
    q_model = root.get("q_model", DEFAULT_Q_MODEL)
    if q_model not in Q_MODELS:
        raise doc.error(("q_model",), unknown_name_message("q_model", str(q_model), Q_MODELS))
    return OPEConfig(
        name=name,
        targets=targets,
        seeds=seeds,
        dataset=dataset,
        log=log,
        estimators=estimators,
        truth_sessions=truth,
        bootstrap=reps,
        folds=folds,
        q_model=q_model,
        source=source,
        text=text,
    )


def load_ope_config(path: str | Path) -> OPEConfig:
    """Read and validate an ``ope`` config file (``ConfigError`` with file and line)."""
    path = Path(path)
    return parse_ope_config(read_config_file(path), source=str(path))


def _spec(v: Validator, value: Any, path: KeyPath) -> PolicySpec | SoftPolicySpec:
    if not isinstance(value, str):
        raise v.doc.error(
            path, f"must be a policy spec such as 'world' or 'oracle:0.1', got {describe(value)}"
        )
    try:
        return parse_logging_policy(value)
    except ConfigError as err:
        raise v.doc.error(path, str(err)) from err


def _log_settings(v: Validator, value: Any) -> LogSettings:
    at: KeyPath = ("log",)
    m = v.mapping(
        value, at, ("policy", "sessions"), ("world", "reward", "long_term", "max_steps"), "settings"
    )
    world = m.get("world")
    if world is not None:
        world = v.path_text(world, (*at, "world"), "a world directory, or null for the built-in")
    reward = m.get("reward", "listen")
    if reward not in REWARDS:
        raise v.doc.error((*at, "reward"), unknown_name_message("reward", str(reward), REWARDS))
    long_term = m.get("long_term", False)
    if not isinstance(long_term, bool):
        raise v.doc.error((*at, "long_term"), f"must be true or false, got {describe(long_term)}")
    max_steps = m.get("max_steps")
    if max_steps is not None:
        max_steps = v.int_(max_steps, (*at, "max_steps"), 1, MAX_STEPS_LIMIT)
    return LogSettings(
        policy=_spec(v, m["policy"], (*at, "policy")),
        sessions=v.int_(m["sessions"], (*at, "sessions"), 1, MAX_LOG_SESSIONS),
        world=world,
        reward=reward,
        long_term=long_term,
        max_steps=max_steps,
    )


def _targets(v: Validator, value: Any) -> tuple[PolicySpec | SoftPolicySpec, ...]:
    if not isinstance(value, list) or not value:
        raise v.doc.error(
            ("targets",), f"must be a non-empty list of policy specs, got {describe(value)}"
        )
    if len(value) > MAX_TARGETS:
        raise v.doc.error(("targets",), f"at most {MAX_TARGETS} targets, got {len(value)}")
    specs: list[PolicySpec | SoftPolicySpec] = []
    for i, item in enumerate(value):
        spec = _spec(v, item, ("targets", i))
        if spec in specs:
            raise v.doc.error(("targets", i), f"target {str(spec)!r} is listed twice")
        specs.append(spec)
    return tuple(specs)


def _estimators(v: Validator, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise v.doc.error(
            ("estimators",),
            f"must be a non-empty list of {', '.join(ESTIMATORS)}, got {describe(value)}",
        )
    out: list[str] = []
    for i, item in enumerate(value):
        if item not in ESTIMATORS:
            raise v.doc.error(
                ("estimators", i), unknown_name_message("estimator", str(item), ESTIMATORS)
            )
        if item in out:
            raise v.doc.error(("estimators", i), f"estimator {item!r} is listed twice")
        out.append(item)
    return tuple(e for e in ESTIMATORS if e in out)
