"""Fenced code blocks of README.md and docs/**/*.md, and how they are run.

Every block in a shell or Python language says whether the test suite runs it, in its
info string (the words after the language; GitHub renders by the first word only):

    ```sh run                         run as written (bash -euo pipefail), deadline 120 s
    ```sh run timeout=300 mark=slow,ray
                                      a deadline in seconds; pytest markers of the item
    ```sh run session=api             blocks of one file with the same session run as one
    ```python run session=api         item, in order, in one shell: a server started in the
                                      first is still there for the next (python blocks run
                                      as `python FILE` in that shell)
    ```sh norun: <reason>             not run; the reason is required
    ```text                           not a command: synopses with [--flags], output

Any block may carry `file=PATH` (e.g. ```yaml file=examples/fox.yaml): its text must
equal that file's, so an example shown in the docs is the file the commands use.

A runnable item runs with the repository root as its working directory, `.venv/bin`
first on PATH (what `source .venv/bin/activate` gives), no REELFARM_* or RAY_ADDRESS
variables from the caller, in a session of its own; at its end every process it started
(`... &` servers, and Ray's processes, which leave the process group but keep the
session and the environment) is ended: SIGTERM to the block's process group, then to
everything left of the session or carrying the block's tag, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELLS = frozenset({"sh", "bash", "shell", "zsh", "console", "shell-session"})
PYTHONS = frozenset({"python", "py", "python3"})
MARKED = SHELLS | PYTHONS


def _registered_marks() -> frozenset[str]:
    """The pytest markers pyproject.toml registers (a block may ask for any of them)."""
    import tomllib

    try:
        config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        lines = config["tool"]["pytest"]["ini_options"]["markers"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return frozenset({"model", "ray", "slow", "grpc", "kernels", "vllm", "web"})
    return frozenset(line.split(":")[0].strip() for line in lines)


MARKS = _registered_marks()
DEFAULT_TIMEOUT = 120.0
# An unlabelled block that starts like a command was probably meant to be checked.
COMMANDLIKE = re.compile(r"^\s*(\$ |reelfarm |make |python3? |\.venv/|pip |curl |kubectl |helm "
                         r"|docker |otiotool |source )")
TAG_VAR = "REELFARM_DOCS_BLOCK"


@dataclass
class Block:
    path: Path                 # the markdown file
    line: int                  # 1-based line of the opening fence
    lang: str
    info: str                  # the whole info string
    text: str
    run: bool = False
    norun: str | None = None   # the reason
    timeout: float = DEFAULT_TIMEOUT
    marks: tuple[str, ...] = ()
    session: str | None = None
    file: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def markdown_files(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/**/*.md, in a stable order."""
    files = [root / "README.md"]
    if (root / "docs").is_dir():
        files += sorted(p for p in (root / "docs").rglob("*.md") if p.is_file())
    return [f for f in files if f.is_file()]


def parse_info(block: Block) -> None:
    """Fill block.run / norun / options from its info string; problems go to block.errors."""
    rest = block.info[len(block.lang):].strip()
    if rest.startswith("norun"):
        reason = rest[len("norun"):]
        if not reason.startswith(":") or not reason[1:].strip():
            block.errors.append("`norun` needs a reason: ```LANG norun: <why it cannot run here>")
        block.norun = reason[1:].strip() or "?"
        if block.lang not in MARKED:
            block.errors.append(f"`norun` is for shell/python blocks, not {block.lang!r}")
        return
    try:
        words = shlex.split(rest) if rest else []
    except ValueError as exc:
        block.errors.append(f"cannot read the info string: {exc}")
        return
    if words and words[0] == "run":
        block.run = True
        words = words[1:]
        if block.lang not in MARKED:
            block.errors.append(f"`run` is for shell/python blocks, not {block.lang!r}")
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            block.errors.append(f"unknown word {word!r} in the info string (run, norun: REASON, "
                                "timeout=S, mark=A,B, session=NAME, file=PATH)")
        elif key == "file":
            block.file = value
        elif key in ("timeout", "mark", "session") and not block.run:
            block.errors.append(f"`{key}=` only goes with `run`")
        elif key == "timeout":
            try:
                block.timeout = float(value)
            except ValueError:
                block.errors.append(f"timeout={value!r} is not a number of seconds")
        elif key == "mark":
            block.marks = tuple(m for m in value.split(",") if m)
            unknown = sorted(set(block.marks) - MARKS)
            if unknown:
                block.errors.append(f"unknown pytest marker(s) {unknown}; known: {sorted(MARKS)}")
        elif key == "session":
            block.session = value
        else:
            block.errors.append(f"unknown option {key}= (timeout, mark, session, file)")
    if block.lang in MARKED and not block.run:
        block.errors.append(
            f"a {block.lang} block must say whether the tests run it: ```{block.lang} run, or "
            f"```{block.lang} norun: <reason>; a synopsis with [--flags] is a ```text block")
    if not block.lang and COMMANDLIKE.match(block.text):
        block.errors.append("this unlabelled block looks like commands: label it (```sh run, "
                            "```sh norun: <reason>, or ```text)")


