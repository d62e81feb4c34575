"""Runs one tool call for `distill generate --tools` in its own process (see `distill.generate.tools.ToolRunner`).

`python toolworker.py MODULE.py NAME` reads the call's arguments (a JSON object) on stdin and writes one JSON line
on stdout: `{"ok": result}` or `{"error": "Type: message"}`. Only a public function defined in MODULE.py itself
can be called (not one it imports). Whatever the function prints goes to stderr, so it cannot corrupt the
answer. Standard library only, and no import of distill: it starts fast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import sys


def tool_functions(module) -> dict:
    """The public functions defined in `module` itself: the only callable tools."""
    return {name: obj for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}


def load_module(path: str, name: str = "distill_user_tools"):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _answer(obj: dict) -> None:
    sys.__stdout__.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.__stdout__.flush()


def main(path: str, name: str) -> None:
    with contextlib.redirect_stdout(sys.stderr):
        try:
            args = json.loads(sys.stdin.read() or "{}")
            if not isinstance(args, dict):
                raise TypeError("the arguments must be a JSON object")
            fn = tool_functions(load_module(path)).get(name)
            if fn is None:
                raise LookupError(f"{name!r} is not a tool of {path}")
            result = fn(**args)
        except BaseException as e:  # noqa: BLE001 - every failure is an answer, never a crash of the caller
            _answer({"error": f"{type(e).__name__}: {e}"})
            return
    _answer({"ok": result})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
