"""The scoring protocol's parsing against hand-made answers, and ServedTeacher's prefetch against a fake client."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from distill.remote.protocol import ProtocolError, RowScores, parse_response, parse_row, scoring_request
from distill.remote.source import ServedTeacher, data_log_prior
from distill.signals import SparseSignal, TailPriorSignal, scored_positions


def _entry(pairs):
    return {str(i): {"logprob": lp, "rank": r + 1, "decoded_token": f"t{i}"} for r, (i, lp) in enumerate(pairs)}


def test_request_shape_is_vllms():
    body = scoring_request("m", [[1, 2, 3], (4, 5)], 20)
    assert body == {"model": "m", "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 1, "temperature": 0.0,
                    "prompt_logprobs": 20}


def test_row_t_holds_the_distribution_of_token_t_plus_1():
    # vLLM adds the prompt's own token when it is outside the top-k: here id 9 at -5.0 with k = 2
    entries = [None, _entry([(7, -0.1), (8, -2.5), (9, -5.0)]), _entry([(3, -0.7), (4, -0.9)])]
    row = parse_row(entries, 3, 2, row=[1, 9, 4])
    assert row.ids.tolist() == [[7, 8], [3, 4], [-1, -1]]
    assert row.target_logprobs[:2].tolist() == pytest.approx([-5.0, -0.9])  # the row's own tokens 9 and 4
    assert row.logprobs[0].tolist() == pytest.approx([-0.1, -2.5]) and row.logprobs[2].tolist() == [-math.inf] * 2


def test_string_keys_are_mapped_and_failures_counted():
    entries = [None, {"hello": {"logprob": -0.2}, "???": {"logprob": -1.0}}]
    row = parse_row(entries, 2, 3, token_id=lambda s: 42 if s == "hello" else None)
    assert row.ids[0].tolist() == [42, -1, -1] and row.unmapped == 1


def test_choices_are_put_back_in_prompt_order():
    data = {"choices": [{"index": 1, "prompt_logprobs": [None, _entry([(5, -0.1)])]},
                        {"index": 0, "prompt_logprobs": [None, _entry([(6, -0.2)]), _entry([(2, -0.3)])]}]}
    a, b = parse_response(data, [[9, 6, 2], [9, 5]], 1)
    assert a.ids[:2, 0].tolist() == [6, 2] and b.ids[0, 0] == 5


@pytest.mark.parametrize("data,lengths", [
    ({"choices": []}, [2]),
    ({"choices": [{"index": 0}]}, [2]),
    ({"choices": [{"index": 0, "prompt_logprobs": [None]}]}, [2]),
    ({"choices": [{"index": 0, "prompt_logprobs": [None, {"1": {"logprob": "x"}}]}]}, [2]),
])
def test_malformed_answers_are_protocol_errors(data, lengths):
    with pytest.raises(ProtocolError):
        parse_response(data, [[1] * n for n in lengths], 2)


class FakeClient:
    """Scores a row deterministically from its ids; records the order of requests."""

    top_k = 2

    def __init__(self):
        self.requests: list[list[tuple[int, ...]]] = []
        self.lock = threading.Lock()

    def score(self, rows):
        with self.lock:
            self.requests.append([tuple(r) for r in rows])
        out = []
        for r in rows:
            n = len(r)
            ids = torch.tensor([[(x + 1) % 50, (x + 2) % 50] for x in r], dtype=torch.long)
            lps = torch.tensor([[-0.5, -1.5]] * n)
            ids[-1], lps[-1] = -1, -math.inf
            out.append(RowScores(ids, lps))
        return out

    def close(self):
        pass


def _batch(rows):
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    att = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, : len(r)], att[b, : len(r)] = torch.tensor(r), 1
        mask[b, : len(r) - 1] = True
    return {"input_ids": ids, "attention_mask": att, "loss_mask": mask}


def test_prefetched_signal_equals_the_direct_one_and_runs_ahead():
    micro = [[(1, 2, 3, 4), (5, 6, 7)], [(8, 9, 10, 11), (12, 13)], [(14, 15, 16, 17), (18, 19, 20)]]
    client = FakeClient()
    src = ServedTeacher(client, schedule=iter(micro), prefetch=2).start()
    assert len(src.pending) == 2  # two micro-batches in flight before the first is asked for
    for rows in micro:
        batch = _batch(rows)
        pos = scored_positions(batch)
        sig = src.signal(batch, pos)
        assert isinstance(sig, SparseSignal)
        flat = batch["input_ids"].reshape(-1).index_select(0, pos)
        assert sig.ids[:, 0].tolist() == [(x + 1) % 50 for x in flat.tolist()]
    assert [r for req in client.requests for r in req] == [r for m in micro for r in m]  # each row asked once


def test_unforeseen_batches_are_scored_when_asked_and_cached():
    client = FakeClient()
    src = ServedTeacher(client, schedule=iter([[(1, 2, 3)]]), prefetch=1).start()
    held = _batch([(30, 31, 32)])
    src.signal(held, scored_positions(held))
    src.signal(held, scored_positions(held))  # the second evaluation is served from the cache
    assert client.requests.count([(30, 31, 32)]) == 1
    assert len(src.pending) == 1  # the foreseen micro-batch is still waiting for its turn


def test_the_rows_of_a_foreseen_micro_batch_routed_here_keep_the_prefetch_going():
    """A member of several teachers is asked only for the rows routed to it: that counts as the foreseen
    micro-batch, so the next one is put in flight and nothing is asked twice."""
    micro = [[(1, 2, 3, 4), (5, 6, 7)], [(8, 9, 10, 11), (12, 13)], [(14, 15, 16, 17), (18, 19, 20)]]
    client = FakeClient()
    src = ServedTeacher(client, schedule=iter(micro), prefetch=1).start()
    for rows in micro:
        assert len(src.pending) == 1
        mine = _batch(rows[1:])
        src.signal(mine, scored_positions(mine))
    assert len(src.pending) == 0 and src.schedule is None  # every micro-batch was foreseen and used
    assert [r for req in client.requests for r in req] == [r for m in micro for r in m]


def test_data_prior_gives_a_tail_prior_signal():
    corpus = type("C", (), {"train": [{"input_ids": torch.tensor([1, 2, 2, 3]),
                                       "loss_mask": torch.tensor([True, True, True, False])}]})()
    prior = data_log_prior(corpus, 5)
    assert prior.exp().sum().item() == pytest.approx(1.0)
    assert prior[2] > prior[3] > prior[0]  # counted targets: 2 twice, 3 once; 0 only smoothed
    src = ServedTeacher(FakeClient(), log_prior=prior)
    batch = _batch([(1, 2, 3)])
    assert isinstance(src.signal(batch, scored_positions(batch)), TailPriorSignal)
