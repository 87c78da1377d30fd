"""Bad input to agents: hyperparameters, saved files, and files that would run code.

A saved PPO/DQN zip keeps some objects as cloudpickle; loading one must never unpickle
them unless the caller opts in with ``trust_file=True``.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from agents import make_agent
from agents.base import AgentContext
from musicrec_gym.errors import ConfigError, DataFormatError

N_TRACKS, OBS_DIM = 20, 7
SMALL = {
    "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1, "net_arch": [8]},
    "dqn": {"learning_starts": 10, "batch_size": 8, "buffer_size": 100, "net_arch": [8]},
}


@pytest.fixture
def fake_context() -> AgentContext:
    """A context with the right shapes and no world (nothing here steps an env)."""
    rng = np.random.default_rng(0)
    return AgentContext(
        n_tracks=N_TRACKS,
        obs_dim=OBS_DIM,
        track_features=rng.normal(size=(N_TRACKS, 3)),
        track_plays=np.arange(1.0, N_TRACKS + 1),
        track_artist=np.arange(N_TRACKS) % 4,
        seed=0,
    )


# The standing table: (agent type, params, the parameter the message must name).
BAD_PARAMS = [
    ("ppo", {"learning_rate": float("inf")}, "learning_rate"),
    ("ppo", {"learning_rate": float("nan")}, "learning_rate"),
    ("ppo", {"learning_rate": 5.0}, "learning_rate"),
    ("ppo", {"learning_rate": True}, "learning_rate"),
    ("ppo", {"n_steps": 10**12}, "n_steps"),
    ("ppo", {"n_steps": True}, "n_steps"),
    ("ppo", {"batch_size": 2.0}, "batch_size"),
    ("ppo", {"n_epochs": 10**9}, "n_epochs"),
    ("ppo", {"gamma": "0.9"}, "gamma"),
    ("ppo", {"net_arch": [100_000]}, "net_arch"),
    ("ppo", {"net_arch": [8] * 100}, "net_arch"),
    ("ppo", {"net_arch": []}, "net_arch"),
    ("ppo", {"net_arch": [True]}, "net_arch"),
    ("ppo", {"device": ["cpu"]}, "device"),
    ("dqn", {"buffer_size": 10**12}, "buffer_size"),
    ("dqn", {"gradient_steps": 10**7}, "gradient_steps"),
    ("dqn", {"exploration_fraction": float("nan")}, "exploration_fraction"),
    ("dqn", {"target_update_interval": 0}, "target_update_interval"),
    ("dqn", {"avoid_repeats": 1}, "avoid_repeats"),
    ("linucb", {"alpha": 10**400}, "alpha"),
    ("linucb", {"lam": float("-inf")}, "lam"),
    ("linucb", {"refresh_every": 10**15}, "refresh_every"),
    ("linucb", {"standardize": "yes"}, "standardize"),
    ("lin_ts", {"v": float("nan")}, "v"),
    ("epsilon_greedy", {"decay_steps": 10**15}, "decay_steps"),
    ("epsilon_greedy", {"epsilon": True}, "epsilon"),
    ("linucb", {"alhpa": 1.0}, "alhpa"),
    ("linucb", {3: 1.0}, "3"),
]


@pytest.mark.parametrize(
    ("key", "params", "name"), BAD_PARAMS, ids=[f"{k}-{n}-{i}" for i, (k, _, n) in
                                                enumerate(BAD_PARAMS)]
)  # fmt: skip
def test_bad_hyperparameter_is_a_config_error_naming_it(key, params, name) -> None:
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        make_agent(key, params)


@pytest.mark.parametrize(
    ("key", "params", "match"),
    [
        (["ppo"], None, r"unknown agent type \"\['ppo'\]\""),
        ({"a": 1}, None, r"unknown agent type"),
        (None, None, r"unknown agent type 'None'"),
        ("ppo", [("n_steps", 4)], r"agent 'ppo': `params` must be a mapping"),
        ("ppo", "n_steps=4", r"agent 'ppo': `params` must be a mapping"),
    ],
    ids=["key-list", "key-dict", "key-none", "params-list", "params-text"],
)
def test_make_agent_with_wrong_types(key, params, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make_agent(key, params)


def test_the_table_is_large() -> None:
    assert len(BAD_PARAMS) >= 20


# ------------------------------------------------------------- SB3 files that run code


class _Touch:
    """Unpickling this creates ``path``: the stand-in for code a crafted file runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _saved_zip(key: str, context: AgentContext) -> bytes:
    agent = make_agent(key, SMALL[key])
    agent.bind(context)
    buffer = io.BytesIO()
    agent.save(buffer)
    return buffer.getvalue()


def _with_payload(zip_bytes: bytes, key: str, marker: Path) -> bytes:
    """The zip with ``data[key]`` replaced by a pickled object that creates ``marker``."""
    source = zipfile.ZipFile(io.BytesIO(zip_bytes))
    data = json.loads(source.read("data"))
    payload = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    data[key] = {":type:": "<class 'evil'>", ":serialized:": payload}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = json.dumps(data).encode() if info.filename == "data" else source.read(info)
            target.writestr(info.filename, body)
    return out.getvalue()


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_a_file_with_unknown_pickled_objects_is_refused_without_trust(
    key, fake_context, tmp_path
) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.zip"
    path.write_bytes(_with_payload(_saved_zip(key, fake_context), "evil", marker))
    agent = make_agent(key, SMALL[key])
    agent.bind(fake_context)
    with pytest.raises(ConfigError, match=r"model\.zip: refusing to load: .*'evil'.*trust_file"):
        agent.load(path)
    assert not marker.exists()
    state = {"sb3_zip": np.frombuffer(path.read_bytes(), dtype=np.uint8)}
    with pytest.raises(ConfigError, match=r"saved state 'sb3_zip': refusing to load"):
        agent.set_state(state)
    assert not marker.exists()


