"""A tiny real MCP server for the agentry-mcp tests (official `mcp` SDK, see scripts/setup-mcp).

    python server.py stdio [TAG...]   # MCP over stdin/stdout
    python server.py http PORT        # streamable HTTP on http://127.0.0.1:PORT/mcp

Extra arguments after `stdio` are ignored: the tests pass a unique tag so they can find this
process in the process table.
"""

import sys
import time

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("agentry-test", log_level="WARNING")


# echo, header and pair answer with plain text content, not structured content: the client's
# text conversion is what they test (a `-> str` tool is structured unless told otherwise).
@server.tool(description="Returns its input unchanged.", structured_output=False)
def echo(text: str) -> str:
    return text


@server.tool(description="Adds two numbers.")
def add(a: float, b: float) -> float:
    return a + b


@server.tool(description="Always fails.")
def fail() -> str:
    # ToolError is reported as the tool's own failure (isError), with this message as its text.
    raise ToolError("this tool always fails")


@server.tool(description="Sleeps, then says how long.")
async def slow(seconds: float) -> str:
    import anyio

    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Returns an HTTP request header of this call ('' on stdio).", structured_output=False)
def header(name: str, ctx: Context) -> str:
    return (ctx.headers or {}).get(name.lower(), "")


@server.tool(description="Returns two text blocks.", structured_output=False)
def pair() -> list[str]:
    return ["left", "right"]


@server.tool(description="Returns a caption and a 1-byte PNG.", structured_output=False)
def picture() -> list:
    return ["a caption", Image(data=b"\x89", format="png")]


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} stdio | http PORT")


if __name__ == "__main__":
    main()
