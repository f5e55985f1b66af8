"""`reelfarm verify DELIVERABLE...`: check deliverables against their provenance manifests.

Exit 0 when every path matches its manifest, 1 when a file was modified (or a sequence
lost or gained files), 2 when a path has no manifest (it cannot be verified).
"""

from __future__ import annotations

import argparse
import sys

EXIT = {"ok": 0, "modified": 1, "no-manifest": 2}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check deliverables against their provenance manifests")
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
