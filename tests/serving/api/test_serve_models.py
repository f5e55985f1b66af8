"""`reelfarm serve --local` serves the built-in models: every one by default, each loaded
the first time a film asks for it; `--model` (repeatable) restricts the served set; an
unknown `--model` fails before anything starts. Real processes, real gRPC on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.serve_proc import REELFARM, start_server, stop_server
from farm.api.protos import pb
from farm.cli import main
from farm.media.writers import probe_video
from farm.model.loader import BUILTIN_MODELS

pytestmark = [pytest.mark.grpc, pytest.mark.model, pytest.mark.slow]

# The example film's model (examples/trailer.yaml) at its clip length, few steps.
TOY = {"title": "toy", "fps": 16, "width": 64, "height": 64, "model": "toy", "steps": 3,
       "scenes": [{"id": "a", "prompt": "a red circle moves right on a blue background",
                   "frames": 17, "seed": 1}]}
# Another family (one dense expert, VAE x16: sizes are multiples of 32).
TI2V = {"title": "ti2v", "fps": 24, "width": 32, "height": 32, "model": "tiny-ti2v-5b",
        "steps": 3, "scenes": [{"id": "a", "prompt": "a fox in the snow", "frames": 9, "seed": 2}]}
SUCCEEDED = pb.Film.STATE_SUCCEEDED
_LOADED = re.compile(r"loaded (\S+) of model (\S+) on ")


def loaded(log: str) -> dict[str, set[str]]:
    """Model -> the parts its workers loaded, from the server's log lines."""
    out: dict[str, set[str]] = {}
    for part, model in _LOADED.findall(log):
        out.setdefault(model, set()).add(part)
    return out


def serve(tmp_path, *args: str):
    root = tmp_path / "served"
    root.mkdir()
    log = root / "serve.log"
    proc, address = start_server(["--artifacts", str(root / "art"), "--db",
                                  f"sqlite:///{root / 'reelfarm.db'}", *args], log)
    return proc, address, log


def write(tmp_path, board: dict) -> str:
    path = tmp_path / f"{board['model']}.yaml"
    path.write_text(yaml.safe_dump(board))
    return str(path)


def test_serves_every_builtin_model_loading_only_what_films_ask_for(tmp_path, capsys):
    from farm.client import Client

    proc, address, log = serve(tmp_path)
    try:
        banner = re.search(r"^reelfarm API on \S+ \(models ([^;]+);", log.read_text(), re.M)
        assert banner and banner.group(1).split(", ") == list(BUILTIN_MODELS)
        assert loaded(log.read_text()) == {}  # nothing loaded at start
        # The README flow: submit a toy film to a server started without --model.
        out = tmp_path / "toy.mp4"
        assert main(["submit", write(tmp_path, TOY), "--server", address, "-o", str(out)]) == 0
        assert "SUCCEEDED: 17/17 frames" in capsys.readouterr().err
        assert probe_video(out)["frames"] == 17
        with Client(address) as client:  # and a film of another family, same process
            film = client.submit(TI2V)
            done = film.wait()
            assert (done.state, done.model) == (SUCCEEDED, "tiny-ti2v-5b"), done
            assert sum(1 for _ in film.frames()) == 9
    finally:
        assert stop_server(proc) == 0
    parts = loaded(log.read_text())
    assert parts == {"toy": {"text", "expert:high", "expert:low", "vae"},
                     "tiny-ti2v-5b": {"text", "expert:dense", "vae"}}, parts


def test_model_flags_restrict_the_served_models(tmp_path, capsys):
    from farm.client import Client
    from farm.client.errors import FailedPreconditionError

    proc, address, log = serve(tmp_path, "--model", "tiny", "--model", "tiny-ti2v-5b")
    try:
        assert "(models tiny, tiny-ti2v-5b;" in log.read_text()
        assert main(["submit", write(tmp_path, TOY), "--server", address]) == 1
        err = capsys.readouterr().err
        assert "FAILED_PRECONDITION" in err and "does not serve model 'toy'" in err
        assert "it serves: tiny, tiny-ti2v-5b" in err
        with Client(address) as client:
            with pytest.raises(FailedPreconditionError, match="it serves: tiny, tiny-ti2v-5b"):
                client.submit({**TOY, "model": "tiny-t2v-a14b"})  # tiny's family
            assert client.submit(TI2V).wait().state == SUCCEEDED
    finally:
        assert stop_server(proc) == 0
    assert set(loaded(log.read_text())) == {"tiny-ti2v-5b"}


@pytest.mark.parametrize("args, expect", [
    (["--model", "tiny-nope"], "--model: unknown tiny model 'tiny-nope'; allowed: "
                               + ", ".join(BUILTIN_MODELS)),
    (["--model", "toy", "--model", "no/such/folder"],
     "--model: 'no/such/folder' is neither a built-in model (" + ", ".join(BUILTIN_MODELS)),
])
def test_an_unknown_model_fails_before_the_server_starts(tmp_path, args, expect):
    done = subprocess.run([REELFARM, "serve", "--local", "--port", "0", "--artifacts",
                           str(tmp_path), "--db", f"sqlite:///{tmp_path}/x.db", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and expect in done.stderr, done.stderr
    assert "reelfarm API on" not in done.stdout
    assert not (tmp_path / "x.db").exists()  # nothing started


def test_model_goes_with_local_not_config(tmp_path):
    config = Path(__file__).resolve().parents[3] / "serving" / "serve_config.yaml"
    done = subprocess.run([REELFARM, "serve", "--config", str(config), "--model", "toy"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "--model goes with --local" in done.stderr
