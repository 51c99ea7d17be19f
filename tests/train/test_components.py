"""EMA arithmetic, the LR schedule and the step sampler: analytic answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.train.config import TrainConfig, lr_at
from genesis_drive.train.ema import EMA
from genesis_drive.train.sampling import StepBatchSampler


def test_ema_follows_closed_form_towards_a_constant_target():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(-2.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.bias.fill_(0.0)
    for _ in range(5):
        ema.update(model)
    # e_k = p + (e_0 - p) * d**k
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 3), 3.0 + (1.0 - 3.0) * 0.9**5))
    assert torch.allclose(ema.shadow["bias"], torch.full((2,), 0.0 + (-2.0 - 0.0) * 0.9**5))


def test_ema_one_step_is_a_weighted_mean_and_skips_frozen_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    ema = EMA(model, decay=0.75)
    assert set(ema.shadow) == {"1.weight", "1.bias"}
    before = ema.shadow["1.weight"].clone()
    with torch.no_grad():
        model[1].weight.add_(4.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["1.weight"], 0.75 * before + 0.25 * (before + 4.0))


def test_ema_swap_uses_averages_then_restores_live_weights():
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    live = model.weight.detach().clone()
    ema.update(model)
    with ema.swapped_into(model):
        assert torch.allclose(model.weight, ema.shadow["weight"])
        assert not torch.allclose(model.weight, live)
    assert torch.equal(model.weight, live)


def test_ema_state_round_trip_and_shape_check():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    ea, eb = EMA(a, 0.99), EMA(b, 0.99)
    eb.load_state_dict(ea.state_dict())
    assert all(torch.equal(ea.shadow[k], eb.shadow[k]) for k in ea.shadow)
    with pytest.raises(DataError, match="shape"):
        EMA(nn.Linear(4, 2), 0.99).load_state_dict(ea.state_dict())


def test_lr_warmup_then_cosine_and_linear_decay():
    cfg = TrainConfig(steps=110, lr=1.0, min_lr=0.1, warmup_steps=10, schedule="cosine")
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 4) == pytest.approx(0.5)
    assert lr_at(cfg, 10) == pytest.approx(1.0)
    assert lr_at(cfg, 60) == pytest.approx(0.55)  # half way: (lr + min_lr) / 2
    assert lr_at(cfg, 110) == pytest.approx(0.1)
    lin = TrainConfig(steps=110, lr=1.0, min_lr=0.0, warmup_steps=10, schedule="linear")
    assert lr_at(lin, 35) == pytest.approx(0.75)
    const = TrainConfig(steps=100, lr=0.3, warmup_steps=0, schedule="constant")
    assert {lr_at(const, s) for s in (0, 50, 99)} == {0.3}
    assert math.isclose(lr_at(cfg, 85), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.75)))


def test_train_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="train.ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="train.steps"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="not divisible"):
        TrainConfig(batch_size=6, grad_accum=4).micro_batch(world_size=1)
    assert TrainConfig(batch_size=16, grad_accum=2).micro_batch(world_size=4) == 2


def _take(sampler: StepBatchSampler, n: int) -> list[list[int]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("world,accum", [(2, 1), (2, 2), (4, 1), (1, 4)])
def test_sampler_shards_union_to_the_single_process_batch(world, accum):
    n, gb, steps = 23, 8, 7
    single = _take(StepBatchSampler(n, global_batch=gb, grad_accum=1, world_size=1, rank=0, seed=3), steps)
    per_rank = [
        _take(StepBatchSampler(n, global_batch=gb, grad_accum=accum, world_size=world, rank=r, seed=3), steps * accum)
        for r in range(world)
    ]
    for s in range(steps):
        union = [i for r in range(world) for m in range(accum) for i in per_rank[r][s * accum + m]]
        assert sorted(union) == sorted(single[s])
        assert len(set(union)) == gb


def test_sampler_epochs_are_permutations_and_resume_is_exact():
    n, gb = 12, 4
    s = StepBatchSampler(n, global_batch=gb, grad_accum=1, world_size=1, rank=0, seed=0)
    batches = _take(s, 9)
    for e in range(3):  # every epoch visits each sample once
        assert sorted(i for b in batches[3 * e : 3 * e + 3] for i in b) == list(range(n))
    assert batches[0:3] != batches[3:6]  # reshuffled per epoch
    resumed = _take(StepBatchSampler(n, global_batch=gb, grad_accum=1, world_size=1, rank=0, seed=0, start_step=4), 5)
    assert resumed == batches[4:9]
    other_seed = _take(StepBatchSampler(n, global_batch=gb, grad_accum=1, world_size=1, rank=0, seed=1), 3)
    assert other_seed != batches[:3]


def test_sampler_needs_one_full_batch():
    with pytest.raises(DataError, match="fewer than one global batch"):
        StepBatchSampler(3, global_batch=4, grad_accum=1, world_size=1, rank=0, seed=0)