# A line that opens like a backtick fence but whose info string holds a backtick is no
# fence at all in CommonMark (it is inline code), and it shifts every fence after it.
FALSE_FENCE = re.compile(r"^ {0,3}(`{3,})(?!`)[^`]*`")


def parse(path: Path) -> list[Block]:
    from markdown_it import MarkdownIt

    text = path.read_text(encoding="utf-8")
    blocks = []
    for number, line in enumerate(text.splitlines(), 1):
        if FALSE_FENCE.match(line):
            bad = Block(path, number, "", line.strip().lstrip("`"), "")
            bad.errors.append("an info string of a ``` fence cannot contain a backtick "
                              "(CommonMark): this line opens no block; drop the backticks")
            blocks.append(bad)
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence":
            continue
        info = token.info.strip()
        lang = info.split()[0] if info else ""
        block = Block(path, token.map[0] + 1, lang, info, token.content)
        parse_info(block)
        blocks.append(block)
    return sorted(blocks, key=lambda b: b.line)


def all_blocks() -> list[Block]:
    return [b for f in markdown_files() for b in parse(f)]


@dataclass
class Item:
    """One pytest item: a runnable block, or the blocks of one session in file order."""
    blocks: list[Block]

    @property
    def id(self) -> str:
        return self.blocks[0].where

    @property
    def timeout(self) -> float:
        return sum(b.timeout for b in self.blocks)

    @property
    def marks(self) -> tuple[str, ...]:
        return tuple(sorted({m for b in self.blocks for m in b.marks}))


def runnable_items(blocks: list[Block] | None = None) -> list[Item]:
    items: list[Item] = []
    sessions: dict[tuple[Path, str], Item] = {}
    for b in blocks if blocks is not None else all_blocks():
        if not b.run or b.errors:
            continue
        if b.session is None:
            items.append(Item([b]))
        elif (b.path, b.session) in sessions:
            sessions[b.path, b.session].blocks.append(b)
        else:
            sessions[b.path, b.session] = item = Item([b])
            items.append(item)
    return items


def _console_commands(text: str) -> str:
    """A console block's commands: its `$ ` lines (the rest is output)."""
    return "".join(line[2:] + "\n" for line in text.splitlines() if line.startswith("$ "))


def script_for(item: Item, work: Path) -> Path:
    """A bash script that runs the item's blocks in order (each block also as a file, so
    errors name the block)."""
    lines = ["# generated from " + ", ".join(b.where for b in item.blocks)]
    for b in item.blocks:
        stem = f"{b.path.name}-L{b.line}"
        if b.lang in PYTHONS:
            src = work / f"{stem}.py"
            src.write_text(b.text, encoding="utf-8")
            lines.append(f"echo '>>> {b.where} (python)'")
            lines.append(f"python {shlex.quote(str(src))}")
        else:
            src = work / f"{stem}.sh"
            src.write_text(_console_commands(b.text) if b.lang in ("console", "shell-session")
                           else b.text, encoding="utf-8")
            lines.append(f"echo '>>> {b.where}'")
            lines.append(f"source {shlex.quote(str(src))}")
    script = work / "item.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return script


