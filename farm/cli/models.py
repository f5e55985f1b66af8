"""`reelfarm models init-tiny DIR`: write a tiny random-weight model folder;
`reelfarm models train-toy DIR`: train the toy model (farm.toy) and write its folder;
`reelfarm models train-lora BASE DIR --concept NAME`: a LoRA pair on it (farm.cli.lora);
`reelfarm models pull REPO`: fetch a Hugging Face repo into the local cache (the only
command that touches the network; docs/weights.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from farm.cli.lora import add_train_lora
    from farm.model.tiny import TINY_KINDS

    parser = sub.add_parser("models", help="manage model folders")
    msub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    init = msub.add_parser("init-tiny",
                           help="write a tiny random-weight Wan model (diffusers format)")
    init.add_argument("directory")
    init.add_argument("--kind", choices=TINY_KINDS, default="t2v-a14b")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=run_init_tiny)
    toy = msub.add_parser("train-toy", help="train the toy model on CPU (procedural clips; "
                          "docs/toy-model.md) and write it as a diffusers-format folder")
    toy.add_argument("directory")
    toy.add_argument("--minutes", type=float, default=60.0,
                     help="wall-clock budget of the whole training (default 60)")
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--clips", type=int, default=3000, help="training clips cached as latents")
    toy.add_argument("--workers", type=int, default=1,
                     help="data-parallel training processes, one thread each "
                     "(2 on a 2-core machine)")
    toy.add_argument("--vae-steps", type=int, default=None,
                     help="fixed VAE steps instead of a share of --minutes (repeats a run exactly)")
    toy.add_argument("--dit-steps", type=int, default=None,
                     help="fixed expert steps instead of the rest of --minutes")
    toy.add_argument("--decoder-steps", type=int, default=None,
                     help="fixed decoder fine-tune steps (step 4) instead of its share of "
                     "--minutes; 0: none")
    toy.add_argument("--resume", action="store_true",
                     help="continue DIR from its last save in or after step 3: more expert "
                     "steps (to --dit-steps in all, or for --minutes), then step 4 if DIR "
                     "has not had it or to a larger --decoder-steps")
    toy.add_argument("--decoder-restart", action="store_true",
                     help="with --resume and a larger --decoder-steps: step 4 on from DIR's "
                     "decoder weights with a new optimizer and EMA (a folder without "
                     "decoder_state.pt, or a changed step 4)")
    toy.add_argument("--expert-restart", action="store_true",
                     help="with --resume and a larger --dit-steps: step 3 on from DIR's expert "
                     "and text encoder weights with a new optimizer, EMA and warm-up (a folder "
                     "without train_state.pt)")
    toy.add_argument("--dit-anneal", type=int, default=0, metavar="N",
                     help="decay the expert lr linearly to 0 over the last N of "
                     "--dit-steps (default 0: none)")
    toy.set_defaults(run=run_train_toy)
    add_train_lora(msub)
    _add_pull(msub)


def _add_pull(msub) -> None:
    from farm.model.hub import POOLS

    pull = msub.add_parser("pull", help="download a Hugging Face model repo (only the folders "
                           "the named pools need) into the local Hugging Face cache")
    pull.add_argument("repo", metavar="REPO",
                      help="OWNER/NAME[@REVISION], e.g. Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    pull.add_argument("--pools", metavar="POOL,...",
                      help=f"what the machine will run: {', '.join(POOLS)} (default: all)")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--cache-dir", help="Hugging Face hub cache (default: HF_HUB_CACHE, "
                      "else HF_HOME/hub, else ~/.cache/huggingface/hub)")
    pull.set_defaults(run=run_pull)


def pull_request(args: argparse.Namespace, env) -> dict:
    """snapshot_download's arguments for `models pull` (ValueError naming the flag);
    `env`: the environment, read here at the command line's edge."""
    from farm.model.hub import cache_from_env, parse_pools, pull_arguments

    cache = Path(args.cache_dir).expanduser() if args.cache_dir else cache_from_env(env)
    return pull_arguments(args.repo, parse_pools(args.pools), args.revision, cache)


def run_pull(args: argparse.Namespace) -> int:
    import os
    import sys

    try:
        request = pull_request(args, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from farm.model.hub import pull

    print(f"pulling {request['repo_id']} (revision {request['revision'] or 'main'}) into "
          f"{request['cache_dir']}: {' '.join(request['allow_patterns'])}", flush=True)
    try:
        snapshot = pull(request)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        print(f"error: pulling {args.repo}: {exc}", file=sys.stderr)
        return 1
    print(f"pulled {args.repo} to {snapshot}; render it with --model {args.repo} "
          "(or `model:` in the storyboard), offline")
    return 0


def run_init_tiny(args: argparse.Namespace) -> int:
    from farm.model.tiny import init_tiny
    from farm.observe.logs import quiet_libraries

    if args.seed < 0:
        raise SystemExit(f"--seed must be >= 0, got {args.seed}")
    quiet_libraries()
    path = init_tiny(args.directory, args.kind, args.seed)
    print(f"wrote tiny {args.kind} model (seed {args.seed}) to {path}")
    return 0


def _check_train_flags(args: argparse.Namespace) -> str | None:
    if args.seed < 0:
        return f"--seed must be >= 0, got {args.seed}"
    if not args.minutes > 0:
        return f"--minutes must be > 0, got {args.minutes}"
    if args.clips < 1:
        return f"--clips must be >= 1, got {args.clips}"
    if args.workers not in (1, 2, 4, 8):
        return f"--workers must be one of 1, 2, 4, 8 (it divides the batches), got {args.workers}"
    for flag, value in (("--vae-steps", args.vae_steps), ("--dit-steps", args.dit_steps)):
        if value is not None and value < 1:
            return f"{flag} must be >= 1, got {value}"
    if args.decoder_steps is not None and args.decoder_steps < 0:
        return f"--decoder-steps must be >= 0, got {args.decoder_steps}"
    if args.decoder_restart and not (args.resume and args.decoder_steps is not None):
        return "--decoder-restart needs --resume and --decoder-steps (the decoder steps in all)"
    if args.expert_restart and not (args.resume and args.dit_steps is not None):
        return "--expert-restart needs --resume and --dit-steps (the expert steps in all)"
    if args.dit_anneal < 0 or (args.dit_anneal and args.dit_steps is None):
        return ("--dit-anneal must be >= 0 and needs --dit-steps (the step the decay ends at), "
                f"got {args.dit_anneal}")
    return None


def run_train_toy(args: argparse.Namespace) -> int:
    if problem := _check_train_flags(args):
        raise SystemExit(f"error: {problem}")
    from farm.observe.logs import quiet_libraries
    from farm.toy.train import SetupError, TrainConfig, stamped, train_toy

    quiet_libraries()
    cfg = TrainConfig(seed=args.seed, minutes=args.minutes, clips=args.clips, workers=args.workers,
                      vae_steps=args.vae_steps, dit_steps=args.dit_steps,
                      decoder_steps=args.decoder_steps,
                      decoder_restart=args.decoder_restart, expert_restart=args.expert_restart,
                      dit_anneal=args.dit_anneal)
    try:
        record = train_toy(args.directory, cfg, log=stamped, setup=quiet_libraries,
                           resume=args.resume)
    except SetupError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote the toy model to {args.directory}: {record['vae_steps']} VAE steps, "
          f"{record['dit_steps']} expert steps, {record['decoder_steps']} decoder steps, "
          f"{record['minutes']} min")
    return 0
