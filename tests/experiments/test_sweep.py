"""Grids: ``sweep:`` validation, expansion into named cells, local runs of both tasks."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.config import parse_config
from experiments.sweep import agent_variants, value_label
from musicrec_gym.cli import main
from musicrec_gym.errors import ConfigError

BASE = """\
name: grid
env:
  num_envs: 8
seeds: [0, 1]
budget:
  train_steps: 400
  eval_episodes: 12
agents:
  - name: LinUCB
    type: linucb
  - name: Popularity
    type: popularity
sweep:
  agents.LinUCB.params.alpha: [0.5, 1, 2]
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def sweep(block: str) -> str:
    """BASE with its sweep block replaced (its first key is on line 14)."""
    return edit("  agents.LinUCB.params.alpha: [0.5, 1, 2]\n", block)


INVALID = [
    pytest.param(
        sweep("  agents.LinUCB.params.alpah: [1]\n"),
        r"g\.yaml, line 14: sweep\.agents\.LinUCB\.params\.alpah: unknown parameter 'alpah' "
        r"for agent 'linucb'\. Did you mean 'alpha'\? Allowed: .*alpha",
        id="unknown-parameter",
    ),
    pytest.param(
        sweep("  agents.LinUBC.params.alpha: [1]\n"),
        r"line 14: sweep\.agents\.LinUBC\.params\.alpha: unknown agent name 'LinUBC'\. Did you "
        r"mean 'LinUCB'\? Allowed: LinUCB, Popularity\. A sweep key names an agent",
        id="unknown-agent",
    ),
    pytest.param(
        sweep("  agents.LinUCB.paramz.alpha: [1]\n"),
        r"line 14: sweep\.agents\.LinUCB\.paramz\.alpha: after the agent name 'LinUCB' comes "
        r"`params\.<parameter>` or `train_steps`, got 'paramz\.alpha'",
        id="path-names-nothing",
    ),
    pytest.param(
        sweep("  budget.eval_episodes: [1, 2]\n"),
        r"line 14: sweep\.budget\.eval_episodes: unknown sweep key 'budget\.eval_episodes'\. "
        r"Allowed forms: agents\.<agent name>\.params\.<parameter>, .*env\.num_envs\.",
        id="unknown-key",
    ),
    pytest.param(
        sweep("  agents.LinUCB.params.alpha: []\n"),
        r"line 14: sweep\.agents\.LinUCB\.params\.alpha: must be a non-empty list of values "
        r"to try, got \[\]",
        id="empty-list",
    ),
    pytest.param(
        sweep("  agents.LinUCB.params.alpha: 0.5\n"),
        r"line 14: sweep\.agents\.LinUCB\.params\.alpha: must be a non-empty list",
        id="not-a-list",
    ),
    pytest.param(
        sweep("  agents.LinUCB.params.alpha:\n    - 0.5\n    - big\n"),
        r"line 16: sweep\.agents\.LinUCB\.params\.alpha\[1\]: parameter 'alpha' of agent "
        r"'linucb' must be of type float, got 'big'",
        id="wrong-type-names-the-item",
    ),
    pytest.param(
        sweep("  agents.LinUCB.params.alpha: [0.5, -1.0]\n"),
        r"line 14: sweep\.agents\.LinUCB\.params\.alpha\[1\]: invalid parameters for agent "
        r"'linucb': .*alpha",
        id="out-of-range",
    ),
    pytest.param(
        sweep("  agents.LinUCB.params.alpha: [0.5, 1, 0.5]\n"),
        r"sweep\.agents\.LinUCB\.params\.alpha\[2\]: value 0\.5 is listed twice",
        id="duplicate-value",
    ),
    pytest.param(
        sweep("  seeds: [0, 1, 2]\n"),
        r"line 14: sweep\.seeds: seeds are not a sweep key: list them in the top-level "
        r"`seeds:`",
        id="seeds-are-not-swept",
    ),
    pytest.param(
        edit("    type: linucb\n", "    type: linucb\n    params: {alpha: 1.0}\n"),
        r"line 15: sweep\.agents\.LinUCB\.params\.alpha: agents\.LinUCB\.params\.alpha is also "
        r"set in place \(agents\[0\]\.params\.alpha, line 11\)",
        id="set-in-place-and-swept",
    ),
    pytest.param(
        sweep("  env.kwargs.rewrd: [listen]\n"),
        r"line 14: sweep\.env\.kwargs\.rewrd: MusicRec-v0: unknown keyword argument 'rewrd'\. "
        r"Did you mean 'reward'\?",
        id="unknown-env-kwarg",
    ),
    pytest.param(
        sweep("  env.kwargs.reward: [listen, clicks]\n"),
        r"sweep\.env\.kwargs\.reward\[1\]: unknown reward mode 'clicks'",
        id="bad-env-value",
    ),
    pytest.param(
        sweep("  env.num_envs: [4, 0]\n"),
        r"sweep\.env\.num_envs: env\.num_envs is also set in place",
        id="num-envs-set-in-place",
    ),
    pytest.param(
        edit("  num_envs: 8\n", "").replace(
            "alpha: [0.5, 1, 2]", "alpha: [1]\n  env.num_envs: [4, 0]"
        ),
        r"line 14: sweep\.env\.num_envs\[1\]: must be an int > 0, got 0",
        id="bad-num-envs",
    ),
    pytest.param(
        sweep("  agents.LinUCB.train_steps: [100, lots]\n"),
        r"sweep\.agents\.LinUCB\.train_steps\[1\]: must be an int > 0, got 'lots'",
        id="bad-train-steps",
    ),
    pytest.param(
        edit("  - name: Popularity\n    type: popularity\n",
             "  - name: Random\n    type: random\n") .replace(
            "agents.LinUCB.params.alpha", "agents.Random.params.x"),
        r"sweep\.agents\.Random\.params\.x: agent 'Random' is the random reference of every "
        r"normalised score; it cannot be swept",
        id="reference-is-not-swept",
    ),
    pytest.param(
        sweep("  - agents.LinUCB.params.alpha\n"),
        r"line 14: sweep: must be a mapping of sweep keys to lists of values",
        id="sweep-not-a-mapping",
    ),
    pytest.param(
        edit("name: grid\n", "name: grid\ntask: embedings\n"),
        r"line 2: task: unknown task 'embedings'\. Did you mean 'embeddings'\?",
        id="unknown-task",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), INVALID)
