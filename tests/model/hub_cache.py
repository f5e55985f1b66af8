"""A Hugging Face hub cache written by hand, as huggingface_hub lays one out after a
download (tests cannot reach the Hub):

    CACHE/models--OWNER--NAME/
        blobs/<sha256>                      the files' contents, by hash
        snapshots/<commit>/<path>           symlinks into ../blobs (relative, as hf writes)
        refs/<revision>                     the commit a branch or tag points at (no newline)
        trees/<commit>.json                 the repo's file listing (huggingface_hub >= 2.x)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def commit_of(text: str) -> str:
    """A 40-hex commit id (what refs/ and snapshots/ are named by)."""
    return hashlib.sha1(text.encode()).hexdigest()


def write_snapshot(cache: Path, repo_id: str, folder: Path, commit: str,
                   refs: Iterable[str] = ("main",), only: Iterable[str] | None = None,
                   listing: bool = True) -> Path:
    """`folder`'s files as snapshot `commit` of `repo_id` (`only`: those of these relative
    paths, as a download with allow_patterns leaves it); `refs` point at it; `listing`:
    the tree listing of every file of `folder`, as a download writes it."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    repo = repo_folder(cache, repo_id)
    snapshot = repo / "snapshots" / commit
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    keep = None if only is None else set(only)
    entries = {}
    for f in files:
        rel = f.relative_to(folder).as_posix()
        data = f.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        entries[rel] = TreeCacheEntry(size=len(data), blob_id=commit_of(rel + digest))
        if keep is not None and rel not in keep:
            continue
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    if listing:
        write_tree_cache(str(repo), commit, entries)
    return snapshot
