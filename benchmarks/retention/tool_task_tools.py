"""The tool of `bench_tool_task.py`: a calculator for integer arithmetic.

Its type hint and docstring become the JSON schema the model sees; each call the model makes runs here, in its own
process, through Distill's tool runner (`distill.generate.tools`, docs/agents.md)."""

from __future__ import annotations

import ast
import operator

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _value(node: ast.AST) -> int:
    """The value of an expression tree of integers, +, - and * (anything else is a ValueError)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    raise ValueError("only integers, +, -, * and parentheses are allowed")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression of integers.

    Args:
        expression: integers with +, - and * and parentheses, e.g. "(12 + 7) * 3"
    """
    if len(expression) > 200:
        raise ValueError("the expression is too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse {expression!r}") from None
    return str(_value(tree.body))
