"""`reelfarm direct --llm-url`: the OpenAI chat completions path against a real HTTP server on
127.0.0.1 (stdlib http.server) that answers deterministically under the schema it is sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from farm.cli import main
from farm.cli.common import load_source
from farm.spec.storyboard import load_storyboard

BIBLE = """\
characters:
  - id: mira
    name: Mira
    description: a lighthouse keeper in her sixties with a grey braid
    references: [refs/mira.png]
  - id: harbor
    description: a small stone harbor with red fishing boats
"""


def answer(name: str, schema: dict, messages: list[dict]) -> dict:
    """What a cooperative model would write, taken from the schema it was sent."""
    if name == "characters":
        return {"characters": [{"id": "tomas", "name": "Tomas",
                                "description": "a boy in a red coat"},
                               {"id": "tomas", "name": "Tom", "description": "his dog"}]}
    if name == "shots":
        scenes = schema["properties"]["scenes"]["prefixItems"]
        casts = "characters" in scenes[0]["properties"]
        texts = ["Mira climbs the tower", "the harbor in the storm", "a ship in the waves",
                 "Tomas waves from the pier"]
        out = []
        for i, s in enumerate(scenes):
            shot = {"id": s["properties"]["id"]["const"], "prompt": texts[i % len(texts)],
                    "frames": s["properties"]["frames"].get("const")
                    or s["properties"]["frames"]["enum"][i]}
            if casts:
                enum = s["properties"]["characters"]["items"]["enum"]
                shot["characters"] = ["harbor"] if i == 2 and "harbor" in enum else []
            out.append(shot)
        return {"title": "The Keeper", "scenes": out}
    if name == "extension":
        shot = messages[-1]["content"].split("\n")[-2]
        return {"subject": f"[{shot}]", "motion": "rain slants", "camera": "slow push in",
                "lighting": "cold moonlight"}
    raise AssertionError(name)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, code: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": "tiny-director"}]})
        self._json(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append((self.path, self.headers.get("Authorization"), body))
        if self.server.broken:
            return self._json(200, {"choices": [{"message": {"content": "I think the film"},
                                                 "finish_reason": "stop"}]})
        fmt = body["response_format"]["json_schema"]
        text = json.dumps(answer(fmt["name"], fmt["schema"], body["messages"]))
        self._json(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.bodies, srv.broken = [], False
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_logline_with_a_bible_over_http(server, tmp_path, capsys):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mira.png").write_bytes(b"png")
    (tmp_path / "bible.yaml").write_text(BIBLE)
    out = tmp_path / "films" / "keeper.yaml"
    rc = main(["direct", "A keeper saves a ship", "--scenes", "4", "--characters",
               str(tmp_path / "bible.yaml"), "--extend-prompts", "--style", "35mm",
               "--llm-url", url(server), "--llm-api-key", "k" * 20, "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    board = load_storyboard(out)
    load_source(out)  # valid, as `reelfarm validate` checks it
    paths = [p for p, _, _ in server.bodies]
    assert paths == ["/v1/chat/completions"] * 5  # shots, then one extension per scene
    _, auth, shots = server.bodies[0]
    assert auth == "Bearer " + "k" * 20 and shots["model"] == "tiny-director"
    sent = shots["response_format"]["json_schema"]["schema"]
    assert [s["properties"]["id"] for s in sent["properties"]["scenes"]["prefixItems"]] == [
        {"const": f"s0{i}0"} for i in range(1, 5)]
    originals = ["Mira climbs the tower", "the harbor in the storm", "a ship in the waves",
                 "Tomas waves from the pier"]
    assert [s.original_prompt for s in board.scenes] == originals
    # The extension is built from the original prompt, which the server echoes in `subject`.
    assert all(s.prompt.startswith(f"[Shot {i + 1} of 4: {o}]. rain slants. Camera: slow push in.")
               for i, (s, o) in enumerate(zip(board.scenes, originals, strict=True)))
    mira, harbor = "a lighthouse keeper in her sixties with a grey braid", "a small stone harbor"
    assert [mira in s.prompt for s in board.scenes] == [True, False, False, False]
    assert [harbor in s.prompt for s in board.scenes] == [False, True, True, False]  # s030: cast
    assert [s.characters for s in board.scenes] == [["mira"], ["harbor"], ["harbor"], None]
    # A text-to-video family takes no reference images: scenes name none, the bible keeps
    # them (relative to the storyboard).
    assert all(s.references is None for s in board.scenes)
    assert {c.id: c.references for c in board.characters}["mira"] == ["../refs/mira.png"]
    assert all(s.prompt.endswith("Style: 35mm.") for s in board.scenes)


def test_the_llm_invents_the_bible_and_duplicate_ids_are_renamed(server, tmp_path):
    out = tmp_path / "f.yaml"
    assert main(["direct", "A boy and his dog", "--scenes", "4", "--frames", "9",
                 "--llm-url", url(server) + "/v1", "-o", str(out)]) == 0
    board = load_storyboard(out)
    assert [(c.id, c.name) for c in board.characters] == [("tomas", "Tomas"), ("tomas_2", "Tom")]
    assert "a boy in a red coat" in board.scenes[3].prompt
    assert "his dog" not in board.scenes[3].prompt  # named neither "Tom" nor "tomas_2"
    assert [s.frames for s in board.scenes] == [9] * 4
    names = [b["response_format"]["json_schema"]["name"] for _, _, b in server.bodies]
    assert names == ["characters", "shots"]


def test_a_server_that_ignores_the_schema_writes_nothing(server, tmp_path, capsys):
    server.broken = True
    out = tmp_path / "f.yaml"
    rc = main(["direct", "x", "--llm-url", url(server), "-o", str(out)])
    assert rc == 1 and not out.exists()
    assert "not JSON" in capsys.readouterr().err


def test_an_unreachable_server_is_an_error(tmp_path, capsys):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens there now
    out = tmp_path / "f.yaml"
    assert main(["direct", "x", "--llm-url", f"http://127.0.0.1:{port}", "-o", str(out)]) == 1
    assert not out.exists() and "127.0.0.1" in capsys.readouterr().err