def test_trust_file_is_the_explicit_opt_in_to_unpickling(fake_context, tmp_path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.zip"
    path.write_bytes(_with_payload(_saved_zip("ppo", fake_context), "evil", marker))
    agent = make_agent("ppo", SMALL["ppo"])
    agent.bind(fake_context)
    agent.load(path, trust_file=True)
    assert marker.exists()  # what trusting a file means: its code ran
    obs = np.zeros((3, OBS_DIM), dtype=np.float32)
    assert agent.act(obs, {}, explore=False).shape == (3,)


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_a_safe_load_unpickles_nothing_and_gives_the_same_policy(
    key, fake_context, tmp_path, monkeypatch
) -> None:
    marker = tmp_path / "code-ran"
    original = make_agent(key, SMALL[key])
    original.bind(fake_context)
    buffer = io.BytesIO()
    original.save(buffer)
    path = tmp_path / "model.zip"
    # A known key holding a payload: replaced by the agent's own object, never unpickled.
    path.write_bytes(_with_payload(buffer.getvalue(), "policy_class", marker))

    import stable_baselines3.common.save_util as save_util

    def no_unpickling(*args, **kwargs):
        raise AssertionError("cloudpickle.loads was called")

    monkeypatch.setattr(save_util.cloudpickle, "loads", no_unpickling)
    twin = make_agent(key, SMALL[key])
    twin.bind(fake_context)
    twin.load(path)
    assert not marker.exists()
    obs = np.random.default_rng(1).uniform(-1, 1, (16, OBS_DIM)).astype(np.float32)
    assert np.array_equal(original.act(obs, {}, explore=False), twin.act(obs, {}, explore=False))


def test_a_safe_load_needs_a_bound_agent(fake_context, tmp_path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(_saved_zip("dqn", fake_context))
    agent = make_agent("dqn", SMALL["dqn"])
    with pytest.raises(ConfigError, match=r"model\.zip: bind\(\) the dqn agent before loading"):
        agent.load(path)


def test_a_model_of_other_spaces_is_a_data_format_error(fake_context, tmp_path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(_saved_zip("ppo", fake_context))
    other = AgentContext(
        n_tracks=N_TRACKS + 5, obs_dim=OBS_DIM, track_features=fake_context.track_features,
        track_plays=fake_context.track_plays, track_artist=fake_context.track_artist,
    )  # fmt: skip
    agent = make_agent("ppo", SMALL["ppo"])
    agent.bind(other)
    with pytest.raises(DataFormatError, match=r"model\.zip: not a ppo model that fits .*25 tracks"):
        agent.load(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"missing\.zip: saved ppo model not found"),
        (b"not a zip at all", r"junk\.zip: not an SB3 model zip"),
        ("no-data", r"junk\.zip: not an SB3 model zip"),
    ],
    ids=["missing", "not-a-zip", "zip-without-data"],
)
def test_broken_sb3_files_are_data_format_errors(fake_context, tmp_path, content, match) -> None:
    agent = make_agent("ppo", SMALL["ppo"])
    agent.bind(fake_context)
    if content is None:
        path = tmp_path / "missing.zip"
    else:
        path = tmp_path / "junk.zip"
        if content == "no-data":
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("policy.pth", b"")
        else:
            path.write_bytes(content)
    with pytest.raises(DataFormatError, match=match):
        agent.load(path)


# ----------------------------------------------------------- npz states of the bandits


def test_broken_npz_files_are_data_format_errors(fake_context, tmp_path) -> None:
    agent = make_agent("linucb")
    agent.bind(fake_context)
    with pytest.raises(DataFormatError, match=r"nothing\.npz: saved agent not found"):
        agent.load(tmp_path / "nothing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DataFormatError, match=r"junk\.npz: not a saved 'linucb' agent"):
        agent.load(junk)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, A=np.array([object()], dtype=object))
    with pytest.raises(DataFormatError, match=r"pickled\.npz: not a saved 'linucb' agent"):
        agent.load(pickled)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("beta", lambda s: np.full_like(s, np.nan), r"saved beta holds NaN or infinite"),
        ("track_d", lambda s: s[:-1], r"saved track_d has shape"),
        ("steps", lambda s: np.array(-3), r"saved steps must be an int >= 0"),
        ("rng", lambda s: np.array("{not json"), r"saved rng is not a PCG64 state"),
        ("cov", lambda s: np.array("text"), r"saved cov has shape|saved cov is not numeric"),
    ],
    ids=["nan", "shape", "negative-steps", "rng", "text"],
)
def test_a_corrupted_bandit_state_names_the_array(fake_context, key, value, match) -> None:
    agent = make_agent("linucb")
    agent.bind(fake_context)
    state = agent.state()
    state[key] = value(state[key])
    with pytest.raises(ConfigError, match=match):
        agent.set_state(state)
