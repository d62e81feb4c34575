"""`GenerateSettings`: every field documented, paths taken as text, the rules between fields refused with what to
do, the row key's parameters; and `errors.invalid_settings`, which turns its errors into one paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from distill.errors import invalid_settings
from distill.generate.client import row_params
from distill.generate.settings import GenerateSettings
from distill.generate.tools import ToolSet

BASE = {"endpoint": "http://127.0.0.1:9/v1", "model": "m", "out": "o"}


def test_fields_are_documented_and_paths_are_text():
    assert all(f.description for f in GenerateSettings.model_fields.values())
    s = GenerateSettings(**BASE | {"out": Path("runs/g"), "prompts": Path("p.jsonl"), "tokenizer": Path("tok")})
    assert (s.out, s.prompts, s.tokenizer) == ("runs/g", "p.jsonl", "tok")
    msgs = [[{"role": "user", "content": "hi"}]]
    assert GenerateSettings(**BASE, prompts=msgs).prompts == msgs


@pytest.mark.parametrize("fields,needle", [
    ({"tools": "t.py", "n": 2}, "one trajectory per prompt"),
    ({"tools": "t.py", "top_logprobs": 3}, "without log-probabilities"),
    ({"tool_command": "python run.py"}, "--tool-command runs the tools of --tools tools.json"),
    ({"api_key_env": "K", "api_key_file": "k.txt"}, "not both"),
    ({"top_p": 0}, "greater than 0"),
    ({"limit": 0}, "greater than or equal to 1"),
    ({"prompts": ["hello"]}, "a list of chat-message lists"),
])
def test_bad_combinations_and_values_are_refused(fields, needle):
    with pytest.raises(ValidationError, match=needle):
        GenerateSettings(**BASE | fields)


def test_row_params_hold_the_sampling_and_with_tools_their_fingerprint_and_turns():
    s = GenerateSettings(**BASE, max_tokens=9, seed=3)
    assert row_params(s) == {"max_tokens": 9, "temperature": 1.0, "top_p": 1.0, "n": 1, "seed": 3,
                             "top_logprobs": 0}
    tools = ToolSet(Path("t.py"), ({"type": "function", "function": {"name": "f"}},))
    assert row_params(s, tools) == row_params(s) | {"tools": tools.fingerprint(), "max_turns": 8}
    assert row_params(s.model_copy(update={"max_turns": 2}), tools)["max_turns"] == 2  # changed tools: new keys


def test_invalid_settings_is_one_paragraph_naming_each_field_flag_or_item():
    with pytest.raises(ValidationError) as e:
        GenerateSettings(endpoint="http://x", out="o", max_tokens=0, timout_s=3,
                         prompts=[[{"role": "user"}], "not a list"])
    err = invalid_settings(e.value, "generate settings", "distill generate", "fix the values",
                           known=tuple(GenerateSettings.model_fields))
    assert err.what.startswith("invalid generate settings: ") and err.where == "distill generate"
    assert "model: Field required;" in err.what  # a missing field: no "(got ...)" of the whole input
    assert "max_tokens: Input should be greater than or equal to 1 (got 0)" in err.what
    assert "unknown key 'timout_s' (did you mean 'timeout_s'?)" in err.what
    assert "prompts: must be a prompt file, 'chatterbot', or a list of chat-message lists" in err.what
    flagged = invalid_settings(e.value, "generate settings", "distill generate", "fix the values", flags=True)
    assert "--max-tokens: Input should be" in flagged.what and "\n" not in flagged.paragraph()
    with pytest.raises(ValidationError) as e:
        GenerateSettings(**BASE, prompts=[[{"role": "user", "content": "hi"}]], limit=[1])
    assert "limit: Input should be a valid integer (got [1])" in invalid_settings(e.value, "s", "w", "f").what
