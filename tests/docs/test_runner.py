"""The README runner itself (tests/docs/mdblocks.py): info strings, sessions, deadlines,
and that every process a block starts is gone when it ends."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from tests.docs.mdblocks import parse, run_item, runnable_items


def blocks_of(tmp_path: Path, markdown: str):
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(markdown), encoding="utf-8")
    return parse(path)


def errors_of(tmp_path: Path, markdown: str) -> list[str]:
    return [e for b in blocks_of(tmp_path, markdown) for e in b.errors]


def test_info_strings(tmp_path):
    ok = blocks_of(tmp_path, """\
        ```sh run timeout=30 mark=slow,ray session=a
        true
        ```
        ```bash norun: needs a GPU
        nvidia-smi
        ```
        ```text
        reelfarm render STORYBOARD [--steps N]
        ```
        ```yaml file=examples/fox.yaml
        title: x
        ```
        """)
    assert [b.errors for b in ok] == [[], [], [], []]
    run, norun, _, shown = ok
    assert (run.run, run.timeout, run.marks, run.session) == (True, 30.0, ("slow", "ray"), "a")
    assert norun.norun == "needs a GPU" and not norun.run
    assert shown.file == "examples/fox.yaml"


def test_unmarked_and_malformed_blocks_are_errors(tmp_path):
    cases = {
        "```sh\nls\n```\n": "must say whether the tests run it",
        "```python\nprint(1)\n```\n": "must say whether the tests run it",
        "```sh norun\nls\n```\n": "needs a reason",
        "```sh norun:\nls\n```\n": "needs a reason",
        "```sh run mark=fast\nls\n```\n": "unknown pytest marker",
        "```sh run retries=2\nls\n```\n": "unknown option",
        "```sh run please\nls\n```\n": "unknown word",
        "```yaml run\na: 1\n```\n": "`run` is for shell/python",
        "```sh timeout=5\nls\n```\n": "only goes with `run`",
        "```\nreelfarm render x.yaml -o out/x.mp4\n```\n": "looks like commands",
        "```sh norun: needs `ray start`\nls\n```\n": "cannot contain a backtick",
    }
    for markdown, expected in cases.items():
        errors = errors_of(tmp_path, markdown)
        assert any(expected in e for e in errors), (markdown, errors)


def test_a_block_runs_in_the_repository_root_with_the_venv_first(tmp_path):
    [item] = runnable_items(blocks_of(tmp_path, """\
        ```sh run
        test -f README.md && test -d examples
        test "$(command -v python)" = "$VIRTUAL_ENV/bin/python"
        test -z "${REELFARM_TOKEN:-}" && test -z "${RAY_ADDRESS:-}"
        echo ran
        ```
        """))
    os.environ["REELFARM_TOKEN"] = "not-for-blocks-0123456789"
    try:
        outcome = run_item(item, tmp_path / "work")
    finally:
        del os.environ["REELFARM_TOKEN"]
    assert outcome.returncode == 0, outcome.log
    assert "ran" in outcome.log


def test_a_failing_command_fails_the_block(tmp_path):
    [item] = runnable_items(blocks_of(tmp_path, "```sh run\nfalse\necho not reached\n```\n"))
    outcome = run_item(item, tmp_path / "work")
    assert outcome.returncode != 0 and "not reached" not in outcome.log
    [item] = runnable_items(blocks_of(tmp_path, "```sh run\nfalse | cat\n```\n"))
    assert run_item(item, tmp_path / "work2").returncode != 0      # pipefail


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_background_processes_end_with_the_block_even_in_new_sessions(tmp_path):
    pids = tmp_path / "pids"
    [item] = runnable_items(blocks_of(tmp_path, f"""\
        ```sh run
        sleep 300 &
        echo $! >> {pids}
        setsid sleep 301 &                # a session of its own, like a daemon
        echo $! >> {pids}
        (trap '' TERM; exec sleep 302) &  # deaf to SIGTERM: SIGKILL after the grace
        echo $! >> {pids}
        ```
        """))
    outcome = run_item(item, tmp_path / "work", grace=2)
    assert outcome.returncode == 0, outcome.log
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 3 and not any(_alive(p) for p in started)
    assert outcome.killed, "the SIGTERM-deaf sleep needed SIGKILL"


def test_a_block_past_its_deadline_fails_and_is_ended(tmp_path):
    pids = tmp_path / "pids"
    [item] = runnable_items(blocks_of(tmp_path, f"""\
        ```sh run timeout=2
        sleep 303 &
        echo $! >> {pids}
        sleep 304
        ```
        """))
    outcome = run_item(item, tmp_path / "work")
    assert outcome.returncode is None
    assert not any(_alive(int(p)) for p in pids.read_text().split())


def test_a_session_is_one_shell_across_blocks_and_languages(tmp_path):
    blocks = blocks_of(tmp_path, """\
        ```sh run session=s
        export GREETING=hello
        python -m http.server 0 --bind 127.0.0.1 > /dev/null 2>&1 &
        ```
        text between

        ```python run session=s
        import os
        assert os.environ["GREETING"] == "hello"
        print("python saw", os.environ["GREETING"])
        ```
        ```sh run session=s
        jobs -p | grep -q .     # the server of the first block is still running
        ```
        ```sh run
        test -z "${GREETING:-}"  # another item: another shell
        ```
        """)
    items = runnable_items(blocks)
    assert [len(i.blocks) for i in items] == [3, 1]
    outcome = run_item(items[0], tmp_path / "work")
    assert outcome.returncode == 0, outcome.log
    assert "python saw hello" in outcome.log
    assert run_item(items[1], tmp_path / "work2").returncode == 0


def test_docs_pages_are_covered_like_the_readme(tmp_path):
    from tests.docs.mdblocks import markdown_files

    (tmp_path / "README.md").write_text("# x\n")
    for page in ("docs/api.md", "docs/guide/cluster.md", "docs/notes.txt"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("```sh run\ntrue\n```\n")
    assert [p.relative_to(tmp_path).as_posix() for p in markdown_files(tmp_path)] == [
        "README.md", "docs/api.md", "docs/guide/cluster.md"]
