import numpy as np
import pytest
import torch

from genesis_drive.data.geometry import project_points
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.models.camera.rays import plucker_rays

from ...layout.scene import camera

W, H = 128, 72


def rig():
    ks, ms = zip(*(camera(c, W, H) for c in CAMERA_CHANNELS))
    return torch.tensor(np.stack(ks), dtype=torch.float32), torch.tensor(np.stack(ms), dtype=torch.float32)


def test_front_camera_centre_ray_is_analytic():
    k, m = rig()
    rays = plucker_rays(k, m, (W, H), (9, 15))  # odd grid: cell (4, 7) is the image centre = principal point
    assert rays.shape == (6, 9, 15, 6) and rays.dtype == torch.float32
    d, mom = rays[0, 4, 7, :3], rays[0, 4, 7, 3:]
    assert torch.allclose(d, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # straight ahead, ego +x
    # o = (1.70, 0, 1.51): o x (1, 0, 0) = (0, 1.51, 0)
    assert torch.allclose(mom, torch.tensor([0.0, 1.51, 0.0]), atol=1e-5)


def test_points_along_every_ray_project_to_their_cell_centre():
    k, m = rig()
    h, w = 9, 16
    rays = plucker_rays(k, m, (W, H), (h, w)).double().numpy()
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    centres = np.stack([(jj + 0.5) * W / w, (ii + 0.5) * H / h], axis=-1)
    for v in range(6):
        d, mom = rays[v, ..., :3], rays[v, ..., 3:]
        assert np.allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-6)
        o = m[v, :3, 3].double().numpy()
        for s in (2.0, 7.0):
            p = o + s * d  # ego points on the rays
            assert np.allclose(np.cross(p, d), mom, atol=1e-5)  # the moment does not depend on the point
            inv = np.linalg.inv(m[v].double().numpy())
            pc = p.reshape(-1, 3) @ inv[:3, :3].T + inv[:3, 3]
            uv, valid = project_points(pc, k[v].double().numpy())
            assert valid.all()
            assert np.allclose(uv.reshape(h, w, 2), centres, atol=1e-4)


def test_batch_axes_and_bad_shapes():
    k, m = rig()
    rays = plucker_rays(k[None].expand(2, -1, -1, -1), m[None].expand(2, -1, -1, -1), (W, H), (3, 4))
    assert rays.shape == (2, 6, 3, 4, 6) and torch.equal(rays[0], rays[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert plucker_rays(k, m, (W, H), (3, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="intrinsics"):
        plucker_rays(k[:3], m, (W, H), (3, 4))
