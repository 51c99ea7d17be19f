"""Transformer building blocks: attention against a naive softmax, adaLN-zero identity at init,
RoPE rotation and relative-offset property, patchify round trip, embeddings."""

import math

import torch
from einops import rearrange

from genesis_drive.models.common import (
    Attention,
    FinalLayer,
    FourierEmbedder,
    PatchEmbed,
    TimestepEmbedder,
    TransformerBlock,
    apply_rope,
    fourier_features,
    grid_positions,
    patchify,
    rope_3d,
    timestep_embedding,
    unpatchify,
    zero_module,
)


def naive_attention(attn, x, context=None, keep=None):
    kv = x if context is None else context
    q = rearrange(attn.to_q(x), "b n (h d) -> b h n d", h=attn.heads)
    k = rearrange(attn.to_k(kv), "b m (h d) -> b h m d", h=attn.heads)
    v = rearrange(attn.to_v(kv), "b m (h d) -> b h m d", h=attn.heads)
    q, k = attn.norm_q(q), attn.norm_k(k)
    s = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
    if keep is not None:
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return attn.to_out(rearrange(o, "b h n d -> b n (h d)"))


def test_attention_matches_naive_softmax():
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    for qk_norm in (False, True):
        a = Attention(16, 4, qk_norm=qk_norm)
        torch.testing.assert_close(a(x), naive_attention(a, x), atol=1e-5, rtol=1e-5)
    c = Attention(16, 4, context_dim=12)
    keep = torch.tensor([[True] * 7, [True, True, False, False, True, False, False]])
    torch.testing.assert_close(c(x, ctx, key_padding_mask=keep), naive_attention(c, x, ctx, keep), atol=1e-5, rtol=1e-5)
    # padded keys do not matter at all
    ctx2 = ctx.clone()
    ctx2[1, 2:4] = 100.0
    torch.testing.assert_close(c(x, ctx, key_padding_mask=keep)[1], c(x, ctx2, key_padding_mask=keep)[1])
    # a sample without any real key gets a zero output, not NaN
    none = torch.tensor([[True] * 7, [False] * 7])
    out = c(x, ctx, key_padding_mask=none)
    assert torch.isfinite(out).all() and torch.equal(out[1], torch.zeros_like(out[1]))
    torch.testing.assert_close(out[0], c(x, ctx)[0])


def test_block_is_identity_at_init_and_learns():
    torch.manual_seed(0)
    blk = TransformerBlock(32, 4, 8, context_dim=12)
    x, c, ctx = torch.randn(2, 6, 32), torch.randn(2, 8), torch.randn(2, 3, 12)
    pos = grid_positions(1, 2, 3)
    assert torch.equal(blk(x, c, context=ctx, rope=rope_3d(pos, 8)), x)
    assert torch.equal(blk(x, torch.randn(2, 6, 8), context=ctx), x)  # per-token conditioning
    assert blk.grad_checkpointing is False
    # gradients reach the zero-initialised modulation; after a step the block is no longer identity
    opt = torch.optim.SGD(blk.parameters(), lr=0.1)
    loss = (blk(x, c, context=ctx) - 2 * x).pow(2).mean()
    loss.backward()
    opt.step()
    assert not torch.equal(blk(x, c, context=ctx), x)
    # gradient checkpointing gives the same values and gradients
    blk.zero_grad()
    ref = blk(x, c, context=ctx).sum()
    ref.backward()
    g_ref = blk.attn.to_q.weight.grad.clone()
    blk.zero_grad()
    blk.grad_checkpointing = True
    out = blk(x, c, context=ctx).sum()
    out.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(blk.attn.to_q.weight.grad, g_ref)


def test_final_layer_zero_at_init_and_zero_module():
    fl = FinalLayer(16, 8, 4, 2)
    assert torch.equal(fl(torch.randn(2, 5, 16), torch.randn(2, 8)), torch.zeros(2, 5, 16))
    lin = zero_module(torch.nn.Linear(3, 3))
    assert all((p == 0).all() for p in lin.parameters())


