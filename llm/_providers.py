"""The providers Ymera speaks to, and which of them this deployment has keys for.

A provider exists when its keys are set: `<ENV>_API_KEY` or `<ENV>_API_KEY_<n>` (any number
of them: each is one key of its pool); `<ENV>_BASE_URL` overrides its endpoint (a proxy, a
regional endpoint, a test server). The local provider is the `YMERA_LLM_*` endpoint: any
OpenAI-compatible server (Ollama, llama.cpp, vLLM), present when `YMERA_LLM_BASE_URL` is set,
keys optional. Providers that share OpenAI's format differ only by a row here.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from config import ProviderEnv, Settings

__all__ = ["LOCAL", "PROVIDERS", "Endpoint", "Provider", "endpoints"]

LOCAL = "local"


class Provider(msgspec.Struct, frozen=True):
    name: str
    wire: str  # a key of llm.wire.WIRES
    base_url: str | None  # None: only an <ENV>_BASE_URL gives one
    env: str  # the prefix of its settings: <env>_API_KEY[_<n>], <env>_BASE_URL


PROVIDERS: Mapping[str, Provider] = {p.name: p for p in (
    Provider("openai", "openai", "https://api.openai.com/v1", "OPENAI"),
    Provider("anthropic", "anthropic", "https://api.anthropic.com/v1", "ANTHROPIC"),
    Provider("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI"),
    Provider("groq", "openai", "https://api.groq.com/openai/v1", "GROQ"),
    Provider("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL"),
    Provider("cohere", "cohere", "https://api.cohere.com/v2", "COHERE"),
    Provider("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK"),
    Provider("together", "openai", "https://api.together.xyz/v1", "TOGETHER"),
    Provider("fireworks", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS"),
    Provider("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER"),
    Provider("cerebras", "openai", "https://api.cerebras.ai/v1", "CEREBRAS"),
    Provider("sambanova", "openai", "https://api.sambanova.ai/v1", "SAMBANOVA"),
    Provider("huggingface", "openai", "https://router.huggingface.co/v1", "HUGGINGFACE"),
    Provider("xai", "openai", "https://api.x.ai/v1", "XAI"),
    Provider(LOCAL, "openai", None, "YMERA_LLM"),
)}


class Endpoint(msgspec.Struct, frozen=True):
    """A provider this deployment can call: where, and with which keys (id, key), in order."""

    provider: Provider
    base_url: str
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.provider.name

    def __repr__(self) -> str:  # the key ids, never the keys
        return f"Endpoint({self.provider.name!r}, {self.base_url!r}, keys={[k for k, _ in self.keys]!r})"


def endpoints(settings: Settings) -> dict[str, Endpoint]:
    """The providers that have keys (the local one: a base URL), in the table's order.

    A key's id is `<provider>:<n>` for `<ENV>_API_KEY_<n>` and `<provider>:0` for `<ENV>_API_KEY`:
    what events and `ymera models` show, never the key.
    """
    found: dict[str, Endpoint] = {}
    for provider in PROVIDERS.values():
        env = settings.providers.get(provider.env) or ProviderEnv()
        base_url = (env.base_url or provider.base_url or "").rstrip("/")
        if provider.name == LOCAL:
            base_url = (settings.llm.base_url or "").rstrip("/")
        keys = tuple((f"{provider.name}:{n}", key) for n, key in env.keys)
        if base_url and (keys or provider.name == LOCAL):
            found[provider.name] = Endpoint(provider, base_url, keys)
    return found
