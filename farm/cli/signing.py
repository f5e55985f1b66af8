"""The signing flags of `reelfarm render` and `reelfarm serve`: the key and certificate chain
that sign the C2PA content credentials of every mp4 and PNG the farm delivers, checked
before any work (farm.media.credentials)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# The farm's own signing chain when no --signing-key is given: made once, beside the other
# state `reelfarm` keeps in .reelfarm/ (the job database and artifacts of `reelfarm serve`).
SIGNING_DIR = Path(".reelfarm") / "signing"


def add_signing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--signing-key", metavar="KEY.pem",
                   help="PEM private key (EC P-256/384/521, RSA or Ed25519) that signs the C2PA "
                        "content credentials embedded in the mp4 and PNGs; with --signing-cert")
    p.add_argument("--signing-cert", metavar="CHAIN.pem",
                   help="PEM certificate chain of --signing-key: its certificate first, then "
                        f"the intermediate(s). Without both: a local chain in {SIGNING_DIR}/ "
                        "(valid, but on no trust list)")


def load_signer(args: argparse.Namespace, folder: Path = SIGNING_DIR) -> tuple[Any, str]:
    """(the C2PA signer, '') or (None, what is wrong with the signing flags). Without
    flags: the local chain in `folder`."""
    from farm.media.credentials import SigningConfig, local_signing

    if bool(args.signing_key) != bool(args.signing_cert):
        given, missing = (("--signing-key", "--signing-cert") if args.signing_key
                          else ("--signing-cert", "--signing-key"))
        return None, f"{given} needs {missing} too (the key and its certificate chain)"
    try:
        config = (SigningConfig(Path(args.signing_key), Path(args.signing_cert))
                  if args.signing_key else local_signing(folder))
        return config.load(), ""
    except OSError as exc:  # the local chain could not be written
        return None, (f"cannot keep a local signing key in {folder}/ ({exc}); give "
                      "--signing-key and --signing-cert")
    except ValueError as exc:
        return None, str(exc)
