"""FrechetDistance metric: accumulation, fixed references, pluggable extractors, state reduction, bootstrap."""

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from genesis_drive.eval.fd_metric import FrechetDistance
from genesis_drive.eval.frechet import GaussianStats, frechet_distance

from .dist_worker import fd_and_chamfer_worker


def feats(n, d=5, seed=0, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_batched_accumulation_equals_direct_formula():
    gen, ref = feats(60, seed=0), feats(50, seed=1, shift=0.7)
    m = FrechetDistance(num_features=5)
    for chunk in gen.split(7):
        m.update(chunk)
    for chunk in ref.split(11):
        m.update(chunk, real=True)
    expected = frechet_distance(GaussianStats.from_features(gen), GaussianStats.from_features(ref))
    assert float(m.compute()) == pytest.approx(expected, rel=1e-10)
    assert int(m.gen_count) == 60 and int(m.ref_count) == 50


def test_fixed_reference_and_sqrtm_method_agree():
    gen, ref = feats(40, seed=2), feats(40, seed=3, shift=1.0)
    a = FrechetDistance(num_features=5)
    a.set_reference(GaussianStats.from_features(ref))
    a.update(gen)
    b = FrechetDistance(num_features=5, method="sqrtm")
    b.update(gen)
    b.update(ref, real=True)
    assert float(a.compute()) == pytest.approx(float(b.compute()), rel=1e-8)
    assert float(a.compute()) > 4.0  # mean shift of 1.0 in 5 dims contributes ~5
    with pytest.raises(ValueError, match="d=3"):
        a.set_reference(GaussianStats.from_features(feats(10, d=3)))


def test_pluggable_extractor_under_its_own_name():
    class Tiny(nn.Module):
        num_features = 3

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(12, 3)

        def forward(self, x):
            return self.lin(x.flatten(1).float())

    torch.manual_seed(0)
    net = Tiny()
    m = FrechetDistance(net, name="FD_synth")
    x, y = torch.rand(20, 3, 2, 2), torch.rand(20, 3, 2, 2) + 0.5
    m.update(x)
    m.update(y, real=True)
    with torch.no_grad():
        expected = frechet_distance(GaussianStats.from_features(net(x)), GaussianStats.from_features(net(y)))
    assert m.name == "FD_synth" and m.num_features == 3
    assert float(m.compute()) == pytest.approx(expected, rel=1e-6)
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match=r"\(b, 4\)"):
        FrechetDistance(net, num_features=4).update(x)


def test_merged_states_equal_single_process():
    gen, ref = feats(30, seed=4), feats(30, seed=5, shift=0.3)
    whole = FrechetDistance(num_features=5)
    whole.update(gen)
    whole.update(ref, real=True)
    a, b = FrechetDistance(num_features=5), FrechetDistance(num_features=5)
    a.update(gen[:13]), a.update(ref[:20], real=True)
    b.update(gen[13:]), b.update(ref[20:], real=True)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(float(whole.compute()), rel=1e-10)
    # the bootstrap draws by position; merge_state puts the incoming samples first
    same_order = FrechetDistance(num_features=5)
    same_order.update(gen[13:]), same_order.update(gen[:13]), same_order.update(ref, real=True)
    ca, cw = a.bootstrap(num_resamples=30, seed=1), same_order.bootstrap(num_resamples=30, seed=1)
    assert (ca.value, ca.low, ca.high) == pytest.approx((cw.value, cw.low, cw.high), rel=1e-9)


def test_two_process_gloo_sync_equals_single_process(tmp_path):
    world = 2
    # fork: the children reuse the imported modules (spawn re-imports torch and scipy: ~10 s here)
    mp.start_processes(fd_and_chamfer_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True, start_method="fork")
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    # the same computation in one process over the whole data
    gen, ref = feats(40, seed=0), feats(30, seed=1) + 0.5
    m = FrechetDistance(num_features=5)
    m.update(gen)
    m.update(ref, real=True)
    r0, r1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    np.testing.assert_allclose(r0, r1)  # every rank reports the global value
    assert r0[0] == pytest.approx(float(m.compute()), rel=1e-10)
    assert r0[3:] == pytest.approx([4.0, 16.0, 36.0])


def test_bootstrap_value_interval_and_groups():
    gen, ref = feats(80, seed=6), feats(200, seed=7, shift=0.4)
    m = FrechetDistance(num_features=5)
    m.set_reference(GaussianStats.from_features(ref))
    groups = torch.arange(80) // 4  # clips of 4 frames
    for i in range(0, 80, 8):
        m.update(gen[i : i + 8], groups=groups[i : i + 8])
    ci = m.bootstrap(num_resamples=200, seed=0)
    assert ci.value == pytest.approx(float(m.compute()), rel=1e-12)
    assert ci.low < ci.value < ci.high
    assert ci == m.bootstrap(num_resamples=200, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        m.update(gen[:2], groups=torch.tensor([-1, 0]))


def test_too_few_samples_and_no_bootstrap_state():
    m = FrechetDistance(num_features=5, keep_features=False)
    m.update(feats(1))
    m.update(feats(5), real=True)
    with pytest.raises(ValueError, match="1 generated"):
        m.compute()
    with pytest.raises(ValueError, match="keep_features"):
        m.bootstrap()
    with pytest.raises(ValueError, match="num_features"):
        FrechetDistance()


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30)])
def test_bootstrap_draw_equals_refit_on_the_copied_draw(n, d):
    # both routes of a draw with repeats: weighted chunked sums (n >= d) and the (n, n) form (n < d)
    gen, ref = feats(n, d=d, seed=8).float(), GaussianStats.from_features(feats(3 * d, d=d, seed=9, shift=0.2))
    m = FrechetDistance(num_features=d)
    m.set_reference(ref)
    m.update(gen)
    idx = np.random.default_rng(0).integers(0, n, size=n)
    got = m._fd_from_draw(gen, idx, ref, [], chunk=7)
    expected = frechet_distance(GaussianStats.from_features(gen.double()[idx]), ref)
    # for n < d the (d, d) reference route sums sqrt(round-off) over the null space (~1e-8)
    assert got == pytest.approx(expected, rel=1e-7)
