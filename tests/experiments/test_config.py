"""Experiment configs: every mistake is a ConfigError naming the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import load_config, parse_config
from musicrec_gym.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"

VALID = """\
name: tiny
env:
  kwargs: {reward: listen}
  num_envs: 8
seeds: [0, 1]
budget:
  train_steps: 1000
  eval_episodes: 50
agents:
  - name: LinUCB
    type: linucb
    params: {alpha: 1.0}
  - name: Popularity
    type: popularity
"""


def edit(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


INVALID = [
    pytest.param(
        edit("seeds:", "seedz:"),
        r"c\.yaml, line 5: seedz: unknown key 'seedz'\. Did you mean 'seeds'\? Allowed: agents, "
        r"budget, env, name, seeds, sweep, task\.",
        id="unknown-top-level-key",
    ),
    pytest.param(
        edit("{alpha: 1.0}", "{alpah: 1.0}"),
        r"c\.yaml, line 12: agents\[0\]\.params\.alpah: unknown parameter 'alpah' for agent "
        r"'linucb'\. Did you mean 'alpha'\? Allowed: .*alpha",
        id="misspelled-agent-param",
    ),
    pytest.param(
        edit("type: linucb", "type: linucbb"),
        r"c\.yaml, line 11: agents\[0\]\.type: unknown agent type 'linucbb'\. Did you mean "
        r"'linucb'\? Allowed: .*dqn.*ppo",
        id="unknown-agent-type",
    ),
    pytest.param(
        edit("train_steps: 1000", "train_steps: lots"),
        r"c\.yaml, line 7: budget\.train_steps: must be an int > 0, got 'lots'",
        id="wrong-type",
    ),
    pytest.param(
        edit("train_steps: 1000", "train_steps: 1000.5"),
        r"line 7: budget\.train_steps: must be an int > 0, got 1000\.5",
        id="float-for-int",
    ),
    pytest.param(
        edit("  eval_episodes: 50\n", ""),
        r"c\.yaml, line 6: budget: missing required key 'eval_episodes' \(required: "
        r"train_steps, eval_episodes",
        id="missing-field",
    ),
    pytest.param(
        edit("name: tiny\n", ""),
        r"line 1: missing required key 'name'",
        id="missing-top-level-field",
    ),
    pytest.param(
        edit("name: Popularity", "name: LinUCB"),
        r"c\.yaml, line 13: agents\[1\]\.name: duplicate agent name 'LinUCB' \(first used on "
        r"line 10\)",
        id="duplicate-agent-names",
    ),
    pytest.param(
        edit("  num_envs: 8\n", "  num_envs: 8\n  num_envs: 9\n"),
        r"c\.yaml, line 5: env\.num_envs: duplicate key 'num_envs' \(first given on line 4\)",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        edit("{reward: listen}", "{rewrd: listen}"),
        r"line 3: env\.kwargs\.rewrd: MusicRec-v0: unknown keyword argument 'rewrd'\. Did you "
        r"mean 'reward'\?",
        id="unknown-env-kwarg",
    ),
    pytest.param(
        edit("{reward: listen}", "{reward: clicks}"),
        r"line 3: env\.kwargs\.reward: unknown reward mode 'clicks'\..*Allowed: event, listen, "
        r"time",
        id="bad-env-kwarg-value",
    ),
    pytest.param(
        edit("env:\n", "env:\n  id: MusicRec-v1\n"),
        r"line 3: env\.id: unknown environment id 'MusicRec-v1'\. Did you mean 'MusicRec-v0'\?",
        id="unknown-env-id",
    ),
    pytest.param(
        edit("{alpha: 1.0}", "{alpha: big}"),
        r"line 12: agents\[0\]\.params\.alpha: parameter 'alpha' of agent 'linucb' must be of "
        r"type float, got 'big'",
        id="agent-param-wrong-type",
    ),
    pytest.param(
        edit("{alpha: 1.0}", "{alpha: -1.0}"),
        r"line 12: agents\[0\]\.params\.alpha: invalid parameters for agent 'linucb': .*alpha",
        id="agent-param-out-of-range",
    ),
    pytest.param(
        edit("    type: popularity\n", "    type: popularity\n    train_step: 5\n"),
        r"line 15: agents\[1\]\.train_step: unknown key 'train_step'\. Did you mean "
        r"'train_steps'\?",
        id="unknown-agent-key",
    ),
    pytest.param(
        edit("seeds: [0, 1]", "seeds: [0, 0]"),
        r"line 5: seeds\[1\]: seed 0 is listed twice",
        id="duplicate-seed",
    ),
    pytest.param(
        edit("seeds: [0, 1]", "seeds: []"),
        r"line 5: seeds: must be a non-empty list of ints >= 0",
        id="no-seeds",
    ),
    pytest.param(
        edit("name: Popularity", "name: my agent"),
        r"line 13: agents\[1\]\.name: must be a name of letters, digits",
        id="bad-agent-name",
    ),
    pytest.param(
        edit("name: Popularity", "name: oracle"),
        r"line 13: agents\[1\]\.name: the name 'oracle' is reserved for the oracle reference",
        id="reserved-name",
    ),
    pytest.param(
        edit("  eval_episodes: 50", "  eval_episodes: [50"),
        r"c\.yaml, line \d+: invalid YAML",
        id="yaml-syntax",
    ),
    pytest.param("", r"c\.yaml: the config is empty", id="empty"),
]


@pytest.mark.parametrize(("text", "match"), INVALID)
def test_invalid_configs_name_file_line_and_key(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(text, source="c.yaml")


def test_valid_config_adds_the_references() -> None:
    config = parse_config(VALID, source="c.yaml")
    assert config.name == "tiny"
    assert config.env.num_envs == 8
    assert config.seeds == (0, 1)
    assert [a.name for a in config.agents] == ["LinUCB", "Popularity", "random", "oracle"]
    assert config.reference("random").implicit
    assert config.train_steps(config.agent("LinUCB")) == 1000


def test_listed_reference_is_used_and_train_steps_override() -> None:
    text = edit("    type: popularity\n", "    type: popularity\n    train_steps: 5\n")
    text += "  - {name: Random, type: random}\n"
    config = parse_config(text)
    assert config.reference("random").name == "Random"
    assert [a.name for a in config.agents] == ["LinUCB", "Popularity", "Random", "oracle"]
    assert config.train_steps(config.agent("Popularity")) == 5


def test_yaml_anchors_and_merge_keys_are_allowed() -> None:
    text = VALID.replace(
        "  - name: Popularity\n    type: popularity\n",
        "  - &lin\n    name: LinUCB2\n    type: linucb\n    params: {alpha: 2.0}\n"
        "  - <<: *lin\n    name: LinUCB3\n",
    )
    config = parse_config(text)
    assert config.agent("LinUCB3").params == {"alpha": 2.0}


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config("nope.yaml")


OFFLINE_TYPES = {"bc", "cql", "logging"}
"""Offline RL and its reference: they need a logged dataset (offline_builtin.yaml)."""


@pytest.mark.parametrize("name", ["quickstart.yaml", "benchmark.yaml", "benchmark_longterm.yaml"])
def test_shipped_configs_are_valid_and_cover_every_agent_type(name: str) -> None:
    """Every online type of the catalog setting; the planner only on the long-term world.

    Each other setting's config covers its own types.
    """
    from agents.base import types_for_setting

    config = load_config(CONFIGS / name)
    expected = set(types_for_setting("catalog")) - OFFLINE_TYPES
    if config.env.id == "MusicRec-v0":
        expected.discard("planner")
    assert {a.type for a in config.agents} == expected


def test_the_offline_config_covers_the_offline_types() -> None:
    config = load_config(CONFIGS / "offline_builtin.yaml")
    assert {a.type for a in config.agents} >= OFFLINE_TYPES


@pytest.mark.parametrize("name", ["benchmark_mssd.yaml", "heads.yaml"])
def test_other_shipped_configs_load(name: str) -> None:
    """The fitted-world benchmark and the head comparison are valid configs."""
    config = load_config(CONFIGS / name)
    assert len(config.seeds) >= 2 and config.agents


@pytest.mark.parametrize("setting", ["candidates", "slate"])
def test_a_config_refuses_an_agent_type_of_another_setting(tmp_path: Path, setting: str) -> None:
    """A candidate or slate config naming the planner fails at load time.

    The error names the agent's line and the types that do act in that setting.
    """
    from agents.base import types_for_setting

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\n"
        f"env: {{kwargs: {{{setting}: 5}}}}\n"
        "seeds: [0]\n"
        "budget: {train_steps: 10, eval_episodes: 1}\n"
        "agents:\n"
        "  - {name: P, type: planner}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "line 6" in message and "'planner'" in message and repr(setting) in message
    assert "random" in types_for_setting(setting) and "oracle" in types_for_setting(setting)


def test_a_config_refuses_both_settings_and_bad_sizes(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    body = (
        "seeds: [0]\nbudget: {train_steps: 10, eval_episodes: 1}\n"
        "agents: [{name: R, type: random}]\n"
    )
    path.write_text("name: bad\nenv: {kwargs: {slate: 5, candidates: 5}}\n" + body)
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config(path)
    path.write_text("name: bad\nenv: {kwargs: {candidates: 0}}\n" + body)
    with pytest.raises(ConfigError, match="candidates"):
        load_config(path)
