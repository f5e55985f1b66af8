"""The CLI's film controls against the real test server (with tokens): pause, priority,
resume, rerender (1-based frame ranges), retry, executions."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from farm.cli import main
from tests.serving.api.helpers import LIVE, TOKEN, wait_final
from tests.serving.api.test_cli_api import storyboard
from tests.serving.api.test_controls import failing_phases  # noqa: F401 - a fixture

pytestmark = [pytest.mark.grpc, pytest.mark.model]


@pytest.fixture
def cli(api_server, capsys):
    """cli(*args) -> (exit status, stdout, stderr) of `reelfarm ... --server S --token T`."""
    def run(*args: str) -> tuple[int, str, str]:
        status = main([*args, "--server", api_server.address, "--token", TOKEN["alice"]])
        out, err = capsys.readouterr()
        return status, out, err
    return run


def log_rows(text: str) -> list[dict[str, str]]:
    """The `films executions` table as dicts (columns split on runs of 2+ spaces)."""
    lines = text.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False))
            for line in lines[1:]]


def submit(cli, tmp_path, *extra: str, **film: object) -> str:
    status, out, _ = cli("submit", storyboard(tmp_path, **film), "--detach", *extra)
    assert status == 0
    return out.strip()


def test_pause_priority_resume_and_the_log(cli, connect, tmp_path):
    name = submit(cli, tmp_path, "--priority", "20", scenes=3)
    assert connect("alice").get(name).priority == 20
    assert cli("films", "pause", name)[1].strip() == "PAUSED"
    assert cli("films", "get", name)[1].strip() == "PAUSED"
    assert cli("films", "priority", name, "90")[1].strip() == "90"
    status, _, err = cli("films", "priority", name, "101")
    assert status == 2 and "  film.priority: " in err and "[0, 100], got 101" in err
    assert "90" in cli("films", "list")[1]  # the list's priority column
    live, final = cli("films", "resume", name, "--wait")[1].split()
    assert live in LIVE and final == "SUCCEEDED"
    status, _, err = cli("films", "pause", name)
    assert status == 1 and "FAILED_PRECONDITION" in err
    status, out, _ = cli("films", "executions", name)
    rows = log_rows(out)
    assert status == 0 and [r["#"] for r in rows] == [str(i) for i in range(1, 10)]
    assert Counter((r["kind"], r["unit"]) for r in rows) == {
        ("PHASE", f"s{i}/u0"): 2 for i in range(3)} | {("DECODE", f"s{i}"): 1 for i in range(3)}
    assert rows[0]["expert"] == "high" and rows[0]["ok"] == "yes" and rows[0]["phase"] == "0"


def test_rerender_takes_1_based_frame_ranges(cli, connect, tmp_path):
    name = submit(cli, tmp_path, scenes=2)
    assert wait_final(connect("alice").film(name)).frames_done == 18
    status, out, _ = cli("films", "rerender", name, "--scene", "s1", "--frames", "4-6", "--wait")
    assert status == 0 and out.split()[0] in LIVE and out.split()[1:] == ["SUCCEEDED"]
    # frames 4-6 as numbered in the PNG names are 3..5 from 0 in the API
    assert any("re-render of s1 frames 3..5" in e.message
               for e in connect("alice").film(name).watch())
    units = Counter(r["unit"] for r in log_rows(cli("films", "executions", name)[1])
                    if r["kind"] == "PHASE")
    assert units == {"s0/u0": 2, "s1/u0": 4}
    assert cli("films", "rerender", name, "--scene", "s0", "--frames", "9")[1].strip() in LIVE
    wait_final(connect("alice").film(name))
    status, _, err = cli("films", "rerender", name, "--scene", "s0", "--frames", "8-10")
    assert status == 2 and "last_frame: must be in [first_frame, 8] for scene s0, got 9" in err
    for bad in ("0-3", "5-4", "x"):
        with pytest.raises(SystemExit) as exc:
            cli("films", "rerender", name, "--scene", "s0", "--frames", bad)
        assert exc.value.code == 2


def test_rerender_final_turns_a_draft_into_a_new_final_film(cli, connect, tmp_path):
    name = submit(cli, tmp_path, scenes=1, steps=6, draft={"steps": 2})
    assert wait_final(connect("alice").film(name)).steps == 2
    status, out, _ = cli("films", "rerender", name, "--final", "--wait")
    final, *states = out.split()
    assert status == 0 and final != name and states[-1] == "SUCCEEDED"
    film = connect("alice").film(final).get()
    assert film.steps == 6 and not film.HasField("draft")
    for args in ((), ("--final", "--scene", "s0"), ("--scene", "s0")):
        status, _, err = cli("films", "rerender", name, *args)
        assert status == 2 and "give --scene and --frames, or --final" in err


def test_retry_of_a_failed_film(cli, connect, tmp_path, failing_phases):  # noqa: F811
    name = submit(cli, tmp_path, scenes=2)
    failing_phases.add(name.split("/")[1])
    assert wait_final(connect("alice").film(name)).state_reason
    assert cli("films", "get", name)[1].strip() == "FAILED"
    rows = log_rows(cli("films", "executions", name)[1])
    assert any(r["kind"] == "FAILURE" and r["ok"] == "no"
               and "injected fault" in r.get("message", "") for r in rows)
    failing_phases.clear()
    status, out, _ = cli("films", "retry", name, "--wait")
    assert status == 0 and out.split()[0] in LIVE and out.split()[1:] == ["SUCCEEDED"]
    status, _, err = cli("films", "retry", name)
    assert status == 1 and "only FAILED films can be retried" in err
