"""``musicrec``: the one console script. Subcommands: ``build``, ``run``, ``info``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from musicrec_gym.errors import MusicRecError
from musicrec_gym.reproducible import pin_cpu_kernels


def _cmd_build(args: argparse.Namespace) -> int:
    pin_cpu_kernels()  # before PyTorch loads: same hashes on every machine
    from musicrec_gym.artifacts import default_world_dir, read_json
    from musicrec_gym.build import BuildConfig, build_world
    from musicrec_gym.data.synthetic import SyntheticConfig
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.encoder import EncoderConfig

    base = BuildConfig()
    config = BuildConfig(
        world=SyntheticConfig(
            n_tracks=args.n_tracks or base.world.n_tracks,
            n_artists=min(base.world.n_artists, args.n_tracks or base.world.n_tracks),
            n_listeners=args.n_listeners or base.world.n_listeners,
        ),
        n_sessions=args.n_sessions or base.n_sessions,
        embedding=EmbeddingConfig(epochs=args.embedding_epochs or base.embedding.epochs),
        encoder=EncoderConfig(epochs=args.encoder_epochs or base.encoder.epochs),
        evaluate=not args.no_eval,
    ).with_seed(args.seed)
    manifest = build_world(
        config,
        args.out,
        logs_dir=args.logs,
        tensorboard_dir=args.tensorboard,
        progress=not args.quiet,
    )
    shipped = default_world_dir() / "manifest.json"
    if not shipped.is_file() or Path(args.out).resolve() == default_world_dir().resolve():
        return 0
    reference = read_json(shipped)
    same = reference.get("files") == manifest["files"]
    is_default = dataclasses.asdict(config) == dataclasses.asdict(BuildConfig())
    if is_default or same:
        word = "match" if same else "DIFFER FROM"
        print(f"sha256 of the built files {word} the shipped default world's")
        for name, digest in sorted(manifest["files"].items()):
            ref = reference.get("files", {}).get(name)
            print(f"  {'ok ' if ref == digest else 'XX '} {name} {digest[:16]}")
        if args.check and not same:
            return 1
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from musicrec_gym.world import load_world

    world = load_world(args.world)
    m = world.manifest
    print(f"world: {world.directory}")
    print(f"  {world.n_tracks} tracks, {world.n_listeners} listeners, obs dim {world.obs_dim}")
    print(f"  seed {m.get('seed')}, kind {m.get('kind')}")
    for name, report in sorted(m.get("reports", {}).items()):
        print(f"  {name}: {report}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from experiments.runner import run_experiment

    summary = run_experiment(
        args.config,
        out=args.out,
        jobs=args.jobs,
        quiet=args.quiet,
        force=args.force,
        command=["musicrec", *args.argv],
    )
    print(summary.table, end="")
    if not args.quiet:
        print(
            f"\n{len(summary.computed)} cell(s) run, {len(summary.skipped)} reused, in "
            f"{summary.elapsed_s:.0f} s; everything is in {summary.run_dir}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``musicrec`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="musicrec", description="musicrec-gym: worlds, environments and benchmarks."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        help="rebuild a synthetic world (the built-in one by default) from its seed",
        description="Generate the synthetic world, its logged sessions, the track embeddings "
        "and the session encoder, and write them with a manifest of sha256 hashes. With the "
        "default settings the hashes equal the shipped world's.",
    )
    b.add_argument("--out", default="world", help="world directory to write (default: ./world)")
    b.add_argument("--seed", type=int, default=0, help="seed of every stage (default 0)")
    b.add_argument("--logs", default=None, help="also write the logged sessions here")
    b.add_argument("--tensorboard", default=None, help="encoder training curves here")
    b.add_argument("--n-tracks", type=int, default=None, help="catalog size (default 1000)")
    b.add_argument("--n-listeners", type=int, default=None, help="listeners (default 1000)")
    b.add_argument("--n-sessions", type=int, default=None, help="logged sessions (150000)")
    b.add_argument("--embedding-epochs", type=int, default=None, help="word2vec epochs (10)")
    b.add_argument("--encoder-epochs", type=int, default=None, help="autoencoder epochs (3)")
    b.add_argument("--no-eval", action="store_true", help="skip the playlist-completion eval")
    b.add_argument("--check", action="store_true", help="exit 1 if hashes differ from shipped")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)

    r = sub.add_parser(
        "run",
        help="train and evaluate the agents of an experiment config",
        description="Train and evaluate every (agent, seed) cell of a YAML experiment config "
        "(see experiments/config.py), log the curves to TensorBoard and write results.csv, "
        "results.md and curves.png to the run directory. Rerunning the same command resumes: "
        "finished cells are skipped.",
    )
    r.add_argument(
        "config", help="experiment config (YAML), e.g. experiments/configs/quickstart.yaml"
    )
    r.add_argument("--out", default=None, help="run directory (default: runs/<name>)")
    r.add_argument(
        "--jobs", type=int, default=None, help="cells in parallel processes (default: 2)"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--force",
        action="store_true",
        help="run into a directory that holds a different config (reruns changed cells)",
    )
    r.set_defaults(func=_cmd_run)

    i = sub.add_parser("info", help="describe a world (the built-in one by default)")
    i.add_argument("world", nargs="?", default=None, help="world directory")
    i.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``musicrec``; errors of ours print one clear line and exit 2."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except MusicRecError as err:
        print(f"musicrec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
