"""What an MCP tool call costs through Ymera (issue 11), against the official SDK calling the
same server in the same run; and how many MCP calls one executor makes a second.

The server is ours, over stdio: the SDK's `MCPServer` with one tool, `echo`, so what is
measured is the clients and the engine, not the tool.

- **direct**: the SDK's own `mcp.Client` over stdio, one call after another; ms per call.
- **McpClient**: Ymera's client (`tools.McpClient`: its supervised stdio transport, the
  arguments checked against the tool's schema, the answer's size capped).
- **mcp task**: one attempt of an `mcp` task as the executor runs it (`run_task`: the grant
  checked, the arguments rendered, the call, the arguments and answer redacted and recorded
  for the `ToolCalled` event). Its overhead over **direct** is the target: < 2 ms p50.
- **per executor**: a workflow of N independent `mcp` tasks on one engine, every actor in this
  process and one executor (`actors.run_all`), from the first submit until the log holds every
  event: MCP calls per second per executor; the same workflow of `noop` tasks beside it, so
  the engine's own cost per task shows.

Each repetition takes the variants in turn; medians and ranges over repetitions.

    .venv/bin/python bench/mcp_tools.py [--calls 2000] [--tasks 1000] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from report import machine, timed, write_section
from throughput import engine, run_workflows

import events
import tools
from actors import load_settings
from actors.executor._kinds import context, run_task
from actors.executor._mcp import ToolCall, record

SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


server.run()
'''
ARGUMENTS = {"text": "hello from the bench"}


async def direct(script: Path, n: int) -> list[float]:
    async with Client(StdioServerParameters(command=sys.executable, args=[str(script)])) as client:
        return await timed(lambda: client.call_tool("echo", ARGUMENTS), n, warmup=50)


async def ours(script: Path, n: int) -> list[float]:
    async with tools.McpClient(tools.McpServer(name="bench", command=(sys.executable, str(script)))) as client:
        return await timed(lambda: client.call("echo", ARGUMENTS), n, warmup=50)


def servers_file(tmp: Path, script: Path) -> Path:
    path = tmp / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"bench": {"command": sys.executable, "args": [str(script)]}}}))
    return path


def mcp_spec(task_id: str) -> events.TaskSpec:
    return events.TaskSpec(id=task_id, type="mcp", tools=["mcp:bench"],
                           parameters={"server": "bench", "tool": "echo", "arguments": ARGUMENTS})


async def as_task(tmp: Path, script: Path, n: int) -> list[float]:
    settings = load_settings({"YMERA_DATA_DIR": str(tmp / "data"),
                              "YMERA_MCP_SERVERS": str(servers_file(tmp, script))}, dotenv=None)
    spec = mcp_spec("t")
    async with context(settings) as ctx:

        async def one() -> None:
            calls: list[ToolCall] = []
            with record(calls):
                await run_task(spec, {}, ctx, timeout=30)

        return await timed(one, n, warmup=50)


async def per_executor(tmp: Path, script: Path, n: int, kind: str) -> float:
    """Tasks a second of one workflow of `n` independent tasks of `kind` (mcp or noop)."""
    environ = {"YMERA_MCP_SERVERS": str(servers_file(tmp, script))}
    tasks = [mcp_spec(f"t{i:05d}") if kind == "mcp" else events.TaskSpec(id=f"t{i:05d}", type="noop")
             for i in range(n)]
    sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=f"{kind}-{tmp.name}",
                                   principal="bench", tasks=tasks)
    async with engine(tmp / kind, 1, in_process=True, environ=environ) as running:
        seconds, _ = await run_workflows(running, [sub])
    return n / seconds


def cell(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


async def measure(args: argparse.Namespace) -> list[str]:
    latency: dict[str, list[float]] = {"direct": [], "McpClient": [], "mcp task": []}
    p99: dict[str, list[float]] = {k: [] for k in latency}
    rates: dict[str, list[float]] = {"mcp": [], "noop": []}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        script = tmp / "server.py"
        script.write_text(SERVER)
        for rep in range(args.repeat):
            for name, run in (("direct", direct), ("McpClient", ours)):
                ms = await run(script, args.calls)
                latency[name].append(statistics.median(ms))
                p99[name].append(statistics.quantiles(ms, n=100)[98])
            work = tmp / f"rep{rep}"
            work.mkdir()
            ms = await as_task(work, script, args.calls)
            latency["mcp task"].append(statistics.median(ms))
            p99["mcp task"].append(statistics.quantiles(ms, n=100)[98])
            for kind in ("mcp", "noop"):
                rates[kind].append(await per_executor(work, script, args.tasks, kind))
            print(f"rep {rep + 1}: direct {latency['direct'][-1]:.3f} ms, McpClient {latency['McpClient'][-1]:.3f} "
                  f"ms, mcp task {latency['mcp task'][-1]:.3f} ms; per executor {rates['mcp'][-1]:,.0f} mcp "
                  f"tasks/s, {rates['noop'][-1]:,.0f} noop tasks/s", flush=True)
    over = [t - d for t, d in zip(latency["mcp task"], latency["direct"], strict=True)]
    lib = [c - d for c, d in zip(latency["McpClient"], latency["direct"], strict=True)]
    return [
        f"{args.calls} calls of `echo` a variant and repetition, one after another; {args.repeat} repetitions.",
        "",
        "| variant | p50 ms | p99 ms | overhead over direct, p50 ms |",
        "|---|---:|---:|---:|",
        f"| direct (mcp.Client) | {cell(latency['direct'], '.3f')} | {cell(p99['direct'], '.3f')} | — |",
        f"| McpClient | {cell(latency['McpClient'], '.3f')} | {cell(p99['McpClient'], '.3f')} | "
        f"{cell(lib, '+.3f')} |",
        f"| mcp task (run_task) | {cell(latency['mcp task'], '.3f')} | {cell(p99['mcp task'], '.3f')} | "
        f"{cell(over, '+.3f')} |",
        "",
        f"Per executor (one workflow of {args.tasks} independent tasks, every actor in this process, one "
        f"executor): {cell(rates['mcp'], ',.0f')} MCP calls/s as `mcp` tasks, against "
        f"{cell(rates['noop'], ',.0f')} `noop` tasks/s on the same engine.",
        "",
        f"Target: an MCP call's overhead through Ymera < 2 ms p50: "
        f"{'met' if statistics.median(over) < 2.0 else 'NOT met'} ({statistics.median(over):+.3f} ms).",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    args = p.parse_args(argv)
    lines = asyncio.run(measure(args))
    print("\n".join(lines))
    if args.write:
        write_section("MCP tool calls (bench/mcp_tools.py)", f"{machine()}\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
