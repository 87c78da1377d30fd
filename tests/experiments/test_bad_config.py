"""Bad input to experiment configs, sweeps and the results report: our errors, never a crash.

Every case of the standing table is a ``ConfigError`` whose message names the key at
fault; the limits (file size, YAML aliases, budgets, names, grid size) fail fast, before
any time or memory goes into the input.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config import (
    MAX_CELLS,
    MAX_CONFIG_BYTES,
    MAX_SWEEP_VALUES,
    load_config,
    parse_config,
)
from musicrec_gym.errors import ConfigError
from tests.experiments.test_config import VALID

EMBEDDINGS = """\
name: emb
task: embeddings
seeds: [0]
"""


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def sweep(block: str) -> str:
    return VALID + "sweep:\n" + block


def numbers(n: int, start: int = 1) -> str:
    return "[" + ", ".join(str(start + i) for i in range(n)) + "]"


# The standing table: (config text, the key the message must name).
BAD = [
    # budgets: huge, boolean, float, text that YAML does not read as a number
    pytest.param(edit("train_steps: 1000", "train_steps: 1e30"), r"budget\.train_steps",
                 id="train-steps-1e30-text"),
    pytest.param(edit("train_steps: 1000", "train_steps: 1.0e+30"), r"budget\.train_steps",
                 id="train-steps-float-1e30"),
    pytest.param(edit("train_steps: 1000", "train_steps: 1000000000000000000000000000000"),
                 r"budget\.train_steps: must be an int <= 100,000,000", id="train-steps-huge"),
    pytest.param(edit("train_steps: 1000", "train_steps: true"), r"budget\.train_steps",
                 id="train-steps-bool"),
    pytest.param(edit("train_steps: 1000", "train_steps: .nan"), r"budget\.train_steps",
                 id="train-steps-nan"),
    pytest.param(edit("train_steps: 1000", "train_steps: -5"), r"budget\.train_steps",
                 id="train-steps-negative"),
    pytest.param(edit("eval_episodes: 50", "eval_episodes: 1000000000"),
                 r"budget\.eval_episodes: must be an int <= 100,000", id="eval-episodes-huge"),
    pytest.param(edit("eval_episodes: 50", "eval_episodes: .inf"), r"budget\.eval_episodes",
                 id="eval-episodes-inf"),
    pytest.param(edit("eval_episodes: 50", "eval_episodes: 50\n  eval_seed: 99999999999999"),
                 r"budget\.eval_seed", id="eval-seed-huge"),
    pytest.param(edit("eval_episodes: 50", "eval_episodes: 50\n  eval_seed: false"),
                 r"budget\.eval_seed", id="eval-seed-bool"),
    pytest.param(edit("type: popularity", "type: popularity\n    train_steps: 1000000000000"),
                 r"agents\[1\]\.train_steps", id="agent-train-steps-huge"),
    pytest.param(edit("type: popularity", "type: popularity\n    train_steps: true"),
                 r"agents\[1\]\.train_steps", id="agent-train-steps-bool"),
    pytest.param(edit("num_envs: 8", "num_envs: 100000000000"),
                 r"env\.num_envs: must be an int <= 4,096", id="num-envs-huge"),
    pytest.param(edit("num_envs: 8", "num_envs: true"), r"env\.num_envs", id="num-envs-bool"),
    # seeds
    pytest.param(edit("seeds: [0, 1]", f"seeds: {numbers(101)}"), r"seeds: lists 101 seeds",
                 id="too-many-seeds"),
    pytest.param(edit("seeds: [0, 1]", "seeds: [4294967296]"), r"seeds\[0\]",
                 id="seed-too-large"),
    pytest.param(edit("seeds: [0, 1]", "seeds: [0, true]"), r"seeds\[1\]", id="seed-bool"),
    pytest.param(edit("seeds: [0, 1]", "seeds: [0.5]"), r"seeds\[0\]", id="seed-float"),
    pytest.param(edit("seeds: [0, 1]", "seeds: []"), r"seeds: must be a non-empty list",
                 id="seeds-empty"),
    pytest.param(edit("seeds: [0, 1]", "seeds: [3, 3]"), r"seeds\[1\]: seed 3 is listed twice",
                 id="seed-duplicate"),
    # names
    pytest.param(edit("name: LinUCB", "name: " + "A" * 5000),
                 r"agents\[0\]\.name: must be a name of at most 64 characters",
                 id="agent-name-5000-chars"),
    pytest.param(edit("name: tiny", "name: " + "x" * 65), r"^c\.yaml, line 1: name: .*64",
                 id="experiment-name-too-long"),
    pytest.param(edit("name: LinUCB", "name: ../../etc"), r"agents\[0\]\.name",
                 id="agent-name-path"),
    pytest.param(edit("name: LinUCB", "name: 12.5"), r"agents\[0\]\.name",
                 id="agent-name-number"),
    pytest.param(edit("name: Popularity", "name: LinUCB"), r"agents\[1\]\.name: duplicate",
                 id="agent-name-duplicate"),
    # wrong types and shapes
    pytest.param(edit("env:\n  kwargs: {reward: listen}\n  num_envs: 8", "env: false"),
                 r"env: env must be a mapping", id="env-false"),
    pytest.param(edit("{reward: listen}", "{world: " + "w" * 5000 + "}"),
                 r"env\.kwargs\.world: .*at most 4096 characters", id="world-path-too-long"),
    pytest.param(edit("{reward: listen}", '{world: "a\\0b"}'), r"env\.kwargs\.world",
                 id="world-path-nul"),
    pytest.param(edit("{alpha: 1.0}", "{alpha: .inf}"), r"agents\[0\]\.params\.alpha",
                 id="param-inf"),
    pytest.param(edit("{alpha: 1.0}", "{alpha: .nan}"), r"agents\[0\]\.params\.alpha",
                 id="param-nan"),
    pytest.param(edit("{alpha: 1.0}", "{lam: -1.0}"), r"agents\[0\]\.params\.lam",
                 id="param-negative"),
    pytest.param(edit("{alpha: 1.0}", "{refresh_every: true}"),
                 r"agents\[0\]\.params\.refresh_every", id="param-bool-for-int"),
    pytest.param(edit("{alpha: 1.0}", "{refresh_every: 100000000000000}"),
                 r"agents\[0\]\.params\.refresh_every", id="param-huge-int"),
    pytest.param(edit("{alpha: 1.0}", "{alpha: 1.0, alpah: 2}"), r"agents\[0\]\.params\.alpah",
                 id="param-unknown"),
    pytest.param(edit("type: popularity", "type: ppo\n    params: {net_arch: [100000]}"),
                 r"agents\[1\]\.params\.net_arch", id="param-layer-too-wide"),
    pytest.param(edit("type: popularity", "type: dqn\n    params: {buffer_size: 10000000000}"),
                 r"agents\[1\]\.params\.buffer_size", id="param-buffer-too-large"),
    pytest.param(edit("type: popularity", "type: ppo\n    params: {learning_rate: 1.0e+30}"),
                 r"agents\[1\]\.params\.learning_rate", id="param-learning-rate-huge"),
    pytest.param(VALID[: VALID.index("agents:")] + "agents: []\n",
                 r"agents: must be a non-empty list", id="agents-empty"),
    pytest.param(edit("budget:", "bugdet:"), r"bugdet: unknown key 'bugdet'",
                 id="unknown-key"),
    pytest.param(edit("name: tiny", "name: 2001-13-45"), r"c\.yaml: invalid YAML value",
                 id="impossible-date"),
    # sweeps
    pytest.param(sweep(f"  agents.LinUCB.params.lam: {numbers(MAX_SWEEP_VALUES + 1)}\n"),
                 r"sweep\.agents\.LinUCB\.params\.lam: lists 1,001 values; the limit is 1,000",
                 id="sweep-too-many-values"),
    pytest.param(sweep(f"  env.num_envs: {numbers(2)}\n"), r"sweep\.env\.num_envs",
                 id="sweep-set-in-place"),
    pytest.param(edit("  num_envs: 8\n", "") + "sweep:\n  env.num_envs: [8, 100000]\n",
                 r"sweep\.env\.num_envs\[1\]: must be an int <= 4,096", id="sweep-num-envs-huge"),
    pytest.param(sweep("  agents.Popularity.train_steps: [100, 1000000000000]\n"),
                 r"sweep\.agents\.Popularity\.train_steps\[1\]", id="sweep-train-steps-huge"),
    pytest.param(sweep("  agents.Popularity.train_steps: [100, true]\n"),
                 r"sweep\.agents\.Popularity\.train_steps\[1\]", id="sweep-train-steps-bool"),
    pytest.param(sweep("  agents.LinUCB.params.lam: [.nan]\n"),
                 r"sweep\.agents\.LinUCB\.params\.lam\[0\]", id="sweep-nan"),
    pytest.param(sweep("  agents.LinUCB.params.lam: []\n"),
                 r"sweep\.agents\.LinUCB\.params\.lam: must be a non-empty list",
                 id="sweep-empty-list"),
    pytest.param(sweep("  agents.LinUCB.params.lam: [[1], [1]]\n"),
                 r"sweep\.agents\.LinUCB\.params\.lam\[0\]", id="sweep-list-values"),
    pytest.param(sweep("  env.kwargs.world: [" + "w" * 200 + ", b]\n"),
                 r"sweep\.env\.kwargs\.world: the names of agent .* up to \d+ characters",
                 id="sweep-variant-names-too-long"),
    pytest.param(sweep("  ? [a]\n  : [1]\n"), r"invalid YAML", id="sweep-key-list"),
    # the embeddings task
    pytest.param(EMBEDDINGS + "k: 1000000\n", r"k: must be an int <= 1,000", id="emb-k-huge"),
    pytest.param(EMBEDDINGS + "sessions: {n_sessions: 100000000000}\n",
                 r"sessions\.n_sessions", id="emb-n-sessions-huge"),
    pytest.param(EMBEDDINGS + "sessions: {n_listeners: true}\n", r"sessions\.n_listeners",
                 id="emb-n-listeners-bool"),
    pytest.param(EMBEDDINGS + "embedding: 0\n", r"embedding: must be a mapping",
                 id="emb-embedding-zero"),
    pytest.param(EMBEDDINGS + "sessions: {kind: lastfm, path: 5}\n", r"sessions\.path",
                 id="emb-path-int"),
    pytest.param(EMBEDDINGS + "sessions: {kind: lastfm, path: x, options: {gap_minutes: .inf}}\n",
                 r"sessions\.options\.gap_minutes", id="emb-option-inf"),
    pytest.param(EMBEDDINGS + "sessions: {kind: lastfm, path: x, options: {1: a, b: c}}\n",
                 r"sessions\.options\[1\]", id="emb-option-int-key"),
    pytest.param(EMBEDDINGS + "sessions: {kind: playlists, path: x, options: {allow_pickle: 1}}\n",
                 r"sessions\.options\.allow_pickle", id="emb-allow-pickle-int"),
    pytest.param(EMBEDDINGS + "sweep:\n  embedding.dim: " + numbers(200, 2)
                 + "\n  embedding.window: " + numbers(60) + "\n",
                 r"sweep: this grid has 12,000 cells .*the limit is 10,000",
                 id="emb-grid-too-large"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), BAD)
def test_bad_config_is_a_config_error_naming_the_key(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(text, source="c.yaml")


def test_the_table_is_large() -> None:
    assert len(BAD) >= 40


# ------------------------------------------------------------------ YAML limits


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["name: bomb", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


_BOMB_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
from experiments.config import load_config
from musicrec_gym.errors import ConfigError
start = time.perf_counter()
try:
    load_config(sys.argv[1])
except ConfigError as err:
    print(f"{time.perf_counter() - start:.3f}")
    try:  # peak resident memory of this process (ru_maxrss counts the parent's before exec)
        status = open("/proc/self/status").read()
        print(int(status.split("VmHWM:")[1].split()[0]))
    except (OSError, IndexError):
        print(0)
    print(err)
"""