def block_env(tag: str) -> dict[str, str]:
    """The caller's environment as a fresh user's shell with .venv activated would have it."""
    venv = ROOT / ".venv"
    bindir = venv / "bin" if (venv / "bin").is_dir() else Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REELFARM_", "PYTEST_")) and k not in ("RAY_ADDRESS", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bindir.parent)
    env[TAG_VAR] = tag
    env.setdefault("COLUMNS", "100")
    return env


# -- processes ---------------------------------------------------------------------------

def _proc_info(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, session, state) of `pid`, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) ": state ppid pgrp session
    return int(fields[1]), int(fields[3]), fields[0]


def _cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and of its children it has waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()   # fields[11:15]: utime stime cutime cstime
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _has_tag(pid: int, tag: str) -> bool:
    try:
        return f"{TAG_VAR}={tag}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def processes_of(sid: int, tag: str) -> dict[int, int]:
    """Live (not zombie) processes the item started: pid -> parent pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        info = _proc_info(pid)
        if info is None or info[2] == "Z":
            continue
        if info[1] == sid or _has_tag(pid, tag):
            found[pid] = info[0]
    return found


def _signal(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end_processes(sid: int, tag: str, grace: float = 30.0) -> list[int]:
    """End every process of the item; returns the pids that needed SIGKILL.

    SIGTERM goes first to the top processes only (those whose parent is not one of the
    item's: `server &` once its shell has exited), so a server shuts down what it started
    in order (`serve --config` stops Serve, then its Ray node: Ray's own processes must
    not get the signal at the same time). What is left after half the grace gets SIGTERM,
    after the grace SIGKILL."""
    left = processes_of(sid, tag)
    termed: set[int] = set()
    start = time.monotonic()
    while left and time.monotonic() - start < grace:
        # Top processes, including any that became one since (a shell that timed out
        # leaves its running command behind).
        half = time.monotonic() - start > grace / 2
        due = [p for p, parent in left.items() if p not in termed and (half or parent not in left)]
        _signal(due, signal.SIGTERM)
        termed.update(due)
        time.sleep(0.25)
        left = processes_of(sid, tag)
    killed = list(left)
    _signal(killed, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes_of(sid, tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    return killed


# -- running -----------------------------------------------------------------------------

@dataclass
class Outcome:
    returncode: int | None     # None: timed out
    seconds: float
    log: str
    killed: list[int]
    cleanup: float = 0.0       # seconds spent ending the item's processes
    cpu: float = 0.0           # CPU seconds (user + system) of its processes, roughly


def run_item(item: Item, work: Path, grace: float = 30.0) -> Outcome:
    """Run the item's script (deadline: item.timeout), then end what it left running
    (`grace`: seconds between the first SIGTERM and SIGKILL)."""
    work.mkdir(parents=True, exist_ok=True)
    script = script_for(item, work)
    tag = f"{item.id}:{uuid.uuid4().hex}"
    log_path = work / "output.log"
    started = time.monotonic()
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", str(script)], cwd=ROOT,
                                env=block_env(tag), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=item.timeout)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - started
        # CPU: what was waited for (the shell and its commands), plus what is still running
        # (servers; counted before they are ended). Orphans that exited early are missed.
        cpu = sum(_cpu_seconds(p) for p in processes_of(proc.pid, tag))
        killed = end_processes(proc.pid, tag, grace)
        if code is None:
            proc.wait()
        cleanup = time.monotonic() - started - seconds
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (done.ru_utime + done.ru_stime) - (waited.ru_utime + waited.ru_stime)
    return Outcome(code, seconds, log_path.read_text(encoding="utf-8", errors="replace"), killed,
                   cleanup, cpu)


def untracked_files() -> set[str] | None:
    """Files git would show as new (not ignored), or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"],
                              cwd=ROOT, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {p for p in done.stdout.decode().split("\0") if p}


def tail(text: str, lines: int = 120) -> str:
    rows = text.splitlines()
    cut = rows[-lines:]
    return ("...\n" if len(rows) > lines else "") + "\n".join(cut)