def test_invalid_sweeps_name_file_line_key_and_what_is_allowed(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(text, source="g.yaml")


EMBEDDINGS = """\
name: ns
task: embeddings
sessions: {kind: synthetic, seed: 3, n_sessions: 400, n_tracks: 60, n_listeners: 40}
embedding: {dim: 4, epochs: 2}
k: 5
seeds: [0, 1]
sweep:
  embedding.ns_exponent: [-1.0, 1.0]
"""

INVALID_EMBEDDINGS = [
    pytest.param(
        edit("ns_exponent: [", "ns_exponnt: [", EMBEDDINGS),
        r"line 8: sweep\.embedding\.ns_exponnt: unknown EmbeddingConfig field 'ns_exponnt'\. "
        r"Did you mean 'ns_exponent'\?",
        id="unknown-field",
    ),
    pytest.param(
        edit("[-1.0, 1.0]", "[-1.0, .inf]", EMBEDDINGS),
        r"line 8: sweep\.embedding\.ns_exponent\[1\]: invalid embedding setting: `ns_exponent` "
        r"must be a finite float, got inf",
        id="bad-value",
    ),
    pytest.param(
        edit("embedding.ns_exponent: [-1.0, 1.0]", "embedding.seed: [1, 2]", EMBEDDINGS),
        r"line 8: sweep\.embedding\.seed: seeds are not a sweep key",
        id="seed-is-not-swept",
    ),
    pytest.param(
        edit("{dim: 4, epochs: 2}", "{dim: 4, epochs: 0}", EMBEDDINGS),
        r"line 4: embedding\.epochs: invalid embedding setting: "
        r"`epochs` must be an int in \[1, 10,000\]",
        id="bad-fixed-setting",
    ),
    pytest.param(
        edit("{dim: 4, epochs: 2}", "{dim: 4, ns_exponent: 0.5}", EMBEDDINGS),
        r"line 8: sweep\.embedding\.ns_exponent: embedding\.ns_exponent is also set in place",
        id="set-in-place-and-swept",
    ),
    pytest.param(
        edit("kind: synthetic,", "kind: spotify, path: x,", EMBEDDINGS),
        r"line 3: sessions\.kind: unknown session source 'spotify'",
        id="unknown-source",
    ),
]


@pytest.mark.parametrize(("text", "match"), INVALID_EMBEDDINGS)
def test_invalid_embedding_sweeps(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(text, source="g.yaml")


def test_agent_variants_multiply_env_axes_and_own_axes_only() -> None:
    text = sweep("  env.kwargs.reward: [listen, time]\n  agents.LinUCB.params.alpha: [0.5, 2]\n")
    variants = agent_variants(parse_config(text))
    names = [v.name for v in variants]
    assert names == [
        "LinUCB@reward=listen,alpha=0.5",
        "LinUCB@reward=listen,alpha=2",
        "Popularity@reward=listen",
        "random@reward=listen",
        "oracle@reward=listen",
        "LinUCB@reward=time,alpha=0.5",
        "LinUCB@reward=time,alpha=2",
        "Popularity@reward=time",
        "random@reward=time",
        "oracle@reward=time",
    ]
    last = variants[6]
    assert last.agent.params == {"alpha": 2} and last.env.kwargs == {"reward": "time"}
    assert last.swept == (("env.reward", "time"), ("params.alpha", 2))
    assert last.point == (("env.reward", "time"),) and last.base == "LinUCB"


def test_value_labels_are_directory_safe_and_stable() -> None:
    assert [value_label(v) for v in (0.5, 1.0, 1e-05, -1.0, 3, True, None, "time")] == [
        "0.5", "1", "1e-05", "-1", "3", "true", "null", "time",
    ]  # fmt: skip
    assert value_label("/data/worlds/small world") == "small_world"


def test_a_grid_without_sweep_is_the_old_plan() -> None:
    from experiments.runner import plan_cells

    cells = plan_cells(parse_config(sweep("")))
    assert [c.key for c in cells][:2] == ["random__seed0", "random__seed1"]
    assert {c.agent.name for c in cells} == {"LinUCB", "Popularity", "random", "oracle"}


def test_env_grid_runs_locally_with_references_per_grid_point(
    tiny_world: Path, tmp_path: Path
) -> None:
    config = tmp_path / "g.yaml"
    config.write_text(
        BASE.replace("env:\n", f"env:\n  kwargs: {{world: {tiny_world}}}\n")
        .replace("seeds: [0, 1]", "seeds: [0]")
        .replace("  - name: LinUCB\n    type: linucb\n", "")
        .replace("agents.LinUCB.params.alpha: [0.5, 1, 2]", "env.kwargs.reward: [listen, time]")
    )
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    per_seed = pd.read_csv(out / "results_per_seed.csv")
    assert list(per_seed.columns[:3]) == ["agent", "type", "env.reward"]
    assert len(per_seed) == 6  # (Popularity, random, oracle) x (listen, time)
    table = pd.read_csv(out / "results.csv").set_index("agent")
    for reward in ("listen", "time"):
        assert table.loc[f"oracle@reward={reward}", "normalised_score_mean"] == pytest.approx(1)
        assert table.loc[f"random@reward={reward}", "normalised_score_mean"] == pytest.approx(0)
        assert table.loc[f"Popularity@reward={reward}", "env.reward"] == reward
    # Listen reward counts listens; time reward is listened time: the two points differ.
    returns = table["return_mean"]
    assert returns["oracle@reward=listen"] != returns["oracle@reward=time"]
    assert "| Popularity@reward=time | popularity | time | 1 |" in (out / "results.md").read_text()


def test_embedding_grid_gives_the_numbers_of_embeddings_sweep(tmp_path: Path) -> None:
    from experiments.config import SessionSource
    from experiments.embedding_task import load_sessions
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.embeddings import sweep as embedding_sweep

    config = tmp_path / "ns.yaml"
    config.write_text(EMBEDDINGS)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    table = pd.read_csv(out / "results.csv")
    assert list(table["embedding.ns_exponent"]) == [-1.0, 1.0]  # one row per ns_exponent
    assert list(table["n_seeds"]) == [2, 2]
    assert (out / "tb" / "embeddings__ns__sgns@ns_exponent=-1__seed0").is_dir()

    sessions = load_sessions(SessionSource(seed=3, n_sessions=400, n_tracks=60, n_listeners=40))
    per_seed = pd.read_csv(out / "results_per_seed.csv")
    for seed in (0, 1):
        expected = embedding_sweep(
            sessions, "ns_exponent", [-1.0, 1.0], base=EmbeddingConfig(dim=4, epochs=2, seed=seed),
            k=5,
        )  # fmt: skip
        got = per_seed[per_seed["seed"] == seed]
        assert got["hit"].tolist() == pytest.approx(expected["hit"].tolist(), abs=1e-6)
        assert got["ndcg"].tolist() == pytest.approx(expected["ndcg"].tolist(), abs=1e-6)


def test_ray_backend_without_ray_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    config = tmp_path / "g.yaml"
    config.write_text(BASE)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--backend", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--backend ray needs Ray Tune, which is not installed" in err
    assert 'pip install "musicrec-gym[ray]"' in err
    assert not out.exists()  # nothing ran


def test_address_needs_the_ray_backend(tmp_path: Path, capsys) -> None:
    config = tmp_path / "g.yaml"
    config.write_text(BASE)
    assert main(["run", str(config), "--address", "10.0.0.1:6379", "--quiet"]) == 2
    assert "--address 10.0.0.1:6379 needs --backend ray" in capsys.readouterr().err


def test_shipped_grid_configs_are_valid() -> None:
    from experiments.config import load_config
    from experiments.embedding_task import plan_embedding_cells
    from experiments.runner import plan_cells

    configs = Path(__file__).resolve().parents[2] / "experiments" / "configs"
    linucb = plan_cells(load_config(configs / "sweep_linucb.yaml"))
    assert sorted(c.key for c in linucb if c.agent.type == "linucb") == [
        "LinUCB@alpha=0.5__seed0", "LinUCB@alpha=0.5__seed1",
        "LinUCB@alpha=2__seed0", "LinUCB@alpha=2__seed1",
    ]  # fmt: skip
    ns = load_config(configs / "embedding_ns_exponent.yaml")
    values = [v for axis in ns.sweep for v in axis.values]
    assert min(values) == -1 and max(values) == 1
    assert len(plan_embedding_cells(ns)) == len(values) * len(ns.seeds)


def test_embedding_grid_on_a_real_lastfm_sample(tmp_path: Path) -> None:
    from musicrec_gym.data.sources import token_sessions
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.embeddings import sweep as embedding_sweep
    from tests.data.shared_samples import shared_file

    sample = shared_file("lastfm1k/plays_user_000001.tsv")
    config = tmp_path / "real.yaml"
    config.write_text(
        EMBEDDINGS.replace(
            "{kind: synthetic, seed: 3, n_sessions: 400, n_tracks: 60, n_listeners: 40}",
            f"{{kind: lastfm, path: {sample}, options: {{gap_minutes: 30}}}}",
        ).replace("seeds: [0, 1]", "seeds: [0]")
    )
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    per_seed = pd.read_csv(out / "results_per_seed.csv")
    sessions = token_sessions("lastfm", sample, gap_minutes=30)
    expected = embedding_sweep(
        sessions, "ns_exponent", [-1.0, 1.0], base=EmbeddingConfig(dim=4, epochs=2), k=5
    )
    assert per_seed["n_queries"].tolist() == expected["n_queries"].tolist()
    assert per_seed["hit"].tolist() == pytest.approx(expected["hit"].tolist(), abs=1e-6)
