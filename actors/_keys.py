"""API keys used in turn: one pool per executor, built with its context (`registry.Context`),
so rotation and cooldowns carry across its attempts. (Issue "AI layer" gives each provider
pools of its own.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

__all__ = ["KeyPool"]


class KeyPool:
    """API keys used in turn, one per request; a key answered with 429 rests until `cooldown_until[key]`."""

    def __init__(self, keys: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = tuple(keys)
        self.cooldown_until: dict[str, float] = {}
        self._clock = clock
        self._next = 0

    def take(self) -> str | None:
        """The next key not cooling down; if all are, the one free soonest. None without keys."""
        if not self.keys:
            return None
        now = self._clock()
        count = len(self.keys)
        order = [(self._next + i) % count for i in range(count)]
        ready = [i for i in order if self.cooldown_until.get(self.keys[i], 0.0) <= now]
        index = ready[0] if ready else min(order, key=lambda i: self.cooldown_until[self.keys[i]])
        self._next = (index + 1) % count
        return self.keys[index]

    def cool_down(self, key: str, seconds: float) -> None:
        until = self._clock() + seconds
        self.cooldown_until[key] = max(until, self.cooldown_until.get(key, 0.0))
