"""``musicrec``: the one console script.

Subcommands: ``build``, ``run``, ``fit``, ``realism``, ``embeddings``, ``session-length``,
``info``, ``optimum``, ``log`` and ``ope`` (the last three in their own ``*_cli`` modules).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from pathlib import Path

from musicrec_gym.errors import ConfigError, MusicRecError
from musicrec_gym.reproducible import pin_cpu_kernels, reexec_pinned

# Commands whose artifacts are hashed: they run with the baseline CPU kernels.
_TRAINING_COMMANDS = ("build", "fit")


def _int_at_least(low: int, high: int | None = None):
    """An argparse ``type``: an int in ``[low, high]``, else "argument --x: must be ..."."""
    expected = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


def _float_in(expected: str, ok):
    """An argparse ``type``: a finite float for which ``ok(value)`` holds."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        finite = value - value == 0  # False for nan, inf and -inf
        if not (finite and ok(value)):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse


_SEED = _int_at_least(0, 2**32 - 1)
_POSITIVE = _int_at_least(1)


def _world_argument(world: str | None) -> None:
    """Refuse a WORLD argument that is not a directory, naming the argument."""
    if world is None:
        return
    path = Path(world)
    if path.is_file():
        raise ConfigError(f"argument world: {world}: is a file, expected a world directory")
    if not path.is_dir():
        raise ConfigError(
            f"argument world: {world}: no such directory (write a world with `musicrec "
            "build --out DIR` or `musicrec fit LOG --out DIR`)"
        )


def _cmd_build(args: argparse.Namespace) -> int:
    pin_cpu_kernels()  # before PyTorch loads: same hashes on every machine
    from musicrec_gym.artifacts import default_world_dir, read_json
    from musicrec_gym.build import BuildConfig, build_world
    from musicrec_gym.data.synthetic import SyntheticConfig
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.encoder import EncoderConfig

    base = BuildConfig()

    def given(value, default):  # 0 is a value (refused by the parser), not "unset"
        return default if value is None else value

    n_tracks = given(args.n_tracks, base.world.n_tracks)
    config = BuildConfig(
        world=SyntheticConfig(
            n_tracks=n_tracks,
            n_artists=min(base.world.n_artists, n_tracks),
            n_listeners=given(args.n_listeners, base.world.n_listeners),
        ),
        n_sessions=given(args.n_sessions, base.n_sessions),
        embedding=EmbeddingConfig(epochs=given(args.embedding_epochs, base.embedding.epochs)),
        encoder=EncoderConfig(epochs=given(args.encoder_epochs, base.encoder.epochs)),
        evaluate=not args.no_eval,
    ).with_seed(args.seed)
    # The playlist-completion evaluation writes reports only, never a hashed file.
    is_default = dataclasses.replace(config, evaluate=True) == BuildConfig()
    if args.check and not is_default:
        raise ConfigError(
            "--check compares the build with the shipped default world, so it needs the "
            "default settings: drop --seed, --n-tracks, --n-listeners, --n-sessions, "
            "--embedding-epochs and --encoder-epochs"
        )
    manifest = build_world(
        config,
        args.out,
        logs_dir=args.logs,
        tensorboard_dir=args.tensorboard,
        progress=not args.quiet,
        force=args.force,
    )
    shipped = default_world_dir() / "manifest.json"
    if not shipped.is_file() or Path(args.out).resolve() == default_world_dir().resolve():
        return 0
    reference = read_json(shipped)
    same = reference.get("files") == manifest["files"]
    if is_default or same:
        word = "match" if same else "DIFFER FROM"
        print(f"sha256 of the built files {word} the shipped default world's")
        for name, digest in sorted(manifest["files"].items()):
            ref = reference.get("files", {}).get(name)
            print(f"  {'ok ' if ref == digest else 'XX '} {name} {digest[:16]}")
        if args.check and not same:
            return 1
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    pin_cpu_kernels()  # before PyTorch loads: same hashes on every machine
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.encoder import EncoderConfig
    from musicrec_gym.fit import FitConfig, fit_world
    from musicrec_gym.sim.fitted import ResponseConfig

    base = FitConfig()
    config = FitConfig(
        heldout_fraction=args.heldout_fraction,
        min_track_count=args.min_track_count,
        embedding=EmbeddingConfig(dim=args.dim, epochs=args.embedding_epochs),
        encoder=EncoderConfig(epochs=args.encoder_epochs, batch_size=base.encoder.batch_size),
        response=ResponseConfig(epochs=args.epochs),
    ).with_seed(args.seed)
    manifest = fit_world(args.log, args.out, config, progress=not args.quiet, force=args.force)
    rep = manifest["reports"]
    resp, cat, logs = rep["response"], rep["catalog"], rep["logs"]
    print(f"fitted world: {args.out}")
    print(
        f"  {logs['train_sessions']} training / {logs['heldout_sessions']} held-out sessions "
        f"(held-out log: {Path(args.out) / 'heldout.csv.gz'})"
    )
    print(
        f"  catalog {cat['tracks']} tracks (played >= {cat['min_track_count']} times; "
        f"{cat['play_share']:.1%} of training plays)"
    )
    if "heldout_auc" in resp:
        print(
            f"  response model AUC on held-out plays {resp['heldout_auc']:.3f} "
            f"(popularity only {resp['popularity_auc']:.3f})"
        )
    print(f"  next: musicrec realism {args.out} --heldout {Path(args.out) / 'heldout.csv.gz'}")
    return 0


