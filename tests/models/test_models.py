"""Model loading, student constructions and the tokenizer/vocabulary checks."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from distill.errors import DistillError
from distill.models.loading import check_compatible, load_model, resolve
from distill.models.students import fresh_llama, layer_subset, param_count


def test_default_student_is_about_11m_parameters(tokenizer):
    model = fresh_llama(tokenizer)
    assert 10e6 < param_count(model) < 13e6
    assert model.config.vocab_size == len(tokenizer)


def test_layer_subset_keeps_chosen_layers(tiny_teacher_dir):
    teacher = load_model(str(tiny_teacher_dir)).model
    student = layer_subset(teacher, every=2)
    assert student.config.num_hidden_layers == 2
    for new, old in zip(student.base_model.layers, [teacher.base_model.layers[i] for i in (0, 2)], strict=True):
        for (n1, p1), (n2, p2) in zip(new.named_parameters(), old.named_parameters(), strict=True):
            assert n1 == n2 and torch.equal(p1, p2)
    torch.testing.assert_close(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert student(ids).logits.shape == (1, 4, teacher.config.vocab_size)
    out = student.generate(ids, max_new_tokens=3, do_sample=False)  # KV cache indexing after re-numbering
    assert out.shape == (1, 7)
    with pytest.raises(DistillError, match="invalid"):
        layer_subset(teacher, layers=[0, 7])


def test_padded_embeddings_use_the_tokenizers_real_size(tokenizer, tiny_model_dir):
    student = load_model(str(tiny_model_dir)).model
    student.resize_token_embeddings(len(tokenizer) + 64)  # padded rows, same tokenizer
    assert check_compatible(tokenizer, tokenizer, student, student) == len(tokenizer)


def test_mismatched_tokenizers_are_refused_with_what_differs(tokenizer):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["to be or not to be that is the question"] * 10,
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "</s>"]))
    other = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")
    with pytest.raises(DistillError) as e:
        check_compatible(tokenizer, other)
    msg = str(e.value)
    assert "vocabulary sizes differ" in msg and str(len(tokenizer)) in msg and "cross_tokenizer" in msg


def test_same_size_but_different_special_tokens(tokenizer):
    import copy

    other = copy.deepcopy(tokenizer)
    other.eos_token = "<|im_start|>"
    with pytest.raises(DistillError, match="eos_token_id"):
        check_compatible(tokenizer, other)


def test_bad_model_specs(tmp_path):
    with pytest.raises(DistillError, match="not found"):
        resolve(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DistillError, match="config.json"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(DistillError, match="does not exist"):
        resolve("./no/such/dir")


def test_pickled_weights_are_refused(tmp_path, tiny_model_dir):
    import shutil

    d = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, d)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(DistillError, match="pickled"):
        load_model(str(d))


@pytest.mark.slow
def test_default_teacher_loads_from_cache_and_matches_gguf_metadata():
    lm = load_model("default")
    assert lm.info.kind == "gguf" and lm.info.gguf_metadata.get("general.license") == "apache-2.0"
    assert len(lm.tokenizer) == 49152
    ids = lm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    out = lm.model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in lm.tokenizer.decode(out[0, ids.shape[1]:])
