"""Where weights come from: the tiny offline factory or a local diffusers-format folder.

A worker loads only what it holds (one expert, the VAE, or the text encoder); nothing
is fetched from a hub. A real checkpoint folder such as Wan2.2-T2V-A14B-Diffusers loads
the same way as a folder written by `reelfarm models init-tiny`. What differs between
model families (how a folder is recognised, its expert class, its tiny model) is asked of
the family (farm.model.families).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from farm.model import families, hub, tiny
from farm.model.checkpoint import cast, read_component
from farm.model.families import Family, FolderConfigs
from farm.model.offload import check_mode as offload_mode
from farm.model.offload import offload as offload_hooks
from farm.model.shipped import SHIPPED
from farm.spec.profiles import DEFAULT_FAMILY, PROFILES

# The models reelfarm ships (no folder needed), in the order servers list them: "tiny"
# first, the default of films that name no model; the trained ones (farm.model.shipped);
# a tiny model of every family.
BUILTIN_MODELS = ("tiny", *SHIPPED, *(f"tiny-{k}" for k in tiny.TINY_KINDS))
EXPERT_SUBFOLDER = {"high": "transformer", "low": "transformer_2", "dense": "transformer"}
log = logging.getLogger("farm.model")


@dataclass(frozen=True, slots=True)
class ModelSource:
    # The reference as given: "tiny", "tiny-<family>", "toy", a folder or a Hugging Face
    # repo id "OWNER/NAME[@REVISION]" (then `path` is its snapshot in the cache).
    ref: str
    family: str
    # None: build the tiny model in memory.
    path: Path | None
    seed: int = 0


def resolve_model(ref: str, hub_cache: Path | None = None) -> ModelSource:
    """Turn a model reference into a source; ValueError with a clear message if invalid.
    `hub_cache`: the Hugging Face cache repo ids are looked up in, offline (farm.model.hub;
    None: huggingface_hub's default)."""
    if ref == "tiny":
        return ModelSource(ref, DEFAULT_FAMILY, None)
    if ref in SHIPPED:  # trained weights shipped in the package (docs/toy-model.md)
        folder = SHIPPED[ref]
        if not (folder / "model_index.json").is_file():
            raise ValueError(f"model {ref!r}: its trained weights are not in this package yet "
                             "(docs/toy-model.md); train one with `reelfarm models "
                             "train-toy DIR` and pass DIR as the model")
        return ModelSource(ref, detect_family(folder), folder)
    if ref.startswith("tiny-"):
        kind = ref[len("tiny-"):]
        if kind not in tiny.TINY_KINDS:
            raise ValueError(f"unknown tiny model {ref!r}; allowed: {', '.join(BUILTIN_MODELS)}, "
                             "or a model folder")
        return ModelSource(ref, kind, None)
    # OWNER/NAME[@REVISION] naming no existing folder: its snapshot in the cache
    path = hub.find_snapshot(ref, hub_cache) or Path(ref).expanduser()
    own = families.own_folder(path)  # a family's own layout (S2V's official folder)
    if own is not None:
        return ModelSource(ref, own, path.resolve())
    if not (path / "model_index.json").is_file():
        raise ValueError(f"{ref!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) nor "
                         "a diffusers-format model folder (no model_index.json)")
    return ModelSource(ref, detect_family(path), path.resolve())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


def detect_family(path: Path) -> str:
    """Family of a diffusers-format Wan folder, from its configs (no weights read)."""
    configs = FolderConfigs(path, _read_json(path / "model_index.json"),
                            _read_json(path / "transformer" / "config.json"),
                            _read_json(path / "vae" / "config.json"))
    found = families.detect(configs)
    if found is None:
        raise ValueError(f"{path}: a Wan model without experts or expanded timesteps (Wan2.1?) "
                         f"is not supported; supported families: {', '.join(PROFILES)}")
    return found


class ModelLoader:
    """Loads components of one model on one device; each at most once. `offload`: where
    the experts wait between uses (farm.model.offload: "none", "model", "group",
    "shard")."""

    def __init__(self, source: ModelSource, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, vae_dtype: torch.dtype = torch.float32,
                 offload: str = "none"):
        self.source = source
        self.device = torch.device(device)
        self.dtype = dtype
        self.vae_dtype = vae_dtype
        self.offload = offload_mode(offload)
        self._hooks: dict[str, Any] = {}  # expert -> its "model" / "shard" offload hook
        self._cache: dict[str, object] = {}
        self._weights: list[str] = []
        self._lock = threading.Lock()  # gang members of one worker may load concurrently

    def _once(self, name: str, build, weights: bool = False):
        """`weights`: a component with weights, whose loading is logged (a server that
        serves several models loads each part the first time a film needs it)."""
        with self._lock:
            if name not in self._cache:
                started = time.perf_counter()
                self._cache[name] = build()
                if weights:
                    self._weights.append(name)
                    log.info("loaded %s of model %s on %s in %.2f s", name, self.source.ref,
                             self.device, time.perf_counter() - started)
            return self._cache[name]

    @property
    def family(self) -> Family:
        """The model's family: how it loads, builds tiny and encodes inputs."""
        return families.family(self.source.family)

    @property
    def loaded(self) -> tuple[str, ...]:
        """The components with weights loaded so far, in order ("text", "expert:high", ...)."""
        with self._lock:
            return tuple(self._weights)

    def text(self):
        """(tokenizer, text encoder)."""
        def build():
            from transformers import AutoTokenizer, UMT5EncoderModel

            if self.source.path is None:
                tok = tiny.build_tokenizer()
                enc = tiny.build_text_encoder(len(tok), self.source.seed)
            else:
                tok = AutoTokenizer.from_pretrained(self.source.path / "tokenizer")
                enc = read_component(UMT5EncoderModel, self.source.path / "text_encoder",
                                     self.dtype, self.device)
            return tok, cast(enc, self.device, self.dtype)
        return self._once("text", build, weights=True)

    def expert(self, name: str):
        """The expert `name`; under "model" and "shard" offload, the worker's other
        experts go back to host memory (this one moves in at its first forward, whole or,
        in a gang under "shard", a block at a time)."""
        def build():
            sub = EXPERT_SUBFOLDER[name]
            # offloaded: read into host memory (what "shard" builds shards from); the
            # hooks bring it to the device
            at = torch.device("cpu") if self.offload != "none" else self.device
            if self.source.path is None:
                model = cast(self.family.build_transformer(sub, self.source.seed), at, self.dtype)
            else:
                model = self.family.load_expert(self.source.path, sub, self.dtype, at)
            hook = offload_hooks(model, self.offload, self.device, name)
            if hook is not None:
                self._hooks[name] = hook
            return model
        model = self._once(f"expert:{name}", build, weights=True)
        for other, hook in list(self._hooks.items()):
            if other != name:
                hook.offload()
        return model

    def host(self, name: str):
        """Expert `name`'s farm.model.shard.HostExpert (offload "shard"): the host copy
        its gang shards are built from."""
        if self.offload != "shard":
            raise ValueError(f"expert {name} has no host copy under offload {self.offload!r}")
        self.expert(name)
        return self._hooks[name]

    def transformer_config(self) -> dict:
        """The experts' config (sizes a VAE worker needs: VACE layers, Animate's face
        size), without loading weights."""
        def build() -> dict:
            if self.source.path is None:
                return dict(self.family.build_transformer("transformer", self.source.seed).config)
            return _read_json(self.source.path / EXPERT_SUBFOLDER[self.family.profile.experts[0]]
                              / "config.json")
        return self._once("transformer_config", build)

    def image_encoder(self):
        """(processor, CLIP vision model): Animate's character-image encoder (VAE workers)."""
        def build():
            from transformers import CLIPImageProcessor, CLIPVisionModel

            if self.source.path is None:
                processor, encoder = tiny.build_image_encoder(self.source.seed)
            else:
                processor = CLIPImageProcessor.from_pretrained(self.source.path / "image_processor")
                encoder = read_component(CLIPVisionModel, self.source.path / "image_encoder",
                                         torch.float32, self.device)
            return processor, cast(encoder, self.device, torch.float32)  # pixel values are fp32
        return self._once("image_encoder", build, weights=True)

    def audio_encoder(self):
        """(feature extractor, wav2vec2): S2V's audio encoder (VAE workers), float32."""
        def build():
            from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

            if self.source.path is None:
                extractor, model = tiny.build_audio_encoder(self.source.seed)
            else:
                from farm.model.s2v.weights import WAV2VEC_DIR

                folder = self.source.path / WAV2VEC_DIR
                extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder)
                model = read_component(Wav2Vec2ForCTC, folder, torch.float32, self.device)
            return extractor, cast(model, self.device, torch.float32)
        return self._once("audio_encoder", build, weights=True)

    def vae(self):
        def build():
            from diffusers import AutoencoderKLWan

            if self.source.path is None:
                model = self.family.build_vae(self.source.seed)
            else:
                # the folder itself (`subfolder=` would pick up S2V's top-level weights)
                model = read_component(AutoencoderKLWan, self.source.path / "vae",
                                       self.vae_dtype, self.device)
            return cast(model, self.device, self.vae_dtype)
        return self._once("vae", build, weights=True)

    def scheduler(self, solver: str, shift: float):
        """A fresh solver instance (schedulers are stateful; one per segment)."""
        from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

        if solver == "euler":
            return FlowMatchEulerDiscreteScheduler(shift=shift)
        config = self._once("scheduler_config", self._scheduler_config)
        return UniPCMultistepScheduler.from_config(config, flow_shift=shift,
                                                   prediction_type="flow_prediction",
                                                   use_flow_sigmas=True)

    def _scheduler_config(self) -> dict:
        if self.source.path is None or not (self.source.path / "scheduler").is_dir():
            # the tiny models, and S2V's official folder (it has no scheduler config)
            return dict(tiny.build_scheduler(self.family.profile).config)
        return _read_json(self.source.path / "scheduler" / "scheduler_config.json")
