"""Structured logs: `--log-format json` gives one JSON object per line with the ids of the
film, scene, unit and phase a line is about; text is for people at a terminal. Tokens and
other secrets never reach a log record (the API layer keeps only their digests).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings

# Record attributes copied into JSON lines when present (set with `extra=`).
FIELDS = ("film_id", "tenant", "scene_id", "unit_id", "phase", "expert", "worker_ids",
          "state", "event", "frames")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                       + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key in FIELDS:
            value = getattr(record, key, None)
            if value not in (None, "", ()):
                out[key] = list(value) if isinstance(value, tuple) else value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}"
                       for k in ("film_id", "scene_id", "unit_id", "phase")
                       if getattr(record, k, None) not in (None, "", -1))
        base = super().format(record)
        return f"{base} [{ids}]" if ids else base


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Configure the `reelfarm` loggers once, at the edge (the CLI)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("reelfarm", "farm"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def quiet_libraries() -> None:
    """Silence the model libraries' progress bars and advisory warnings: a render's own
    progress display and a worker's log say what is happening."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("torch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
