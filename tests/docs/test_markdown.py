"""README.md (and docs/**/*.md) is executed: every shell or Python block says `run` or
`norun: <reason>`, and every `run` block runs here as written (tests/docs/mdblocks.py has
the rules). A README change that breaks a flow breaks the build.

    .venv/bin/python -m pytest -q tests/docs                   # all (a few minutes)
    .venv/bin/python -m pytest -q tests/docs -k "README.md:27" # one block, by its line
    .venv/bin/python -m pytest -q tests/docs -m "not slow"     # the quick ones
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.docs.mdblocks import (
    ROOT,
    all_blocks,
    markdown_files,
    parse,
    run_item,
    runnable_items,
    tail,
    untracked_files,
)

BLOCKS = all_blocks()
ITEMS = runnable_items(BLOCKS)


def test_every_shell_and_python_block_says_whether_it_runs():
    problems = [f"{b.where}: ```{b.info}: {e}" for b in BLOCKS for e in b.errors]
    assert not problems, "\n".join(problems)


def test_file_blocks_equal_their_files():
    blocks = [b for b in BLOCKS if b.file]
    assert blocks, "the docs show example files (file=...)"
    wrong = []
    for b in blocks:
        path = ROOT / b.file
        if not path.is_file():
            wrong.append(f"{b.where}: file={b.file} does not exist")
        elif path.read_text(encoding="utf-8") != b.text:
            wrong.append(f"{b.where}: the block differs from {b.file} (copy one onto the other)")
    assert not wrong, "\n".join(wrong)


def test_sessions_start_with_a_shell_block():
    for item in ITEMS:
        assert item.blocks[0].lang not in ("python", "py", "python3") or len(item.blocks) == 1, (
            f"{item.id}: a session starts with a shell block (it starts what later blocks use)")


def _commands(text: str) -> list[str]:
    """The commands of a shell block, comments and blank lines dropped."""
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(" ".join(words))
    return out


def test_readme_starts_with_exactly_two_setup_commands():
    """README's first section after the intro is "Two commands": its shell blocks hold
    exactly `make demo` (run as written) and `make test` (this suite: norun), no shell
    block comes before them, and CI (.ci/run) runs `make test`."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    headings = [i + 1 for i, line in enumerate(lines) if line.startswith("## ")]
    assert lines[headings[0] - 1] == "## Two commands", "README's first section is 'Two commands'"
    first, end = headings[0], headings[1]
    shell = [b for b in parse(ROOT / "README.md") if b.lang in ("sh", "bash")]
    blocks = [b for b in shell if first < b.line < end]
    assert [c for b in blocks for c in _commands(b.text)] == ["make demo", "make test"]
    assert shell[0] is blocks[0], "no shell block comes before the two commands"
    demo, test = blocks[0], blocks[-1]
    assert demo.run and _commands(demo.text) == ["make demo"], "`make demo` runs as written"
    assert test.norun, "`make test` is this suite itself: norun"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in _commands(ci), ".ci/run runs `make test`"


def test_markdown_files_are_found():
    files = markdown_files()
    assert files[0] == ROOT / "README.md"
    assert all(f == ROOT / "README.md" or f.is_relative_to(ROOT / "docs") for f in files)


def _param(item):
    return pytest.param(item, id=item.id, marks=[getattr(pytest.mark, m) for m in item.marks])


@pytest.mark.parametrize("item", [_param(i) for i in ITEMS])
def test_block(item, tmp_path, record_property):
    before, tops = untracked_files(), {p.name for p in ROOT.iterdir()}
    outcome = run_item(item, tmp_path)
    record_property("seconds", round(outcome.seconds, 1))
    where = ", ".join(b.where for b in item.blocks)
    if outcome.returncode is None:
        pytest.fail(f"{where}: still running after {item.timeout:g} s (timeout=)\n"
                    f"{tail(outcome.log)}", pytrace=False)
    if outcome.returncode != 0:
        pytest.fail(f"{where}: exit {outcome.returncode} after {outcome.seconds:.0f} s\n"
                    f"{tail(outcome.log)}", pytrace=False)
    after = untracked_files()
    if before is not None and after is not None:
        new = sorted(p for p in after - before if _stray(p, tops))
        assert not new, (f"{where} left files in the tree (write outputs under out/ or "
                         f".reelfarm/): {new}")
    killed = f"; SIGKILL needed for {len(outcome.killed)} process(es)" if outcome.killed else ""
    record_property("cpu_seconds", round(outcome.cpu, 1))
    print(f"{where}: {outcome.seconds:.1f} s ({outcome.cpu:.0f} CPU s), processes ended in "
          f"{outcome.cleanup:.1f} s{killed}\n"
          f"{tail(outcome.log, 60)}")


def _stray(path: str, tops: set[str]) -> bool:
    """Whether a file that appeared during a block is one a command wrote where outputs do
    not belong: at the top of the tree, in a new top-level folder (`-o film.mp4`,
    `--frames-dir frames/`) or among the examples. New files elsewhere (farm/, tests/, ...)
    are not a README command's doing but someone's edit made meanwhile (a shared tree)."""
    top = path.split("/", 1)[0]
    return "/" not in path or top == "examples" or top not in tops


def test_no_runnable_block_is_lost_to_a_bad_info_string():
    """Blocks with errors are not run, so the first test fails for them; and every
    runnable block belongs to exactly one item."""
    ran = [b.where for i in ITEMS for b in i.blocks]
    assert len(ran) == len(set(ran))
    assert sorted(ran) == sorted(b.where for b in BLOCKS if b.run and not b.errors)
    assert all(re.fullmatch(r".+\.md:\d+", i.id) for i in ITEMS)
