"""Rollout planning: every frame generated exactly once, given frames are whole latent groups of earlier chunks."""

from __future__ import annotations

import pytest

from genesis_drive.errors import ConfigError, DataError
from genesis_drive.generate.rollout import Chunk, plan_rollout


def test_single_chunk():
    assert plan_rollout(9, 9) == [Chunk(0, 9, 0, 0)]
    assert plan_rollout(9, 9, first_given=1) == [Chunk(0, 9, 1, 1)]


def test_known_plan():
    # 20 frames, 9-frame chunks, 1 latent (= 1 frame) carried over; last chunk shifted back to end at 19
    assert plan_rollout(20, 9) == [Chunk(0, 9, 0, 0), Chunk(8, 9, 1, 1), Chunk(11, 9, 5, 6)]


@pytest.mark.parametrize("n,t,m,g", [(96, 9, 1, 0), (96, 17, 2, 1), (50, 13, 2, 5), (17, 17, 3, 0), (30, 5, 1, 1)])
def test_every_frame_once_and_given_is_generated(n, t, m, g):
    chunks = plan_rollout(n, t, m, g)
    owner = {}
    for i, c in enumerate(chunks):
        assert c.num_frames == t and c.start + t <= n
        assert (c.given_frames - 1) % 4 == 0 if c.given_frames else i == 0
        assert c.given_frames <= c.keep_from
        for f in range(c.start, c.start + c.given_frames):  # given frames come from earlier chunks (or the data, chunk 0)
            assert i == 0 or f in owner
        for f in range(c.start + c.keep_from, c.start + t):
            assert f not in owner
            owner[f] = i
    assert sorted(owner) == list(range(g, n))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="4k\\+1"):
        plan_rollout(20, 8)
    with pytest.raises(ConfigError, match="overlap_latents"):
        plan_rollout(20, 9, overlap_latents=3)
    with pytest.raises(DataError, match="fewer than one"):
        plan_rollout(5, 9)
