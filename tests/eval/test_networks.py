"""FID Inception-v3 and FVD I3D: architecture (names, shapes, counts), weight files, determinism, errors."""

import pytest
import torch
from safetensors.torch import save_file

from genesis_drive.eval.i3d import I3D_WEIGHTS, InceptionI3D, Unit3D, _same_pad
from genesis_drive.eval.inception import (
    INCEPTION_FID_WEIGHTS,
    FIDInceptionV3,
    InceptionE,
    _avg3,
)
from genesis_drive.eval.weights import WeightsError, load_into, resolve_weights


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    path = tmp_path_factory.mktemp("w") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    net = InceptionI3D().eval()
    path = tmp_path_factory.mktemp("w") / "random_i3d.pt"
    torch.save(net.state_dict(), path)
    return net, path


def test_inception_matches_torchvision_layout():
    net = FIDInceptionV3()
    sd = net.state_dict()
    # torchvision Inception-v3 without aux head has 23,834,568 parameters at 1000 classes; the FID
    # graph has 1008 classes: + 8 * 2048 + 8
    assert sum(p.numel() for p in net.parameters()) == 23_834_568 + 8 * 2048 + 8
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("AuxLogits") for k in sd)


def test_fid_quirks_pooling():
    # TF average pools ignore padding: a constant map stays constant up to the border
    x = torch.full((1, 2, 5, 5), 3.0)
    assert torch.equal(_avg3(x), x)
    # the last E block pools its pool branch with max, the first with average: different outputs
    torch.manual_seed(1)
    a, b = InceptionE(8, max_pool_branch=True).eval(), InceptionE(8, max_pool_branch=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.shape == (1, 2048, 6, 6)
    assert torch.equal(ya[:, :-192], yb[:, :-192]) and not torch.allclose(ya[:, -192:], yb[:, -192:])


def test_inception_file_round_trip_and_determinism(inception_file):
    net, path = inception_file
    fresh = FIDInceptionV3().eval()
    digest = load_into(fresh, path, INCEPTION_FID_WEIGHTS)
    assert len(digest) == 64
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        a, b = net(x), fresh(x)
        logits = fresh.logits(x[:1, :, :96, :96])
    assert a.shape == (2, 2048) and logits.shape == (1, 1008)
    assert torch.equal(a, b)  # same weights from the file, same features, bit for bit
    assert torch.isfinite(a).all() and a.std() > 0
    # random-init activations are tiny (~1e-7); compare relative to their scale
    assert (a[0] - a[1]).abs().max() > 1e-2 * a.abs().max()


def test_safetensors_weights_and_missing_bn_counters(inception_file, tmp_path):
    net, _ = inception_file
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    fresh = FIDInceptionV3().eval()
    load_into(fresh, path, INCEPTION_FID_WEIGHTS)
    x = torch.rand(1, 3, 80, 80) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), fresh(x))


def test_mismatched_state_dict_names_the_expected_file(inception_file, tmp_path):
    net, _ = inception_file
    sd = net.state_dict()
    sd["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head, not the FID graph
    del sd["Mixed_7c.branch_pool.conv.weight"]
    sd["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    path = tmp_path / "wrong.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as e:
        load_into(FIDInceptionV3(), path, INCEPTION_FID_WEIGHTS)
    msg = str(e.value)
    assert "1 missing keys" in msg and "1 unexpected keys" in msg and "fc.weight: file (1000, 2048), model (1008, 2048)" in msg
    assert "pt_inception-2015-12-05-6726825d.pth" in msg
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"no pickle")
    with pytest.raises(WeightsError, match="not a readable weight file"):
        load_into(FIDInceptionV3(), garbage, INCEPTION_FID_WEIGHTS)


def test_missing_weight_file_says_how_to_get_it(tmp_path):
    with pytest.raises(WeightsError) as e:
        resolve_weights(INCEPTION_FID_WEIGHTS, None, tmp_path)
    assert str(tmp_path / "pt_inception-2015-12-05-6726825d.pth") in str(e.value)
    assert "github.com/mseitzer/pytorch-fid/releases" in str(e.value)
    with pytest.raises(WeightsError, match="i3d_pretrained_400.pt"):
        resolve_weights(I3D_WEIGHTS, tmp_path / "nope.pt", None)


def test_same_padding_matches_tf():
    # TF SAME: output = ceil(in / stride); padding total = max(k - s, 0) or max(k - in % s, 0)
    assert _same_pad(224, 7, 2) == (2, 3)
    assert _same_pad(5, 3, 1) == (1, 1)
    assert _same_pad(7, 2, 2) == (0, 1)
    unit = Unit3D(3, 4, (7, 7, 7), (2, 2, 2))
    assert unit(torch.randn(1, 3, 9, 10, 11)).shape == (1, 4, 5, 5, 6)


def test_i3d_layout_names():
    sd = InceptionI3D().state_dict()
    expected = {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_1a_7x7.bn.running_mean": (64,),
        "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
        "Mixed_4f.b0.conv3d.weight": (256, 528, 1, 1, 1),
        "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("logits.bn") for k in sd)


def test_i3d_file_round_trip_dims_and_determinism(i3d_file, tmp_path):
    net, path = i3d_file
    fresh = InceptionI3D().eval()
    load_into(fresh, path, I3D_WEIGHTS)
    pool = InceptionI3D(features="pool").eval()
    load_into(pool, path, I3D_WEIGHTS)
    x = torch.rand(2, 3, 8, 64, 64) * 2 - 1
    with torch.no_grad():
        a, b, c = net(x), fresh(x), pool(x)
    assert a.shape == (2, 400) and c.shape == (2, 1024)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    # logits are the 1x1x1 conv of the pooled features (linear, so means commute)
    w, bias = fresh.logits.conv3d.weight.flatten(1), fresh.logits.conv3d.bias
    torch.testing.assert_close(c @ w.T + bias, a, rtol=1e-4, atol=1e-4)
    sd = net.state_dict()
    sd.pop("logits.conv3d.bias")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="missing keys.*logits.conv3d.bias"):
        load_into(InceptionI3D(), tmp_path / "bad.pt", I3D_WEIGHTS)


def test_i3d_canonical_input_pools_to_one_position():
    # shape inference on the meta device (no compute): 16 frames at 224 end in a 2x7x7 map that
    # the (2, 7, 7) average pool covers exactly, as in the original network
    net = InceptionI3D().to("meta")
    x = torch.empty(1, 3, 16, 224, 224, device="meta")
    trunk = x
    for layer in net._trunk:
        trunk = layer(trunk)
    assert trunk.shape == (1, 1024, 2, 7, 7)
    assert net.pooled(x).shape == (1, 1024, 1, 1, 1)
    assert net(x).shape == (1, 400)
