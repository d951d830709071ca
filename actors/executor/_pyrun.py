"""The child side of a `python` task: read one call as JSON on stdin, run it, answer as JSON on stdout.

Run as `python -m actors.executor._pyrun`. The answer is `{"ok": true, "output": ...}` or
`{"ok": false, "stage": ..., "error": "ExcType: message", "traceback": ...}`, where `stage`
is `import`, `arguments`, `call` or `output`. Standard library only, so it starts quickly.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

TRACEBACK_CHARS = 2000


def main() -> int:
    # The function may print: fd 1 becomes stderr, and the answer goes to a copy of the real stdout.
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        result = _run(json.loads(sys.stdin.buffer.read()))
    except Exception as exc:  # the call itself was malformed: the parent only sends well-formed ones
        result = _failure("arguments", exc)
    sys.stdout.flush()
    answer.write(json.dumps(result))
    answer.close()
    return 0


def _run(call: dict[str, Any]) -> dict[str, Any]:
    sys.path[:0] = [entry for entry in call.get("path", []) if entry not in sys.path]
    module_name, _, name = call["function"].partition(":")
    try:
        function: Callable[..., Any] = getattr(importlib.import_module(module_name), name)
    except Exception as exc:
        return _failure("import", exc)
    args = dict(call.get("args", {}))
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have none; the call reports bad arguments instead
        signature = None
    if signature is not None:
        if "inputs" in signature.parameters and "inputs" not in args:
            args["inputs"] = call.get("inputs", {})
        try:
            signature.bind(**args)
        except TypeError as exc:
            return _failure("arguments", exc)
    try:
        output = function(**args)
        if inspect.isawaitable(output):
            output = asyncio.run(_wait(output))
    except Exception as exc:
        return _failure("call", exc)
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {"ok": False, "stage": "output", "error": str(exc), "traceback": ""}
    return {"ok": True, "output": output}


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def _failure(stage: str, exc: BaseException) -> dict[str, Any]:
    text = " ".join(str(exc).split())
    return {
        "ok": False,
        "stage": stage,
        "error": f"{type(exc).__name__}: {text}" if text else type(exc).__name__,
        "traceback": traceback.format_exc()[-TRACEBACK_CHARS:],
    }


if __name__ == "__main__":
    sys.exit(main())
