"""`reelfarm verify DELIVERABLE...`: check deliverables against their embedded C2PA
content credentials (mp4, PNG: signed, they travel with the file) and their provenance
manifests (the sidecar JSON, or a sequence folder's provenance.json), whichever they have.
Each signed file's line names its signer, the issuer, and whether the root is trusted.

Exit status (the worst path decides):
  0  every path verifies: its credentials are intact and/or it matches its manifest
     (a file renamed together with its sidecar verifies, noting the old name)
  1  a file was modified: a credential's hash or signature fails, its sha256 differs from
     the manifest, or a sequence lost or gained files
  2  a path cannot be verified: missing, or with neither credentials nor a usable manifest
"""

from __future__ import annotations

import argparse
import sys

EXIT = {"ok": 0, "modified": 1, "no-manifest": 2}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check deliverables against their content credentials "
                                      "and provenance manifests")
    p.add_argument("paths", nargs="+", metavar="DELIVERABLE",
                   help="a deliverable file (mp4, PNG, EXR, contact sheet, .otio), one frame of "
                        "a sequence, or a sequence folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from farm.media.provenance import verify

    worst = 0
    for path in args.paths:
        verdict = verify(path)
        stream = sys.stdout if verdict.ok else sys.stderr
        for line in verdict.lines:
            print(("ok: " if verdict.ok else "error: ") + line, file=stream)
        worst = max(worst, EXIT[verdict.status])
    return worst
