"""benchmarks/ope_regrade.py: a run's session estimates graded against another truth."""

import importlib.util
import math
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ope_regrade.py"


def load_script():
    spec = importlib.util.spec_from_file_location("ope_regrade", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regrade_by_hand():
    seeds = pd.DataFrame(
        {
            "target": ["t"] * 3,
            "estimator": ["pdis", "pdis", "ips"],
            "level": ["session", "session", "decision"],
            "estimate": [1.0, 3.0, 9.0],
            "low": [0.5, 2.5, 8.0],
            "high": [1.5, 3.5, 10.0],
            "truth": [2.5, 2.5, 9.0],
            "covers": [False, True, True],
        }
    )
    table = load_script().regrade(seeds, {"t": 1.2})
    assert table["estimator"].tolist() == ["pdis"]  # decision rows are not regraded
    row = table.iloc[0]
    assert math.isclose(row["bias"], 0.8)  # (1.0 - 1.2 + 3.0 - 1.2) / 2
    assert math.isclose(row["rmse"], math.sqrt((0.2**2 + 1.8**2) / 2))
    assert row["covered"] == "1/2"  # only [0.5, 1.5] holds 1.2
    assert math.isclose(row["run bias"], -0.5)
    assert row["run covered"] == "1/2"
