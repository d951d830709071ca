"""Which provider and model a task's call goes to: from its `model` (`provider/name`, or a name
the catalogue knows), its agent's or the default model, and the providers that have keys.
No I/O: the validator asks the same question the executor does, and gets the same answer."""

from __future__ import annotations

import msgspec

from config import Settings

from ._catalogue import Catalogue, ModelInfo
from ._errors import LLMError
from ._providers import LOCAL, PROVIDERS, Endpoint, Provider, endpoints

__all__ = ["NO_LLM", "Models", "Target"]

NO_LLM = ("no LLM is configured: set a provider's key (e.g. GEMINI_API_KEY or GROQ_API_KEY_1; docs/llm.md lists "
          "the providers) or YMERA_LLM_BASE_URL (any OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for "
          "Ollama) with YMERA_LLM_MODEL; or give the task both base_url and model parameters")
_CUSTOM = "custom"  # a task's own base_url: an OpenAI-compatible endpoint, no configured key goes there


class Target(msgspec.Struct, frozen=True):
    """Where one call goes: the endpoint, the model's name there, and its catalogue entry if any."""

    endpoint: Endpoint
    model: str
    info: ModelInfo | None = None

    @property
    def ref(self) -> str:
        return f"{self.endpoint.name}/{self.model}"


class Models:
    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.endpoints = endpoints(settings)

    def resolve(self, model: str | None, base_url: str | None = None) -> Target:
        """The target of a call asking for `model` (None: the default); an `LLMError` (bad_request)
        saying what to set when there is none."""
        if base_url:
            base_url = base_url.rstrip("/")
            local = self.endpoints.get(LOCAL)
            if not model:
                raise LLMError("bad_request", "a task with its own base_url needs its model parameter too",
                               retryable=False)
            if local is not None and local.base_url == base_url:  # the configured keys go only there
                return Target(local, model, self.catalogue.get(LOCAL, model))
            return Target(Endpoint(Provider(_CUSTOM, "openai", base_url, ""), base_url), model)
        model = model or self.settings.llm.model
        if not model:
            return self._default()
        provider, _, name = model.partition("/")
        if name and provider in PROVIDERS:
            endpoint = self.endpoints.get(provider)
            if endpoint is None:
                raise _refused(f"model {model!r}: provider {provider} is not configured: "
                               f"{_how(PROVIDERS[provider])}")
            return Target(endpoint, name, self.catalogue.get(provider, name))
        serving = self.catalogue.serving(model)
        for info in serving:
            if info.provider in self.endpoints:
                return Target(self.endpoints[info.provider], model, info)
        if serving:
            raise _refused(f"model {model!r} is served by {', '.join(i.provider for i in serving)}, and none of them "
                           f"is configured: {_how(PROVIDERS[serving[0].provider])}")
        if LOCAL in self.endpoints:
            return Target(self.endpoints[LOCAL], model, None)
        if len(self.endpoints) == 1:
            endpoint = next(iter(self.endpoints.values()))
            return Target(endpoint, model, None)
        if not self.endpoints:
            raise _refused(NO_LLM)
        raise _refused(f"model {model!r} is not in the model catalogue: name its provider, as <provider>/{model} "
                       f"(configured: {', '.join(self.endpoints)})")

    def recorded(self, ref: str, base_url: str | None = None) -> Target:
        """The target a recorded call named ("<provider>/<name>"), to build the same request again
        whether or not the provider is configured here (a replay calls no one)."""
        provider, _, name = ref.partition("/")
        endpoint = self.endpoints.get(provider)
        if endpoint is None:
            known = PROVIDERS.get(provider)
            where = base_url or (known.base_url if known is not None else None) or "http://replay.invalid"
            endpoint = Endpoint(known or Provider(provider, "openai", where, ""), where.rstrip("/"))
        return Target(endpoint, name, self.catalogue.get(provider, name))

    def problem(self, model: str | None, base_url: str | None = None) -> str | None:
        """Why a call asking for `model` could not be made here; None if it could."""
        try:
            self.resolve(model, base_url)
        except LLMError as exc:
            return exc.message
        return None

    def _default(self) -> Target:
        if LOCAL in self.endpoints:
            raise _refused("no model is named: YMERA_LLM_BASE_URL is set but not YMERA_LLM_MODEL; set it, or give the "
                           "task a model parameter")
        for name, endpoint in self.endpoints.items():
            info = self.catalogue.default_for(name)
            if info is not None:
                return Target(endpoint, info.name, info)
        if self.endpoints:
            raise _refused(f"no model named: set YMERA_LLM_MODEL or the task's model parameter (the catalogue has no "
                           f"default model for {', '.join(self.endpoints)})")
        raise _refused(NO_LLM)


def _how(provider: Provider) -> str:
    if provider.name == LOCAL:
        return "set YMERA_LLM_BASE_URL"
    return f"set {provider.env}_API_KEY or {provider.env}_API_KEY_1, {provider.env}_API_KEY_2, ..."


def _refused(message: str) -> LLMError:
    return LLMError("bad_request", message, retryable=False)
