"""Tools for `distill generate --tools`: their schemas, and a runner for the calls a model makes.

Two ways to give tools:

* a Python module (`--tools tools.py`): the tools are the public functions defined in it (not ones it imports,
  not names starting with `_`); each needs type hints and a Google-style docstring with an `Args:` line per
  parameter, from which `transformers.utils.get_json_schema` writes the JSON schema sent as `tools`;
* a JSON file of OpenAI tool schemas (`--tools tools.json`, a list or `{"tools": [...]}`) plus a command
  (`--tool-command "CMD ARGS"`): each call runs CMD with `{"name", "arguments"}` as JSON on stdin; its stdout is
  the result, a non-zero exit status an error.

`ToolRunner.call` runs one call in a fresh process in its own session, so a tool can neither hang, crash nor
flood the run: past `timeout_s` its process group is killed; its answer is cut at `max_chars` characters (and a
process writing far more is killed); an exception, a timeout, bad arguments or an unknown tool name all become
the tool message's text (`error: ...`), which the model reads on its next turn. Only the declared tools can be
called.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from distill.errors import DistillError
from distill.generate.toolworker import load_module, tool_functions

WORKER = Path(__file__).with_name("toolworker.py")
REAP_S = 10.0  # how long a killed tool process is waited for before the run goes on without its exit status


@dataclass(frozen=True)
class ToolSet:
    """Where the tools are, the schemas sent to the API (in the file's order), and the command that runs a call
    (None: the module's own functions, through `toolworker.py`)."""

    path: Path
    schemas: tuple[dict, ...]
    command: tuple[str, ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s["function"]["name"] for s in self.schemas)

    def fingerprint(self) -> str:
        """sha256 of the schemas: part of each row's key, so changed tools are generated again."""
        return hashlib.sha256(json.dumps([self.schemas, self.command], sort_keys=True).encode()).hexdigest()


def load_tools(path: str | Path, command: str | None = None) -> ToolSet:
    """The tools of a Python module, or of a JSON schema file run by `command` (see the module docstring); a
    DistillError names what is wrong."""
    p = Path(path).expanduser().resolve()
    if p.is_file() and p.suffix == ".json":
        return _schema_file(p, command)
    if not p.is_file() or p.suffix != ".py":
        raise DistillError("the tools are neither a Python module nor a JSON schema file", where=str(path),
                           fix="pass --tools path/to/tools.py (functions with type hints and docstrings), or "
                           "--tools tools.json with --tool-command")
    if command is not None:
        raise DistillError("--tool-command runs the tools of a JSON schema file, not of a Python module",
                           where=str(path), fix="leave out --tool-command, or pass --tools tools.json")
    return _module(p)


def _schema_file(p: Path, command: str | None) -> ToolSet:
    import shlex

    from distill.fileio import read_json_file
    from distill.tokens.toolcalls import ToolFormatError, normalize_tools

    if not command or not shlex.split(command):
        raise DistillError("a JSON schema file of tools needs the command that runs them", where=str(p),
                           fix="add --tool-command \"CMD ARGS\": it gets {\"name\", \"arguments\"} as JSON on "
                           "stdin and prints the result")
    data = read_json_file(p, "tool schema file", "check the --tools path", "write the schemas as valid JSON")
    tools = data.get("tools") if isinstance(data, dict) else data
    try:
        schemas = normalize_tools(tools)
    except ToolFormatError as e:
        raise DistillError(f"malformed tool schema: `{e.field}` {e.problem}", where=str(p),
                           fix="write a list (or {\"tools\": [...]}) of {\"type\": \"function\", \"function\": "
                           "{\"name\", \"description\", \"parameters\": JSON schema}}") from None
    if not schemas:
        raise DistillError("the tool schema file lists no tool", where=str(p), fix="add at least one tool")
    return ToolSet(p, tuple(schemas), tuple(shlex.split(command)))


def _module(p: Path) -> ToolSet:
    from transformers.utils import get_json_schema

    try:
        module = load_module(str(p), f"distill_tools_{hashlib.sha256(str(p).encode()).hexdigest()[:12]}")
    except Exception as e:  # noqa: BLE001 - the user's module: any error is theirs to fix
        raise DistillError(f"importing the tools module failed ({type(e).__name__}: {e})", where=str(p),
                           fix="make the module import cleanly with `python -c 'import runpy; "
                           f"runpy.run_path(\"{p}\")'`") from None
    functions = tool_functions(module)
    if not functions:
        raise DistillError("the tools module defines no public function", where=str(p),
                           fix="define each tool as a function with type hints and a docstring (names starting "
                           "with _ are not tools)")
    schemas = []
    for name, fn in functions.items():
        try:
            schema = get_json_schema(fn)
        except Exception as e:  # noqa: BLE001 - DocstringParsingException, TypeHintParsingException
            raise DistillError(f"cannot describe the tool {name!r}: {e}", where=f"{p}: def {name}",
                               fix="give it a type hint per parameter and a Google-style docstring (a summary "
                               "line, then `Args:` with a `name: description` line per parameter); a helper "
                               "that is not a tool gets a name starting with _") from None
        schema["function"].pop("return", None)  # not part of OpenAI's tool schema
        schemas.append(schema)
    return ToolSet(p, tuple(schemas))


class ToolRunner:
    """Runs tool calls of one `ToolSet`, each in its own process with a time and an output limit."""

    def __init__(self, tools: ToolSet, timeout_s: float = 10.0, max_chars: int = 4000):
        self.tools, self.timeout_s, self.max_chars = tools, timeout_s, max_chars

    async def call(self, name: str, arguments: str) -> tuple[str, bool]:
        """The tool message's content for one call, and whether the call succeeded (False: an `error: ...`)."""
        if name not in self.tools.names:
            return f"error: unknown tool {name!r}; the tools are {', '.join(self.tools.names)}", False
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as e:
            return f"error: the arguments are not valid JSON ({e.msg})", False
        if not isinstance(args, dict):
            return "error: the arguments must be a JSON object", False
        command = self.tools.command
        argv = list(command) if command else [sys.executable, str(WORKER), str(self.tools.path), name]
        payload = {"name": name, "arguments": args} if command else args
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            return f"error: the tool command could not start ({e.strerror or type(e).__name__})", False
        limit = 8 * self.max_chars + (1 << 20)  # JSON escaping grows text; far beyond that the tool is flooding
        try:
            out = await asyncio.wait_for(self._exchange(proc, json.dumps(payload).encode(), limit), self.timeout_s)
        except asyncio.TimeoutError:
            return f"error: the tool did not finish within {self.timeout_s:g} s", False
        finally:
            _kill(proc)
            try:  # reap it; bounded: a lost child-exit notification must not hang the run (seen once in the suite)
                await asyncio.wait_for(proc.wait(), REAP_S)
            except asyncio.TimeoutError:
                pass
        if out is None:
            return f"error: the tool's output exceeded {self.max_chars} characters by far", False
        if command:
            text = out.decode("utf-8", errors="replace").strip()
            if proc.returncode:
                return self._cut(f"error: the tool command exited with status {proc.returncode}: {text}"), False
            return self._cut(text), True
        try:
            answer = json.loads(out)
        except json.JSONDecodeError:
            return "error: the tool process ended without an answer", False
        if "error" in answer:
            return self._cut(f"error: {answer['error']}"), False
        result = answer.get("ok")
        return self._cut(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)), True

    @staticmethod
    async def _exchange(proc, args: bytes, limit: int) -> bytes | None:
        """Send the arguments, read the answer; None when the output passes `limit` bytes."""
        try:
            proc.stdin.write(args)
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):  # it ended before reading: its stdout says why, or nothing
            pass
        out = bytearray()
        while chunk := await proc.stdout.read(65536):
            out += chunk
            if len(out) > limit:
                return None
        await proc.wait()  # its exit status: a command's error
        return bytes(out)

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars] + f"\n[cut: {len(text) - self.max_chars} more characters]"


def _kill(proc) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
