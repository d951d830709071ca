"""`python` tasks: call an allowed `package.module:function` in a child process that dies with the attempt.

A child, not a thread: a function that hangs or crashes takes only its own process down, and
the attempt's time limit is enforced by killing the child's whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from typing import Any

import msgspec

from config import Settings
from events import TaskSpec

from .._outcome import Outcome, TaskError
from ..registry import TASK_KINDS, module_allowed
from ._templates import render

__all__ = ["run_python"]

# The rule for `function` is the registry's, so the validator and the executor agree.
_FUNCTION = next(p for p in TASK_KINDS["python"].params if p.name == "function")

# The child must not hold the LLM keys (any <PROVIDER>_API_KEY[_<n>]) or the key that decrypts
# them: a python task needs none, and what it cannot read it cannot leak.
_SECRET = re.compile(r".*_API_KEY(?:_[0-9]+)?|YMERA_KEK")


class _Answer(msgspec.Struct):
    ok: bool
    output: Any = None
    stage: str = ""
    error: str = ""
    traceback: str = ""


async def run_python(spec: TaskSpec, inputs: dict[str, Any], settings: Settings) -> Outcome:
    function = spec.parameters.get("function")
    if not isinstance(function, str) or not _FUNCTION.accepts(function):
        raise TaskError("bad_request", f"parameters.function must be 'package.module:function', not {function!r}",
                        retryable=False)
    module = function.partition(":")[0]
    if not module_allowed(module, settings.python_modules):
        allowed = ", ".join(settings.python_modules) or "none"
        raise TaskError("bad_request", f"module {module!r} is not allowed for python tasks "
                        f"(YMERA_PYTHON_MODULES allows: {allowed})", retryable=False)
    args = render(spec.parameters.get("args", {}), inputs, "parameters.args")
    if not isinstance(args, dict):
        raise TaskError("bad_request", f"parameters.args must be an object, not {type(args).__name__}",
                        retryable=False)
    call = {"function": function, "args": args, "inputs": inputs, "path": sys.path}
    stdout, stderr, returncode = await _run_child(msgspec.json.encode(call))
    try:
        answer = msgspec.json.decode(stdout, type=_Answer)
    except msgspec.DecodeError:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TaskError("error", f"python task process exited with code {returncode} without an answer: "
                        f"{last[0][:200]}", retryable=True) from None
    if answer.ok:
        return Outcome(output=answer.output)
    raise _failure(function, answer)


def _failure(function: str, answer: _Answer) -> TaskError:
    detail = answer.traceback or None
    if answer.stage == "import":
        return TaskError("bad_request", f"cannot import {function}: {answer.error}", retryable=False, detail=detail)
    if answer.stage == "arguments":
        return TaskError("bad_request", f"{function} cannot take these arguments: {answer.error}",
                         retryable=False, detail=detail)
    if answer.stage == "output":
        return TaskError("error", f"{function} returned output that is not JSON: {answer.error}", retryable=False)
    return TaskError("error", answer.error, retryable=True, detail=detail)


async def _run_child(call: bytes) -> tuple[bytes, bytes, int | None]:
    env = {key: value for key, value in os.environ.items() if not _SECRET.fullmatch(key)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actors.executor._pyrun",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, start_new_session=True,
    )
    try:
        stdout, stderr = await child.communicate(call)
    finally:
        if child.returncode is None:  # cancelled: the attempt timed out or the executor is stopping
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            await child.wait()
    return stdout, stderr, child.returncode