def test_yaml_alias_bomb_fails_fast_without_memory(tmp_path: Path) -> None:
    """A ~1 KB "billion laughs" (9**8 strings expanded) is refused in well under a second.

    It runs in a child process capped at 1.5 GB of address space and 60 s, so that a
    regression fails this test instead of taking the (shared) machine's memory.
    """
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(), encoding="utf-8")
    assert path.stat().st_size < 1100
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(path)],
        capture_output=True, text=True, cwd=root, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds, max_rss_kb, message = proc.stdout.split("\n", 2)
    assert re.match(r"\S*bomb\.yaml, line \d+: .*more than 50,000 YAML nodes", message), message
    assert float(seconds) < 1.0
    assert int(max_rss_kb) < 300_000  # the interpreter and imports; nothing expanded


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: &a [*a]\n", r"refers to a value that contains it"),
        ("a: &m {b: 1}\nc: &n {<<: *n}\n", r"refers to a value that contains it"),
        ("name: " + "[" * 100 + "]" * 100 + "\n", r"nested more than 64 levels"),
        ("x: &a 1\n" + "".join(f"y{i}: *a\n" for i in range(1001)), r"more than 1,000 aliases"),
        ("seeds: [" + "1" * 5000 + "]\n", r"invalid YAML value"),
    ],
    ids=["recursive-alias", "recursive-merge", "too-deep", "too-many-aliases", "int-too-long"],
)
def test_yaml_structure_limits(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=r"^c\.yaml.*" + match):
        parse_config(text, source="c.yaml")


