"""Where `reelfarm render` gets its frames: the in-process engine or a local Ray cluster.

Both give the same interface to the writer loop in render.py:
    phases_total, frames() -> (scene id, frame index, RGB uint8 frame) in film order,
    events() -> progress events since the last call, result() -> (state word, reason).
"""

from __future__ import annotations

import io
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from farm.spec.film import Film
from farm.spec.storyboard import Storyboard


class InlineSource:
    """The embedded farm; its engine (all torch work) runs on a background thread."""

    def __init__(self, film: Film, device: str, dtype: Any, workers: str, model: Any = None):
        """`model`: the film's model as the command resolved it (a ModelSource; None: by
        its name)."""
        from farm.local import LocalFarm

        self.farm = LocalFarm(model or film.model, device=device, dtype=dtype, workers=workers)
        self.film_id, self.stream = self.farm.submit(film)
        self.phases_total = self.farm.engine.scheduler.progress(self.film_id).phases_total
        self._events: queue.Queue = queue.Queue()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._engine, name="reelfarm-engine", daemon=True)
        self._thread.start()

    def _engine(self) -> None:
        try:
            self.farm.run(self._events.put)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self._failure.append(exc)

    def frames(self) -> Iterator[tuple[str, int, np.ndarray]]:
        for item in self.stream:
            yield item.scene_id, item.index, item.frame

    def events(self) -> list:
        out = []
        while not self._events.empty():
            out.extend(self._events.get_nowait())
        return out

    def result(self) -> tuple[str, str]:
        self._thread.join()
        if self._failure:
            return "FAILED", f"engine error: {self._failure[0]}"
        p = self.farm.engine.scheduler.progress(self.film_id)
        return p.state.value, p.reason

    def close(self) -> None:
        pass


class RaySource:
    """The reelfarm Serve app on a private Ray cluster started here, or on one joined
    (`address`, RAY_ADDRESS)."""

    def __init__(self, film: Film, storyboard: dict, threads: int = 0,
                 address: str | None = None):
        from serving.local import LocalCluster, small_machine_pools

        self._tmp = tempfile.TemporaryDirectory(prefix="reelfarm-ray-")
        self.cluster = LocalCluster(small_machine_pools(film.model, self._tmp.name, threads),
                                    address=address)
        self.director = self.cluster.__enter__()
        self.startup_s = self.cluster.startup_s
        info = self.director.create_film.remote(storyboard).result()
        self.film_id = info.film_id
        self.phases_total = info.phases_total
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        for event in self.director.options(stream=True).watch.remote(self.film_id):
            self._events.put(event)

    def frames(self) -> Iterator[tuple[str, int, np.ndarray]]:
        from PIL import Image

        for scene_id, index, _, png in self.director.options(stream=True).stream_frames.remote(
                self.film_id):
            yield scene_id, index, np.asarray(Image.open(io.BytesIO(png)))

    def events(self) -> list:
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    def result(self, timeout: float = 60.0) -> tuple[str, str]:
        """The final state (the last frame can arrive before the state is published)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.director.get_film.remote(self.film_id).result()
            if info.state.is_final or time.monotonic() > deadline:
                return info.state.value, info.reason
            time.sleep(0.05)

    def close(self) -> None:
        self.cluster.__exit__(None, None, None)
        self._tmp.cleanup()


def cluster_storyboard(board: Storyboard, film: Film) -> dict:
    """The storyboard as the director will validate it: flags applied, media paths absolute
    (`board` as loaded from a storyboard or timeline file)."""
    data = board.model_dump(exclude_unset=True, exclude_none=True)
    data.update(model=film.model, steps=film.num_steps)
    # The conform is made here, from the frames the cluster streams back (outputs.py).
    data.pop("delivery", None)
    for spec, scene in zip(data["scenes"], film.scenes, strict=True):
        for name, location in scene.inputs.items():
            if name.startswith("references["):
                spec["references"] = list(scene.inputs.references)
            else:
                spec[name] = location
    return data
