"""The CLI against a real `reelfarm serve --local` process: submit (live, detached),
films list / get / cancel / fetch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.serve_proc import REELFARM, start_server, stop_server
from farm.cli import main
from farm.media.writers import probe_video
from tests.serving.api.helpers import tiny_board

pytestmark = [pytest.mark.grpc, pytest.mark.model]
# The served farm's quota of frames not yet delivered per tenant.
QUEUED_FRAMES = 200


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An open (no tokens) local server in its own process; its address."""
    art = tmp_path_factory.mktemp("served")
    log = art / "serve.log"
    proc, address = start_server(["--artifacts", str(art),
                                  "--db", f"sqlite:///{art / 'reelfarm.db'}",
                                  "--max-queued-frames-per-tenant", str(QUEUED_FRAMES)], log)
    try:
        assert "auth: OPEN" in log.read_text()  # says so at start-up
        yield address
    finally:
        stop_server(proc)


def storyboard(tmp_path: Path, **film: object) -> str:
    path = tmp_path / "film.yaml"
    path.write_text(yaml.safe_dump(tiny_board(**film)))
    return str(path)


def test_submit_streams_frames_and_downloads_the_mp4(served, tmp_path, capsys):
    out, frames = tmp_path / "out.mp4", tmp_path / "frames"
    assert main(["submit", storyboard(tmp_path), "--server", served, "-o", str(out),
                 "--frames-dir", str(frames)]) == 0
    err = capsys.readouterr().err
    name = re.search(r"submitted (films/\w+)", err).group(1)
    assert f"{name} SUCCEEDED: 18/18 frames" in err
    assert probe_video(out)["frames"] == 18
    pngs = sorted(p.relative_to(frames).as_posix() for p in frames.rglob("*.png"))
    assert pngs == [f"s{i}/s{i}.{k:04d}.png" for i in range(2) for k in range(1, 10)]

    assert main(["films", "get", name, "--server", served]) == 0
    assert capsys.readouterr().out.strip() == "SUCCEEDED"
    assert main(["films", "list", "--server", served, "--state", "SUCCEEDED"]) == 0
    assert name in capsys.readouterr().out
    fetched = tmp_path / "fetched"
    assert main(["films", "fetch", name.split("/")[1], "--server", served, "-o",
                 str(tmp_path / "again.mp4"), "--frames-dir", str(fetched)]) == 0
    assert (tmp_path / "again.mp4").read_bytes() == out.read_bytes()
    for png in frames.rglob("*.png"):
        assert (fetched / png.relative_to(frames)).read_bytes() == png.read_bytes()
    assert main(["films", "cancel", name, "--server", served]) == 1  # already finished
    assert "FAILED_PRECONDITION" in capsys.readouterr().err


def test_submit_detach_prints_the_name_and_returns(served, tmp_path, capsys):
    assert main(["submit", storyboard(tmp_path, steps=8), "--server", served, "--detach"]) == 0
    name = capsys.readouterr().out.strip()
    assert re.fullmatch(r"films/[a-z0-9]+", name)
    assert main(["films", "cancel", name, "--server", served]) in (0, 1)  # unless it already ended
    assert main(["films", "get", name, "--server", served]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] in ("CANCELLED", "SUCCEEDED")


def test_submit_reports_invalid_storyboards_like_validate(served, tmp_path, capsys):
    assert main(["submit", storyboard(tmp_path, width=60), "--server", served]) == 2
    assert "width: 60 is not a multiple of 16" in capsys.readouterr().err
    assert main(["films", "get", "films/nope", "--server", served]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_submit_priority_and_the_queued_frames_quota(served, tmp_path, capsys):
    assert main(["submit", storyboard(tmp_path, scenes=3, frames=81), "--server", served]) == 1
    assert "RESOURCE_EXHAUSTED" in capsys.readouterr().err  # 243 frames > --max-queued-frames
    assert main(["submit", storyboard(tmp_path, scenes=1), "--server", served, "--priority", "7",
                 "--detach"]) == 0
    name = capsys.readouterr().out.strip()
    assert main(["films", "get", name, "--full", "--server", served]) == 0
    assert "priority: 7\n" in capsys.readouterr().out


def test_serve_refuses_an_open_api_off_loopback(tmp_path):
    done = subprocess.run([REELFARM, "serve", "--local", "--host", "0.0.0.0", "--port", "0",
                           "--artifacts", str(tmp_path), "--db", f"sqlite:///{tmp_path}/x.db"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "without tokens" in done.stderr


def test_serve_reports_a_bad_db_url_without_its_password(tmp_path):
    done = subprocess.run([REELFARM, "serve", "--local", "--port", "0",
                           "--artifacts", str(tmp_path),
                           "--db", "nosuchdialect://user:hunter2secret@host/db"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--db" in done.stderr
    assert "hunter2secret" not in done.stderr + done.stdout


def test_wait_for_server_names_the_address_when_nothing_answers(capsys):
    """(README's session shows the other side: submit waiting while the server starts.)"""
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    assert main(["films", "list", "--server", address, "--wait-for-server", "0.5"]) == 1
    assert f"no reelfarm server answered at {address} within 0.5 s" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_wait_for_server_takes_seconds(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["films", "list", "--wait-for-server", value])
    assert exit_.value.code == 2
    assert "--wait-for-server" in capsys.readouterr().err