def test_config_file_size_is_limited_before_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_CONFIG_BYTES + 10), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"big\.yaml: the config file is larger than 1,000,000"):
        load_config(big)
    with pytest.raises(ConfigError, match=r"<text>: the config is 1,000,010 characters"):
        parse_config(big.read_text(encoding="utf-8"), source="<text>")
    if Path("/dev/zero").exists():  # endless: must not be read to the end
        with pytest.raises(ConfigError, match=r"/dev/zero: the config file is larger"):
            load_config("/dev/zero")


def test_config_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00name: x\n")
    with pytest.raises(ConfigError, match=r"binary\.yaml: the config file is not UTF-8"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"cannot read the config file"):
        load_config(tmp_path)  # a directory


# ------------------------------------------------------------------ grid size


def test_a_20000_value_sweep_is_refused_before_planning() -> None:
    text = sweep(f"  agents.LinUCB.params.lam: {numbers(20_000)}\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"lists 20,000 values; the limit is 1,000"):
        parse_config(text, source="c.yaml")
    assert time.perf_counter() - start < 5.0


def test_a_grid_past_max_cells_names_its_count_and_the_limit() -> None:
    text = edit("  num_envs: 8\n", "") + (
        f"sweep:\n  agents.LinUCB.params.lam: {numbers(500)}\n  env.num_envs: {numbers(20)}\n"
    )
    # 20 environment points x (500 LinUCB + 1 Popularity + 2 references) x 2 seeds
    cells = 20 * (500 + 1 + 2) * 2
    assert cells > MAX_CELLS
    start = time.perf_counter()
    with pytest.raises(
        ConfigError,
        match=rf"line 15: sweep: this grid has {cells:,} cells \(10,060 agent variants x 2 "
        rf"seed\(s\); .*500 \(agents\.LinUCB\.params\.lam\) x 20 \(env\.num_envs\)\); the "
        rf"limit is {MAX_CELLS:,} cells",
    ):
        parse_config(text, source="c.yaml")
    assert time.perf_counter() - start < 5.0


def test_agent_variants_refuses_a_grid_built_in_code() -> None:
    from experiments.sweep import agent_variants, count_variants

    config = parse_config(sweep("  agents.LinUCB.params.lam: [1.0, 2.0]\n"), source="c.yaml")
    axis = config.sweep[0]
    huge = dataclasses.replace(axis, values=tuple(float(i + 1) for i in range(6000)))
    big = dataclasses.replace(config, sweep=(huge,))
    assert count_variants(big) == 6000 + 3
    with pytest.raises(ConfigError, match=r"c\.yaml: sweep: this grid has 12,006 cells"):
        agent_variants(big)


# ------------------------------------------------- results read back for the report


def _fake_run(tmp_path: Path) -> tuple[Path, object, list]:
    """A run directory with a plausible ``result.json`` for every cell (nothing trained)."""
    from experiments.cells import CellResult, EvalSummary
    from experiments.runner import plan_cells

    config = parse_config(VALID.replace("seeds: [0, 1]", "seeds: [0]"), source="c.yaml")
    cells = plan_cells(config)
    run_dir = tmp_path / "run"
    for i, cell in enumerate(cells):
        ret = 2.0 + i
        result = CellResult(
            cell=cell.key, agent=cell.agent.name, type=cell.agent.type, seed=cell.seed,
            learns=False, train_steps=0, train_episodes=0, train_regret=None,
            train_time_s=0.0, eval_time_s=0.5,
            eval=EvalSummary(
                episodes=cell.eval_episodes, mean_return=ret, mean_optimal_return=10.0,
                fraction_of_optimal=ret / 10.0, listen_rate=0.5, mean_length=8.0,
                mean_regret=1.0,
            ),
            settings=json.loads(json.dumps(cell.settings(), default=str)), cpu_time_s=0.4,
        )  # fmt: skip
        (run_dir / "cells" / cell.key).mkdir(parents=True)
        (run_dir / "cells" / cell.key / "result.json").write_text(
            json.dumps(dataclasses.asdict(result)), encoding="utf-8"
        )
    return run_dir, config, cells


def _reload(run_dir: Path, cells: list) -> dict:
    """Every ``result.json`` read back as the runner reads it (``CellResult.from_dict``)."""
    from experiments.cells import CellResult

    return {
        cell.key: CellResult.from_dict(
            json.loads((run_dir / "cells" / cell.key / "result.json").read_text("utf-8"))
        )
        for cell in cells
    }


def test_a_hand_edited_result_is_excluded_with_a_warning_naming_its_file(tmp_path: Path) -> None:
    import pandas as pd

    from experiments.report import ResultWarning, write_report

    run_dir, config, cells = _fake_run(tmp_path)
    victim = next(c for c in cells if c.agent.name == "Popularity")
    path = run_dir / "cells" / victim.key / "result.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["eval"]["mean_return"] = 1e9  # the hand edit
    path.write_text(json.dumps(data), encoding="utf-8")
    results = _reload(run_dir, cells)
    with pytest.warns(ResultWarning, match=re.escape(str(path)) + r": excluded .*mean_return"):
        text = write_report(run_dir, config, cells, results)
    table = pd.read_csv(run_dir / "results.csv")
    assert "Popularity" not in set(table["agent"])
    assert table["return_mean"].abs().max() < 100
    assert "## Excluded results" in text and str(path) in text
    assert "Popularity" not in set(pd.read_csv(run_dir / "results_per_seed.csv")["agent"])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("mean_return", float("nan"), r"eval\.mean_return is NaN"),
        ("mean_return", "12", r"eval\.mean_return is .12., not a number"),
        ("mean_return", True, r"eval\.mean_return is True"),
        pytest.param("mean_return", 10**400, r"eval\.mean_return is 1000", id="int-too-big"),
        ("listen_rate", 1.5, r"eval\.listen_rate = 1\.5 is outside \[0, 1\]"),
        ("mean_length", 0.0, r"eval\.mean_length = 0 is outside \[1, "),
        ("mean_regret", -3.0, r"eval\.mean_regret = -3 is outside"),
        ("fraction_of_optimal", 0.9, r"eval\.fraction_of_optimal is 0\.9, but mean_return"),
        ("episodes", 7, r"eval\.episodes is 7, the cell has 50"),
        ("seed", 5, r"seed is 5, the cell.s is 0"),
        ("agent", "Other", r"agent is 'Other'"),
        ("train_steps", -1, r"train_steps = -1 is outside"),
        ("cpu_time_s", float("inf"), r"cpu_time_s is inf"),
    ],
)
def test_check_result_names_the_implausible_field(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    from experiments.report import check_result

    run_dir, _, cells = _fake_run(tmp_path)
    results = _reload(run_dir, cells)
    cell = cells[-1]
    result = results[cell.key]
    assert check_result(result, cell) == []
    if hasattr(result.eval, field):
        bad = dataclasses.replace(result, eval=dataclasses.replace(result.eval, **{field: value}))
    else:
        bad = dataclasses.replace(result, **{field: value})
    problems = check_result(bad, cell)
    assert any(re.search(match, p) for p in problems), problems


def test_a_corrupted_curve_is_left_out_of_the_plot(tmp_path: Path) -> None:
    from experiments.report import ResultWarning, _read_curve

    path = tmp_path / "curve.csv"
    path.write_text("steps,episode_return,optimal_return\n10,1.0,inf\n", encoding="utf-8")
    with pytest.warns(ResultWarning, match=r"curve\.csv: left out of the plot: .*not finite"):
        assert _read_curve(path) is None
    path.write_text("steps,return\n10,1.0\n", encoding="utf-8")
    with pytest.warns(ResultWarning, match=r"lacks the column\(s\) episode_return"):
        assert _read_curve(path) is None
    path.write_bytes(b'"unterminated\n\x00\x00')
    with pytest.warns(ResultWarning, match=r"curve\.csv: left out of the plot"):
        assert _read_curve(path) is None