def _cmd_realism(args: argparse.Namespace) -> int:
    from musicrec_gym.realism import realism_report, summary_lines

    _world_argument(args.world)
    if args.heldout is not None and not Path(args.heldout).is_file():
        problem = "not a file" if Path(args.heldout).exists() else "file not found"
        raise ConfigError(f"argument --heldout: {args.heldout}: {problem}")
    if args.heldout is None and not (Path(args.world) / "heldout.csv.gz").is_file():
        raise ConfigError(
            f"argument world: {args.world} has no heldout.csv.gz (worlds written by "
            "`musicrec fit` have one); pass the held-out log with --heldout"
        )
    heldout = args.heldout or str(Path(args.world) / "heldout.csv.gz")
    out = args.out or str(Path(args.world) / "realism")
    s = realism_report(
        args.world, heldout, out, seed=args.seed, min_track_plays=args.min_plays,
        min_group_sessions=args.min_group_sessions,
        group_replays=args.group_replays,
    )  # fmt: skip
    print(f"realism of {args.world} on {s.sessions} held-out sessions ({heldout}):")
    for line in summary_lines(s):
        print(f"  {line}")
    print(f"  report: {Path(out) / 'realism.md'}")
    return 0


def _cmd_session_length(args: argparse.Namespace) -> int:
    from musicrec_gym.session_length.grid import run_grid
    from musicrec_gym.session_length.grid_config import load_config

    config = load_config(args.config)
    log = (lambda *_: None) if args.quiet else print
    result = run_grid(
        config,
        out=args.out,
        progress=not args.quiet,
        log=log,
        command=["musicrec", *args.argv],
    )
    print(result.markdown, end="")
    base = result.table[result.table["baseline"]].iloc[0]
    best = result.table[result.table["best"]].iloc[0]
    print(
        f"\nbest: {best['method']} d={best['dropout']:g} {best['clusters']} "
        f"std={best['standardisation']}: normalised MAE {best['norm_mae']:.3f} "
        f"(baseline GRU {base['norm_mae']:.3f}); written to {result.run_dir} "
        f"in {result.elapsed_s:.0f} s"
    )
    if args.leave_world:
        from musicrec_gym.session_length.leave import (
            listener_expected_tracks,
            write_leave_file,
        )
        from musicrec_gym.world import load_world

        world = load_world(args.leave_world)
        users = set(result.summary.rows["user_id"].astype(str))
        matched = int(world.listeners["user_id"].astype(str).isin(users).sum())
        if matched == 0:
            raise MusicRecError(
                f"--leave-world {args.leave_world}: none of its listeners has a history in "
                f"{args.config}; use the synthetic histories of that world"
            )
        lengths = listener_expected_tracks(world, result.best, result.summary)
        cell = result.best.cell
        path = write_leave_file(
            args.leave_world,
            lengths,
            {"model": cell.label(), "config": str(args.config), "listeners_with_history": matched},
        )
        print(
            f"{path}: expected session length of {len(lengths)} listeners ({matched} from "
            f"their histories), mean {lengths.mean():.1f} tracks"
        )
    return 0


