"""The docs site: mkdocs.yml builds docs/ with every check MkDocs has turned into a failure
(strict mode; pages missing from the nav, links to missing pages or anchors, links out of
docs/), the README links every page, and a broken link really fails the build (so the
check cannot pass silently: `mkdocs build --quiet`, for one, drops the very warnings that
strict mode counts).

    .venv/bin/python -m pytest -q tests/docs/test_docs_site.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.mdblocks import ROOT

CONFIG = ROOT / "mkdocs.yml"
DOCS = ROOT / "docs"


def _build(config: Path, site: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}   # Material's banner, not a warning
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", str(config),
                           "--site-dir", str(site), *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _pages() -> set[str]:
    return {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}


def _nav_pages(nav) -> list[str]:
    """The .md files a nav names, however nested."""
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for v in nav or [] for p in _nav_pages(v)]


def _config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_the_site_builds_strictly(tmp_path):
    done = _build(CONFIG, tmp_path / "site", "--strict")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "WARNING" not in log, log
    for page in sorted(_pages()):
        stem = page.removesuffix(".md")
        html = tmp_path / "site" / ("index.html" if stem == "index" else f"{stem}/index.html")
        assert html.is_file(), f"{page} was not built"
        # Fences with test markers (```sh run timeout=60) render as code, not as text.
        assert "```" not in html.read_text(encoding="utf-8"), f"{page}: a fence did not render"


def test_every_page_is_in_the_nav_and_every_check_is_on():
    config = _config()
    assert config["docs_dir"] == "docs" and config["strict"] is True
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), f"a page is listed twice: {nav}"
    assert set(nav) == _pages(), (f"not in the nav: {sorted(_pages() - set(nav))}; "
                                  f"no such page: {sorted(set(nav) - _pages())}")
    checks = config["validation"]
    assert all(v == "warn" for group in ("nav", "links") for v in checks[group].values())
    assert set(checks["links"]) >= {"not_found", "anchors", "absolute_links",
                                    "unrecognized_links"}
    assert set(checks["nav"]) >= {"omitted_files", "not_found"}


def test_make_lint_builds_the_site_strictly():
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\nlint:", 1)[1]
    recipe = recipe.split("\n\n", 1)[0]
    lines = [line for line in recipe.splitlines() if "mkdocs build" in line]
    assert lines, "`make lint` builds the docs site"
    words = lines[0].split("#", 1)[0].split()
    assert "--strict" in words
    assert "--quiet" not in words and "-q" not in words, "--quiet hides what strict fails on"


def test_the_readme_links_every_page_and_nothing_missing():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert not [t for t in local if not (ROOT / t).exists()], "README links a missing file"
    linked = {t.removeprefix("docs/") for t in local if t.startswith("docs/")}
    assert _pages() <= linked, f"README's docs map lacks {sorted(_pages() - linked)}"


BROKEN = {
    "a missing page": "[x](nowhere.md)",
    "a missing anchor": "[x](other.md#nowhere)",
    "a file outside docs/": "[x](../README.md)",
    "an absolute link": "[x](/other.md)",
    "a page not in the nav": None,
}


@pytest.mark.parametrize("case", ["nothing (the control)", *BROKEN])
def test_a_broken_link_fails_the_build(tmp_path, case):
    """A tiny project under the repository's own settings (its mkdocs.yml with another
    docs_dir and nav; built without --strict, so the strictness is the config's)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    link = BROKEN.get(case)
    (docs / "index.md").write_text(
        "# Home\n\nSee [the other page](other.md#a-section).\n\n"
        "```sh run timeout=60\ntrue\n```\n" + (f"\n{link}\n" if link else ""))
    (docs / "other.md").write_text("# Other\n\n## A section\n\nText.\n")
    if case == "a page not in the nav":
        (docs / "stray.md").write_text("# Stray\n")
    config = {**_config(), "docs_dir": str(docs), "site_dir": str(tmp_path / "site"),
              "nav": [{"Home": "index.md"}, {"Other": "other.md"}]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    done = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    log = done.stdout + done.stderr
    if link is None and case != "a page not in the nav":
        assert done.returncode == 0, log
    else:
        assert done.returncode != 0, f"{case}: the build passed\n{log}"
        assert "Aborted with" in log and "in strict mode" in log, log