def test_rope_rotation_and_relative_offsets():
    torch.manual_seed(0)
    d = 16
    q, k = torch.randn(d), torch.randn(d)
    p = torch.tensor([[3.0, 5.0, 7.0]])
    cos, sin = rope_3d(p, d)
    rq = apply_rope(q[None], cos, sin)[0]
    torch.testing.assert_close(rq.norm(), q.norm())  # a rotation: norm preserved
    assert not torch.allclose(rq, q)
    torch.testing.assert_close(apply_rope(q[None], *rope_3d(torch.zeros(1, 3), d))[0], q)  # identity at 0

    def score(pq, pk):
        cq, sq = rope_3d(torch.tensor([pq]), d)
        ck, sk = rope_3d(torch.tensor([pk]), d)
        return float(apply_rope(q[None], cq, sq)[0] @ apply_rope(k[None], ck, sk)[0])

    base = score([1.0, 2.0, 3.0], [4.0, 0.0, 5.0])
    shifted = score([11.0, -3.0, 8.0], [14.0, -5.0, 10.0])  # same offset (3, -2, 2)
    assert abs(base - shifted) < 1e-4
    assert abs(base - score([1.0, 2.0, 3.0], [4.0, 0.0, 6.0])) > 1e-3  # another offset differs
    # each axis moves the score (all three axes are used)
    for axis in range(3):
        pk = [4.0, 0.0, 5.0]
        pk[axis] += 1
        assert abs(score([1.0, 2.0, 3.0], pk) - base) > 1e-4
    # attention with rope: shifting all positions together leaves the output unchanged
    a = Attention(32, 2)
    x = torch.randn(1, 6, 32)
    pos = grid_positions(2, 1, 3)
    out1 = a(x, rope=rope_3d(pos, 16))
    out2 = a(x, rope=rope_3d(pos + torch.tensor([5.0, 2.0, -4.0]), 16))
    torch.testing.assert_close(out1, out2, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out1, a(x), atol=1e-3)


def test_grid_positions_order():
    pos = grid_positions(2, 2, 3, t_offset=4)
    assert pos.shape == (12, 3)
    assert pos[0].tolist() == [4, 0, 0] and pos[1].tolist() == [4, 0, 1] and pos[3].tolist() == [4, 1, 0]
    assert pos[6].tolist() == [5, 0, 0]


def test_patchify_round_trip_and_embed_order():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 6, 8)
    tok = patchify(x, 2)
    assert tok.shape == (2, 4 * 3 * 4, 12)
    assert torch.equal(unpatchify(tok, (4, 3, 4), 2), x)
    # token 1 is the patch at (t=0, row 0, col 1): pixels [0:2, 2:4]
    torch.testing.assert_close(tok[0, 1].reshape(2, 2, 3).permute(2, 0, 1), x[0, :, 0, 0:2, 2:4])
    pe = PatchEmbed(3, 16, 2)
    emb, grid = pe(x)
    assert grid == (4, 3, 4) and emb.shape == (2, 48, 16)
    # the conv embed is a linear map of the same patch
    w = pe.proj.weight.reshape(16, 3, 2, 2).permute(0, 2, 3, 1).reshape(16, 12)
    torch.testing.assert_close(emb, tok @ w.T + pe.proj.bias, atol=1e-5, rtol=1e-5)


def test_embeddings():
    e = timestep_embedding(torch.tensor([0.0, 1.0]), 8)
    assert torch.equal(e[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    te = TimestepEmbedder(16)
    out = te(torch.tensor([0.1, 0.9]))
    assert out.shape == (2, 16) and not torch.allclose(out[0], out[1])
    assert te(torch.rand(2, 5)).shape == (2, 5, 16)
    f = fourier_features(torch.tensor([[0.25]]), 2, 1.0)
    torch.testing.assert_close(f, torch.tensor([[0.25, 1.0, 0.0, 0.0, -1.0]]), atol=1e-6, rtol=0)
    fe = FourierEmbedder(3, 24, num_freqs=4, max_wavelength=50.0)
    assert fe(torch.randn(2, 7, 3)).shape == (2, 7, 24)
