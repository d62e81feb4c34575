"""The Python API as the README uses it: `distill.evaluate`, `distill.train`, `distill.load_config`."""

from __future__ import annotations

import subprocess
import sys


def test_import_distill_stays_torch_free():
    code = "import sys, distill; assert 'torch' not in sys.modules, 'import distill pulled in torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_stays_the_function_after_its_module_is_imported(tmp_path, tiny_teacher_dir, tiny_model_dir,
                                                                   text_file):
    import distill

    kwargs = dict(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir), data=str(text_file), seq_len=32,
                  sequences=2, batch_size=2, gen_prompts=1)
    first = distill.evaluate(**kwargs)
    import distill.evaluation.report  # noqa: F401  (importing the module must not rebind the name)

    second = distill.evaluate(**kwargs)
    assert callable(distill.evaluate)
    assert first["student"]["kl_teacher_student"] == second["student"]["kl_teacher_student"] > 0
    cfg = distill.load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32", "student.hidden_size=32",
        "student.num_layers=1", "student.num_heads=2", "train.steps=2", "train.batch_size=2",
        "train.eval_sequences=2", "train.progress=false", "loss.chunk_size=16", f"output_dir={tmp_path / 's'}"])
    result = distill.train(cfg)
    assert (result.output_dir / "model.safetensors").is_file() and result.steps == 2
