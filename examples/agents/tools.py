"""Tools for `distill generate --tools examples/agents/tools.py`: a calculator and a unit converter.

Each public function is a tool: its type hints and docstring become the JSON schema sent to the model, and each
call the model makes runs here, in its own process, with a time and output limit (docs/agents.md)."""

from __future__ import annotations

_FACTORS = {("km", "mi"): 0.621371, ("mi", "km"): 1.609344, ("kg", "lb"): 2.204623, ("lb", "kg"): 0.453592,
            ("m", "ft"): 3.280840, ("ft", "m"): 0.304800}


def calculate(a: float, op: str, b: float) -> float:
    """Apply an arithmetic operation to two numbers.

    Args:
        a: the left operand
        op: one of +, -, *, /
        b: the right operand
    """
    ops = {"+": a + b, "-": a - b, "*": a * b}
    if op == "/":
        return a / b
    if op not in ops:
        raise ValueError(f"unknown operation {op!r}; use +, -, * or /")
    return ops[op]


def convert(value: float, unit_from: str, unit_to: str) -> float:
    """Convert a length or a mass between units.

    Args:
        value: the quantity to convert
        unit_from: its unit: km, mi, kg, lb, m or ft
        unit_to: the unit wanted: km, mi, kg, lb, m or ft
    """
    if (unit_from, unit_to) not in _FACTORS:
        raise ValueError(f"cannot convert {unit_from} to {unit_to}")
    return round(value * _FACTORS[(unit_from, unit_to)], 4)
