"""Models as data: context window, prices, capabilities and free-tier limits, per provider.

The shipped table (`models.yaml`) plus an optional file (`YMERA_MODELS_FILE`, YAML or JSON, the
same shape) whose entries add models or replace shipped ones by provider and name. Read once
at start; every call's cost comes from here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from events import YmeraError

from ._errors import LLMError
from ._providers import PROVIDERS

__all__ = ["MIN_ANSWER_TOKENS", "Catalogue", "CatalogueError", "ModelInfo", "answer_budget", "estimate_tokens"]

Capability = Literal["code", "reasoning", "vision", "tools", "json"]
# An answer budget below this is no budget: the call is refused as context_too_long instead.
MIN_ANSWER_TOKENS = 256


class CatalogueError(YmeraError):
    """A models file that cannot be used, in one line: the file, the entry, what is wrong."""


class ModelInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    provider: str
    name: str  # the provider's own name for it, as requests carry it
    context_window: int
    max_output: int | None = None  # the most the model writes in one answer
    price_in: float | None = None  # USD per million prompt tokens
    price_out: float | None = None  # USD per million answer tokens
    capabilities: tuple[Capability, ...] = ()
    rpm: int | None = None  # free-tier limits per key: requests a minute, tokens a minute, requests a day
    tpm: int | None = None
    rpd: int | None = None
    default: bool = False  # a task naming no model gets this one of its provider

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.name}"

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        """What a call cost, USD; None when the catalogue has no price for the model."""
        if self.price_in is None or self.price_out is None:
            return None
        return round((tokens_in * self.price_in + tokens_out * self.price_out) / 1e6, 10)


class _File(msgspec.Struct, forbid_unknown_fields=True):
    models: list[ModelInfo] = []


class Catalogue:
    """The models known, by (provider, name); a name may be served by several providers."""

    def __init__(self, models: Iterable[ModelInfo] = ()) -> None:
        self.models: dict[tuple[str, str], ModelInfo] = {}
        for info in models:
            self.models[(info.provider, info.name)] = info

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        """The shipped table, with the entries of `path` (if given) added or replacing; read once
        per path in a process (the settings are read once at start, and so is the file)."""
        return _load(path)

    @classmethod
    def _read(cls, path: Path | None) -> Catalogue:
        shipped = resources.files("llm").joinpath("models.yaml").read_bytes()
        models = _parse(shipped, "the shipped catalogue (llm/models.yaml)")
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CatalogueError(f"models file {path}: cannot be read: {exc.strerror or exc}") from None
            models += _parse(data, f"models file {path}", json=path.suffix == ".json")
        return cls(models)

    def get(self, provider: str, name: str) -> ModelInfo | None:
        return self.models.get((provider, name))

    def serving(self, name: str) -> list[ModelInfo]:
        """The entries of every provider that serves a model of this name, in catalogue order."""
        return [info for (_, model), info in self.models.items() if model == name]

    def default_for(self, provider: str) -> ModelInfo | None:
        defaults = [i for (p, _), i in self.models.items() if p == provider and i.default]
        return defaults[-1] if defaults else None


@functools.lru_cache(maxsize=8)
def _load(path: Path | None) -> Catalogue:
    return Catalogue._read(path)


def _parse(data: bytes, where: str, *, json: bool = False) -> list[ModelInfo]:
    try:
        file = msgspec.json.decode(data, type=_File) if json else msgspec.yaml.decode(data, type=_File)
    except msgspec.ValidationError as exc:
        raise CatalogueError(f"{where}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CatalogueError(f"{where}: not valid {'JSON' if json else 'YAML'}: {' '.join(str(exc).split())}") \
            from None
    for i, info in enumerate(file.models):
        entry = f"{where}: model {i + 1} ({info.provider}/{info.name})"
        if info.provider not in PROVIDERS:
            raise CatalogueError(f"{entry}: unknown provider {info.provider!r}; known: {', '.join(PROVIDERS)}")
        if info.context_window < 1:
            raise CatalogueError(f"{entry}: context_window must be a positive number of tokens")
        for name in ("max_output", "rpm", "tpm", "rpd"):
            value = getattr(info, name)
            if value is not None and value < 1:
                raise CatalogueError(f"{entry}: {name} must be a positive integer, got {value}")
        for name in ("price_in", "price_out"):
            value = getattr(info, name)
            if value is not None and value < 0:
                raise CatalogueError(f"{entry}: {name} must be >= 0 (USD per million tokens), got {value}")
    return file.models


def estimate_tokens(text_chars: int) -> int:
    """A prompt's size in tokens, erring high (three characters a token; English runs nearer four)."""
    return text_chars // 3 + 8


def answer_budget(info: ModelInfo | None, prompt_chars: int, asked: int | None) -> int | None:
    """`max_tokens` for a call: what the task asked for, else what the model's context window
    leaves after the prompt (at most its `max_output`); None for a model the catalogue does not
    know and a task that asked nothing (the server's own default then). A prompt that leaves
    less than MIN_ANSWER_TOKENS is refused before any call."""
    if asked is not None or info is None:
        return asked
    prompt = estimate_tokens(prompt_chars)
    room = info.context_window - prompt
    if room < MIN_ANSWER_TOKENS:
        raise LLMError("context_too_long", f"the prompt (about {prompt} tokens) leaves {max(room, 0)} tokens of "
                       f"{info.ref}'s {info.context_window}-token context window for the answer "
                       f"(at least {MIN_ANSWER_TOKENS} needed): shorten the inputs or choose a larger model")
    return min(room, info.max_output) if info.max_output is not None else room
