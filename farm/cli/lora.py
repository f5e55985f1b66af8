"""`reelfarm models train-lora BASE DIR --concept NAME`: train a LoRA pair on the toy model
for a named character (farm.toy.lora_train; docs/toy-model.md)."""

from __future__ import annotations

import argparse


def add_train_lora(msub) -> None:
    from farm.toy.data import CHARACTERS  # numpy only: building the parser stays light

    lora = msub.add_parser("train-lora", help="train a LoRA pair (one per expert) on the toy "
                           "model for a named character its base never saw")
    lora.add_argument("base", metavar="BASE", help="the toy model: `toy` or a folder "
                      "`models train-toy` wrote")
    lora.add_argument("directory", metavar="DIR",
                      help="output: DIR/high and DIR/low (pytorch_lora_weights.safetensors)")
    lora.add_argument("--concept", required=True, metavar="NAME",
                      help=f"the character: one of {', '.join(CHARACTERS)}")
    lora.add_argument("--seed", type=int, default=0)
    lora.add_argument("--steps", type=int, default=None,
                      help="training steps, both experts each step (default 400)")
    lora.add_argument("--rank", type=int, default=None, help="LoRA rank (default 8)")
    lora.add_argument("--clips", type=int, default=None,
                      help="character clips cached, and as many base clips (default 128)")
    lora.set_defaults(run=run_train_lora)


def config(args: argparse.Namespace):
    """The training configuration of the flags (unset: LoraConfig's defaults); SystemExit
    naming the flag if one is bad."""
    from farm.toy.data import CHARACTERS
    from farm.toy.lora_train import LoraConfig

    if args.concept not in CHARACTERS:
        raise SystemExit(f"error: --concept must be one of {', '.join(CHARACTERS)}, "
                         f"got {args.concept!r}")
    given = {k: getattr(args, k) for k in ("seed", "steps", "rank", "clips")
             if getattr(args, k) is not None}
    for name, value in given.items():
        least = 0 if name == "seed" else 1
        if value < least:
            raise SystemExit(f"error: --{name} must be >= {least}, got {value}")
    return LoraConfig(concept=args.concept, **given)


def run_train_lora(args: argparse.Namespace) -> int:
    cfg = config(args)
    from farm.model.loader import resolve_model
    from farm.observe.logs import quiet_libraries
    from farm.toy.lora_train import train_lora
    from farm.toy.train import stamped

    try:
        base = resolve_model(args.base).path
    except ValueError as exc:
        raise SystemExit(f"error: BASE: {exc}") from None
    if base is None or not (base / "transformer_2").is_dir():
        raise SystemExit(f"error: BASE {args.base!r} is not the toy model (`toy`, or a folder "
                         "`models train-toy` wrote)")
    quiet_libraries()
    record = train_lora(base, args.directory, cfg, log=stamped)
    print(f"wrote the {cfg.concept} LoRA pair to {args.directory}/high and "
          f"{args.directory}/low: {cfg.steps} steps, {record['minutes']} min")
    return 0
