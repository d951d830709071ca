"""What an MCP server offers and answers, as our own data (`McpTool`, `McpResult`), and the two
checks made on our side of a call: the arguments against the tool's input schema before it is
sent, the size of the answer after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:  # the SDK is imported by `_mcp` only: its import takes most of a second
    import mcp_types

__all__ = ["McpContent", "McpResult", "McpTool", "argument_problem", "content_size", "result_of", "tool_of"]


class McpTool(msgspec.Struct, frozen=True):
    """A tool a server lists: its name, what it says it does, the JSON Schema of its arguments
    (and of its structured result, when it declares one)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class McpContent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One block of a result. `type`: text, image, audio, resource_link or resource (embedded).
    `text` for text (and a text resource), `data` base64 for image, audio and a binary resource."""

    type: str
    text: str | None = None
    data: str | None = None
    mime_type: str | None = None
    uri: str | None = None


class McpResult(msgspec.Struct, frozen=True):
    """A tool's answer. `is_error`: the tool ran and reports a failure in `content` (a result
    the caller reads, as an HTTP 4xx is; not a `ToolError`)."""

    content: tuple[McpContent, ...]
    structured: dict[str, Any] | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The text blocks, one after another (what most tools answer)."""
        return "\n".join(block.text for block in self.content if block.type == "text" and block.text is not None)


def tool_of(tool: mcp_types.Tool) -> McpTool:
    return McpTool(tool.name, tool.description or "", tool.input_schema, tool.output_schema)


def _content_of(block: mcp_types.ContentBlock) -> McpContent:
    import mcp_types

    if isinstance(block, mcp_types.TextContent):
        return McpContent("text", text=block.text)
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        return McpContent(block.type, data=block.data, mime_type=block.mime_type)
    if isinstance(block, mcp_types.ResourceLink):
        return McpContent("resource_link", uri=str(block.uri), mime_type=block.mime_type, text=block.description)
    resource = block.resource
    if isinstance(resource, mcp_types.TextResourceContents):
        return McpContent("resource", uri=str(resource.uri), mime_type=resource.mime_type, text=resource.text)
    return McpContent("resource", uri=str(resource.uri), mime_type=resource.mime_type, data=resource.blob)


def result_of(result: mcp_types.CallToolResult) -> McpResult:
    structured = result.structured_content
    return McpResult(tuple(_content_of(b) for b in result.content),
                     structured if isinstance(structured, dict) else None, bool(result.is_error))


def content_size(result: McpResult) -> int:
    """Bytes of what the result carries, as the caller would keep it."""
    size = sum(len((b.text or "").encode()) + len(b.data or "") for b in result.content)
    return size + (len(msgspec.json.encode(result.structured)) if result.structured is not None else 0)


class ArgumentCheck:
    """The compiled validator of one tool's input schema (compiling costs far more than checking),
    or nothing to check when the server's schema is itself invalid: its problem, the server will say."""

    def __init__(self, schema: dict[str, Any]) -> None:
        from jsonschema import SchemaError
        from jsonschema.validators import validator_for
        from referencing import Registry

        cls = validator_for(schema)
        try:
            cls.check_schema(schema)
        except SchemaError:
            self.validator: Any = None
            return
        # No registry entries: a `$ref` resolves inside the schema, never by fetching a URL.
        self.validator = cls(schema, registry=Registry())

    def problem(self, arguments: dict[str, Any]) -> str | None:
        from jsonschema.exceptions import best_match
        from referencing.exceptions import Unresolvable

        if self.validator is None:
            return None
        try:
            error = best_match(self.validator.iter_errors(arguments))
        except Unresolvable:  # a `$ref` the schema does not hold: nothing we can check
            return None
        if error is None:
            return None
        path = "/".join(str(p) for p in error.absolute_path)
        return f"at {'/' + path if path else 'the top level'}: {error.message}"


def argument_problem(checks: dict[str, ArgumentCheck], tool: McpTool, arguments: dict[str, Any]) -> str | None:
    """What is wrong with `arguments` for `tool`, or None; `checks` caches the validators by tool."""
    check = checks.get(tool.name)
    if check is None:
        check = checks[tool.name] = ArgumentCheck(tool.input_schema)
    return check.problem(arguments)
