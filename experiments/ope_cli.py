"""``musicrec ope``: the subcommand's parser and handler (kept light: imports on use).

``musicrec ope CONFIG [--out DIR]`` estimates target policies' values from logged
sessions with every off-policy estimator and grades each estimate against the truth
(``experiments.ope_run``; config schema in ``experiments.ope_config``; see
``docs/ope.md``).
"""

from __future__ import annotations

import argparse


def add_command(subparsers) -> argparse.ArgumentParser:
    """Register ``ope`` on ``musicrec``'s subparsers."""
    p = subparsers.add_parser(
        "ope",
        help="off-policy evaluation from logged sessions, graded against the true values",
        description="Estimate target policies' values from logged sessions (IPS, SNIPS, DM, "
        "DR per decision; PDIS, weighted PDIS, sequential and weighted DR per session) and "
        "compare each estimate with the truth the simulator knows. Writes ope.csv, ope.md, "
        "ope.png and ope_seeds.csv. See docs/ope.md.",
    )
    p.add_argument("config", help="the YAML config (e.g. experiments/configs/ope_builtin.yaml)")
    p.add_argument("--out", default=None, help="output directory (default: runs/ope/<name>)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.set_defaults(func=run_command)
    return p


def run_command(args: argparse.Namespace) -> int:
    """Handle ``musicrec ope``."""
    from pathlib import Path

    from experiments.ope_config import load_ope_config
    from experiments.ope_run import check_out_dir, run_ope
    from musicrec_gym.world_output import outside_package

    config = load_ope_config(args.config)
    out = check_out_dir(outside_package(args.out or Path("runs/ope") / config.name, "--out"))
    result = run_ope(config, out, say=None if args.quiet else print)
    print(result.markdown, end="")
    if not args.quiet:
        print(f"\n{result.elapsed_s:.0f} s; everything is in {result.out_dir}")
    return 0
