"""The built-in model's warm-up packs several (prompt, response) pairs into each row: every pair
is placed once, no row overflows, and the loss and gradients are those of one padded row per pair."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brorl.train.tiny import pack_rows


@given(st.lists(st.integers(1, 40), min_size=1, max_size=80), st.integers(1, 3))
@settings(max_examples=300, deadline=None)
def test_every_sequence_is_packed_once_and_no_row_overflows(lengths, times):
    capacity = times * max(lengths)
    rows = pack_rows(lengths, capacity)
    placed = sorted(i for row in rows for i in row)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= capacity for row in rows)
    # first fit never leaves two rows that would fit together in one
    loads = sorted(sum(lengths[i] for i in row) for row in rows)
    assert len(loads) < 2 or loads[0] + loads[1] > capacity


def test_packed_batch_gives_the_padded_batch_loss_and_gradients(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    from brorl.train.tiny import build_tiny_model, packed_batch

    path = build_tiny_model(tmp_path / "m", seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.train()
    g = torch.Generator().manual_seed(1)
    pairs = []
    for _ in range(40):
        p = torch.randint(5, 300, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist()
        r = torch.randint(5, 300, (int(torch.randint(1, 20, (1,), generator=g)),), generator=g).tolist()
        pairs.append((p, r))
    pad = 0
    width = max(len(p) + len(r) for p, r in pairs)
    ids = torch.full((len(pairs), width), pad)
    labels = torch.full((len(pairs), width), -100)
    att = torch.zeros((len(pairs), width), dtype=torch.long)
    for b, (p, r) in enumerate(pairs):
        n = len(p) + len(r)
        ids[b, :n] = torch.tensor(p + r)
        att[b, :n] = 1
        labels[b, len(p):n] = torch.tensor(r)

    def loss_and_grads(**batch):
        model.zero_grad()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    want, want_g = loss_and_grads(input_ids=ids, attention_mask=att, labels=labels)
    pids, plabels, ppos = packed_batch(pairs, pad)
    assert pids.shape[0] < len(pairs)  # really packed
    assert int((plabels != -100).sum()) == int((labels != -100).sum())
    got, got_g = loss_and_grads(input_ids=pids, position_ids=ppos, labels=plabels)
    assert got == pytest.approx(want, abs=1e-5)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # without the position ids the pairs of a row would attend to each other: a different loss
    wrong, _ = loss_and_grads(input_ids=pids, labels=plabels)
    assert abs(wrong - want) > 1e-4
