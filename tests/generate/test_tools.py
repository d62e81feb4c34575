"""`distill generate --tools`: schemas from a module's functions, and the runner's limits and errors."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest

from distill.errors import DistillError
from distill.generate.tools import ToolRunner, load_tools

TOOLS = '''
import os
import time
from os.path import join  # imported, so never a tool


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: the first number
        b: the second number
    """
    print("chatter on stdout does not corrupt the answer")
    return a + b


def lookup(city: str) -> dict:
    """Facts about a city.

    Args:
        city: the city's name
    """
    return {"city": city, "population": 3}


def boom() -> str:
    """Always fails."""
    raise ValueError("no such thing")


def slow() -> str:
    """Never finishes in time."""
    time.sleep(60)
    return "late"


def long() -> str:
    """A long answer."""
    return "x" * 5000


def flood() -> str:
    """Writes far too much."""
    os.write(1, b"y" * 10_000_000)
    return "done"


def _helper() -> None:
    pass
'''


@pytest.fixture()
def tools(tmp_path):
    path = tmp_path / "tools.py"
    path.write_text(TOOLS)
    return load_tools(path)


def run(runner, name, args):
    return asyncio.run(runner.call(name, json.dumps(args) if not isinstance(args, str) else args))


def test_schemas_come_from_hints_and_docstrings(tools):
    assert tools.names == ("add", "lookup", "boom", "slow", "long", "flood")
    assert tools.schemas[0] == {"type": "function", "function": {
        "name": "add", "description": "Add two numbers.", "parameters": {
            "type": "object", "properties": {"a": {"type": "number", "description": "the first number"},
                                             "b": {"type": "number", "description": "the second number"}},
            "required": ["a", "b"]}}}
    assert len(tools.fingerprint()) == 64


def test_calls_answer_or_become_error_messages(tools):
    r = ToolRunner(tools, timeout_s=20, max_chars=100)
    assert run(r, "add", {"a": 2, "b": 3.5}) == ("5.5", True)
    assert run(r, "lookup", {"city": "Oslo"}) == ('{"city": "Oslo", "population": 3}', True)
    assert run(r, "boom", {}) == ("error: ValueError: no such thing", False)
    text, ok = run(r, "add", {"a": 2})
    assert not ok and text.startswith("error: TypeError") and "'b'" in text
    for name in ("join", "_helper", "rm_rf"):  # only the module's own public functions are callable
        assert run(r, name, {}) == (f"error: unknown tool {name!r}; the tools are add, lookup, boom, slow, long, "
                                    "flood", False)
    assert run(r, "add", "{a: 1") == ("error: the arguments are not valid JSON (Expecting property name enclosed "
                                      "in double quotes)", False)
    assert run(r, "add", "[1, 2]") == ("error: the arguments must be a JSON object", False)


def test_time_and_size_limits(tools):
    r = ToolRunner(tools, timeout_s=1.0, max_chars=100)
    t0 = time.monotonic()
    assert run(r, "slow", {}) == ("error: the tool did not finish within 1 s", False)
    assert time.monotonic() - t0 < 30  # killed, not waited for
    text, ok = run(ToolRunner(tools, timeout_s=20, max_chars=100), "long", {})
    assert ok and text == "x" * 100 + "\n[cut: 4900 more characters]"
    assert run(ToolRunner(tools, timeout_s=20, max_chars=100), "flood", {}) == (
        "error: the tool's output exceeded 100 characters by far", False)


RUNNER = '''
import json, sys
call = json.load(sys.stdin)
args = call["arguments"]
if call["name"] == "add":
    print(args["a"] + args["b"])
elif call["name"] == "fail":
    print("disk on fire")
    sys.exit(3)
else:
    import time
    time.sleep(60)
'''


@pytest.fixture()
def schema_tools(tmp_path):
    (tmp_path / "run.py").write_text(RUNNER)
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("add", "fail", "hang")]
    (tmp_path / "tools.json").write_text(json.dumps({"tools": tools}))
    return load_tools(tmp_path / "tools.json", f"{sys.executable} {tmp_path / 'run.py'}")


def test_a_schema_file_runs_through_its_command(schema_tools):
    assert schema_tools.names == ("add", "fail", "hang")
    r = ToolRunner(schema_tools, timeout_s=1.0, max_chars=100)
    assert run(r, "add", {"a": 2, "b": 3}) == ("5", True)
    assert run(r, "fail", {}) == ("error: the tool command exited with status 3: disk on fire", False)
    assert run(r, "hang", {}) == ("error: the tool did not finish within 1 s", False)
    assert run(r, "rm", {}) == ("error: unknown tool 'rm'; the tools are add, fail, hang", False)  # never spawned


@pytest.mark.parametrize("content,command,match", [
    ('[{"type": "function", "function": {"parameters": {}}}]', "true", "`tools\\[0\\].function.name`"),
    ("[]", "true", "lists no tool"),
    ("{not json", "true", "not valid JSON"),
    ('[{"type": "function", "function": {"name": "f"}}]', None, "needs the command"),
])
def test_bad_schema_files_are_clear_errors(tmp_path, content, command, match):
    (tmp_path / "t.json").write_text(content)
    with pytest.raises(DistillError, match=match):
        load_tools(tmp_path / "t.json", command)


@pytest.mark.parametrize("source,match", [
    ("def f(x):\n    return x\n", "cannot describe the tool 'f'"),
    ("def f(x: int) -> int:\n    '''No args section.'''\n    return x\n", "cannot describe the tool 'f'"),
    ("import os\n", "no public function"),
    ("raise RuntimeError('bad import')\n", "importing the tools module failed"),
])
def test_bad_tool_modules_are_clear_errors(tmp_path, source, match):
    path = tmp_path / "t.py"
    path.write_text(source)
    with pytest.raises(DistillError, match=match):
        load_tools(path)
    with pytest.raises(DistillError, match="neither a Python module nor a JSON schema file"):
        load_tools(tmp_path / "missing.py")
    with pytest.raises(DistillError, match="not of a Python module"):
        load_tools(tmp_path / "t.py", "python run.py")
