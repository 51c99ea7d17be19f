"""The order-signal benchmark's time-symmetric decision (benchmarks/bench_order_signal.py): a bias
of the order head that does not depend on the direction of time cancels, the signal that does adds
up, and the decisions for a clip and its reversal mirror each other."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_order_signal as bench  # noqa: E402


def test_symmetric_logits_cancel_a_direction_blind_bias():
    # two views; logits (in order, reversed, shuffled) for the clip as recorded and reversed.
    # Both readings lean to "reversed" by 3 (a bias); the true signal is 1 toward the right answer.
    bias = torch.tensor([0.0, 3.0, -5.0])
    signal = torch.tensor([1.0, -1.0, 0.0])
    recorded = bias + signal
    reversed_ = bias + signal[[1, 0, 2]]
    logits = torch.stack([recorded, reversed_])[None].repeat(2, 1, 1)  # v 2 k
    assert (logits.argmax(2) == 1).all()  # plain: every reading called reversed, half of them wrong
    sym = bench.symmetric_logits(logits)
    assert (sym.argmax(2) == torch.tensor([0, 1])).all()  # symmetric: both right
    # the bias on in order vs reversed cancels: the margin is twice the signal's (1 - (-1))
    assert torch.allclose(sym[:, 0, 0] - sym[:, 0, 1], torch.full((2,), 4.0))
    # a clip's and its reversal's symmetric logits are the same up to swapping the two answers
    assert torch.allclose(sym[:, 1], sym[:, 0][:, [1, 0, 2]])
    # the shuffled answer keeps both readings' evidence
    assert torch.allclose(sym[:, 0, 2], torch.full((2,), -10.0))