def _cmd_embeddings(args: argparse.Namespace) -> int:
    from musicrec_gym.build import outside_package
    from musicrec_gym.data.sources import load_token_sessions, sweep_source
    from musicrec_gym.embeddings import EmbeddingConfig

    out_path = outside_package(args.out, "--out")
    existing = next(p for p in (out_path, *out_path.parents) if p.exists())
    if not existing.is_dir():  # the directory, or the folder it would be created in
        raise ConfigError(f"argument --out: {args.out}: {existing} is a file, not a directory")
    options: dict = {}
    if args.format == "lastfm":
        options["gap_minutes"] = args.gap_minutes
    if args.format == "playlists":
        options["allow_pickle"] = args.allow_pickle
    source = load_token_sessions(args.format, args.source, **options)
    print(source.report.summary())
    print(
        f"{source.note}: {len(source.sessions):,} sequences, {source.n_tokens:,} tokens, "
        f"{source.n_tracks:,} distinct tracks"
    )
    base = EmbeddingConfig(dim=args.dim, epochs=args.epochs, seed=args.seed)
    out = Path(args.out)
    sweep_source(source, args.ns_exponent, base=base, k=args.k, out_dir=out)
    print()
    print((out / "embedding_sweep.md").read_text(encoding="utf-8"))
    print(f"written: {out / 'embedding_sweep.csv'}, {out / 'embedding_sweep.md'}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from musicrec_gym.world import load_world

    _world_argument(args.world)
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
        backend=args.backend,
        address=args.address,
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
    b.add_argument(
        "--out", default="world",
        help="world directory to write (default: ./world): new or empty, or a synthetic "
        "world to replace with --force; never inside the installed package",
    )  # fmt: skip
    b.add_argument(
        "--force", action="store_true",
        help="replace the synthetic world at --out (a directory musicrec wrote: its "
        "manifest.json lists every file; any other non-empty directory is refused) and "
        "overwrite the files of --logs",
    )  # fmt: skip
    b.add_argument("--seed", type=_SEED, default=0, help="seed of every stage (default 0)")
    b.add_argument("--logs", default=None, help="also write the logged sessions here")
    b.add_argument("--tensorboard", default=None, help="encoder training curves here")
    b.add_argument(
        "--n-tracks", type=_int_at_least(10), default=None, help="catalog size (default 1000)"
    )
    b.add_argument("--n-listeners", type=_POSITIVE, default=None, help="listeners (default 1000)")
    b.add_argument(
        "--n-sessions", type=_int_at_least(10), default=None, help="logged sessions (150000)"
    )
    b.add_argument("--embedding-epochs", type=_POSITIVE, default=None, help="word2vec epochs (10)")
    b.add_argument("--encoder-epochs", type=_POSITIVE, default=None, help="autoencoder epochs (3)")
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
        "finished cells are skipped, a result.json that fails its range checks is recomputed. "
        "A run holds run.lock in its directory: a second run into it fails at once. Ctrl-C "
        "stops the run (finished cells kept, one line with the command to resume, exit 130); "
        "a second Ctrl-C exits at once. Pool workers die with the run.",
    )
    r.add_argument(
        "config", help="experiment config (YAML), e.g. experiments/configs/quickstart.yaml"
    )
    r.add_argument("--out", default=None, help="run directory (default: runs/<name>)")
    r.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="cells at once: parallel processes with --backend local (default: 2); the "
        "limit on concurrent Ray Tune trials with --backend ray (default: one per CPU of "
        "the Ray instance)",
    )
    r.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where the cells run: 'local' (default) in a pool of processes on this "
        "machine; 'ray' as Ray Tune trials (needs pip install \"musicrec-gym[ray]\"). "
        "Same files, TensorBoard layout and resume behaviour either way",
    )
    r.add_argument(
        "--address",
        default=None,
        help="with --backend ray: the running Ray cluster to use, e.g. HOST:6379 as printed "
        "by `ray start --head` (default: a local Ray instance started for the run, or "
        "RAY_ADDRESS when set). The run directory must be on a filesystem every node sees",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--force",
        action="store_true",
        help="run into a directory that holds a different config (reruns changed cells)",
    )
    r.set_defaults(func=_cmd_run)

    f = sub.add_parser(
        "fit",
        help="fit a world to a real session log (MSSD format)",
        description="Split the log's sessions into training and held-out sessions (by "
        "session, seeded) and fit, on the training sessions only: the catalog, track "
        "embeddings (gensim skip-gram), the LSTM session encoder, the response model "
        "(listen/skip: two PyTorch towers, and the logs' rate for repeats; its AUC on the "
        "held-out sessions is printed next to a "
        "popularity-only model's) and the leave model. Writes a world directory for "
        'gym.make("MusicRec-v0", world=OUT), with the held-out sessions as heldout.csv.gz '
        "(for `musicrec realism`) and a manifest of sha256 hashes: the same log and seed "
        "give the same files.",
    )
    f.add_argument("log", help="session log in the MSSD log_mini format (.csv or .csv.gz)")
    f.add_argument(
        "--out", required=True,
        help="world directory to write: new or empty, or a fitted world to replace with "
        "--force; never inside the installed package",
    )  # fmt: skip
    f.add_argument(
        "--force", action="store_true",
        help="replace the fitted world at --out (a directory musicrec wrote: its "
        "manifest.json lists every file; any other non-empty directory is refused)",
    )  # fmt: skip
    f.add_argument(
        "--heldout-fraction", default=0.2,
        type=_float_in("a number between 0 and 1 (exclusive)", lambda x: 0 < x < 1),
        help="share of sessions held out for evaluation, drawn at random by session (0.2)",
    )  # fmt: skip
    f.add_argument("--seed", type=_SEED, default=0, help="seed of the split and every stage (0)")
    f.add_argument(
        "--min-track-count", type=_POSITIVE, default=5,
        help="training plays a track needs to be in the catalog (the action space); rarer "
        "tracks share one 'rare track' row that only logged plays use (5)",
    )  # fmt: skip
    f.add_argument("--dim", type=_POSITIVE, default=8, help="track embedding size (8)")
    f.add_argument("--embedding-epochs", type=_POSITIVE, default=10, help="word2vec epochs (10)")
    f.add_argument(
        "--encoder-epochs", type=_POSITIVE, default=40,
        help="session autoencoder epochs (40: the code must keep the listen flags)",
    )  # fmt: skip
    f.add_argument("--epochs", type=_POSITIVE, default=8, help="response-model epochs (8)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=_cmd_fit)

    rl = sub.add_parser(
        "realism",
        help="compare a fitted world with held-out real sessions",
        description="Replay the held-out sessions under the fitted simulator (their first 5 "
        "plays as the warm-up, their logged next tracks as the actions; listens and leaving "
        "sampled with a fixed seed) and compare with the real sessions: skip rate overall "
        "and by position, session-length histogram and KS statistic, the response model's "
        "AUC and reliability curve, per-track listen-rate correlation, repeat rate and the "
        "listen rate of repeats, and policy groups (sessions by context_type and by shuffle: "
        "skip rate and listens per session per group, Kendall's tau of the rankings). Writes "
        "realism.md, realism.json and four PNGs.",
    )
    rl.add_argument("world", help="world directory written by `musicrec fit`")
    rl.add_argument(
        "--heldout", default=None,
        help="held-out sessions, MSSD format (default: WORLD/heldout.csv.gz)",
    )  # fmt: skip
    rl.add_argument("--out", default=None, help="report directory (default: WORLD/realism)")
    rl.add_argument("--seed", type=_SEED, default=0, help="seed of the replay (0)")
    rl.add_argument(
        "--min-plays", type=_POSITIVE, default=5,
        help="held-out plays (from position 6) a track needs for the per-track correlation (5)",
    )  # fmt: skip
    rl.add_argument(
        "--min-group-sessions", type=_POSITIVE, default=30,
        help="sessions a policy group needs to enter the Kendall tau; smaller groups are "
        "listed as 'too few sessions' (30)",
    )  # fmt: skip
    rl.add_argument(
        "--group-replays", type=_POSITIVE, default=5,
        help="replays of each held-out session the policy groups average (5)",
    )  # fmt: skip
    rl.set_defaults(func=_cmd_realism)

    sl = sub.add_parser(
        "session-length",
        help="session-length prediction: a grid of GRU/LSTM models from a YAML config",
        description="Sessionise listening histories (synthetic world or Last.fm-1K files), "
        "build per-user session rows, train GRU / LSTM / two-layer LSTM models (optionally "
        "one per user cluster, with standardisation off, on or mixed) for every cell of the "
        "config's grid and write results.csv and results.md (MAE and MAE normalised by the "
        "mean predictor's, on each user's last sessions), summary.csv, and the clustering "
        "diagnostics elbow.png and silhouette.png. "
        "Schema: musicrec_gym/session_length/grid_config.py.",
    )
    sl.add_argument(
        "config",
        help="grid config (YAML), e.g. experiments/configs/session_length_synthetic.yaml",
    )
    sl.add_argument(
        "--out", default=None, help="run directory (default: runs/session-length/<name>)"
    )
    sl.add_argument(
        "--leave-world",
        default=None,
        metavar="DIR",
        help="also write leave.npz (each listener's expected session length in tracks, from "
        "the best cell's model) into this world directory and its manifest, so that its "
        "simulator's leave base rate is 1/expected length; not the built-in world",
    )
    sl.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    sl.set_defaults(func=_cmd_session_length)

    em = sub.add_parser(
        "embeddings",
        help="playlist-completion scores of track embeddings of a real log, per ns_exponent",
        description="Read a listening log or playlist corpus, cut it into token sequences "
        "(MSSD: sessions; Last.fm: sessions cut at a gap; playlists: track tokens of each "
        "playlist; events: each user's items in file order), and for each ns_exponent train "
        "gensim skip-gram embeddings and score them on playlist completion (the last track "
        "of each sequence predicted from the one before by cosine nearest neighbours; Hit@K "
        "and NDCG@K next to a most-popular baseline). Writes OUT/embedding_sweep.csv and "
        "OUT/embedding_sweep.md (one row per ns_exponent) and prints the table.",
    )
    em.add_argument("source", help="the file to read (.gz allowed for CSV/TSV formats)")
    em.add_argument(
        "--format", required=True, choices=("mssd", "lastfm", "playlists", "events"),
        help="mssd: MSSD session log (log_mini schema); lastfm: Last.fm-1K history TSV; "
        "playlists: Deezer-style .npy/.npz array of track_<id>/artist_<id> tokens; events: "
        "implicit-feedback event log CSV",
    )  # fmt: skip
    em.add_argument(
        "--ns-exponent", type=_float_in("a finite number", lambda x: True), nargs="+",
        default=[-1.0, -0.5, 0.0, 0.5, 1.0],
        metavar="X",
        help="values of gensim's negative-sampling exponent, one run each "
        "(default: -1 -0.5 0 0.5 1; word2vec's own default is 0.75)",
    )  # fmt: skip
    em.add_argument("--dim", type=_POSITIVE, default=8, help="size of a track vector (8)")
    em.add_argument("--epochs", type=_POSITIVE, default=10, help="passes over the sequences (10)")
    em.add_argument("--seed", type=_SEED, default=0, help="seed of gensim's training (0)")
    em.add_argument(
        "--k", type=_POSITIVE, default=10, help="length of the recommendation list (10)"
    )
    em.add_argument(
        "--gap-minutes", type=_float_in("a number of minutes > 0", lambda x: x > 0), default=20.0,
        help="lastfm only: a gap longer than this many minutes starts a new session (20)",
    )  # fmt: skip
    em.add_argument(
        "--allow-pickle", action="store_true",
        help="playlists only: read an object array (playlists of different lengths are "
        "stored with pickle, which can run code: only for files you trust)",
    )  # fmt: skip
    em.add_argument(
        "--out", default="embedding_sweep", help="directory of the results (./embedding_sweep)"
    )
    em.set_defaults(func=_cmd_embeddings)

    i = sub.add_parser("info", help="describe a world (the built-in one by default)")
    i.add_argument("world", nargs="?", default=None, help="world directory")
    i.set_defaults(func=_cmd_info)
    from musicrec_gym.optimum_cli import add_command as add_optimum  # optimum.md

    add_optimum(sub)
    from experiments.log_cli import add_command as add_log  # logged-data.md
    from experiments.ope_cli import add_command as add_ope

    add_log(sub)
    add_ope(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``musicrec``; errors of ours print one clear line and exit 2; Ctrl-C exits 130."""
    parser = build_parser()
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if from_command_line and args.command in _TRAINING_COMMANDS:
        reexec_pinned(argv)  # same artifacts on every x86-64 machine (reproducible.py)
    try:
        return int(args.func(args) or 0)
    except MusicRecError as err:
        print(f"musicrec {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # Ctrl-C: one line, no traceback (a stopped run says how to resume), status 130.
        print(f"musicrec {args.command}: {str(err) or 'interrupted'}", file=sys.stderr)
        if from_command_line and threading.current_thread() is threading.main_thread():
            # the program is ending: another Ctrl-C ends it at once, without a
            # KeyboardInterrupt raised in the interpreter's exit handlers (a traceback)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        return 130


if __name__ == "__main__":
    sys.exit(main())
