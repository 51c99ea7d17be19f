"""Worker for the 2-process gloo test of the metrics' distributed reduction (spawned, CPU)."""

import numpy as np
import torch
import torch.distributed as dist


def fd_and_chamfer_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from genesis_drive.eval.chamfer_metric import ChamferMetric
    from genesis_drive.eval.fd_metric import FrechetDistance

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        feats = torch.randn(40, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        ref = torch.randn(30, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5
        m = FrechetDistance(num_features=5)
        m.update(feats[rank::world])  # each rank sees half of the generated set
        m.update(ref[rank::world], real=True)
        value = float(m.compute())
        ci = m.bootstrap(num_resamples=20, seed=3)
        c = ChamferMetric("vidar")
        gt = np.array([[10.0, 0.0, 0.0]])
        for offset in (2, 4, 6):
            if (offset // 2) % world == rank:  # every rank must hold at least one item (torchmetrics gathers lists)
                c.update(gt + [offset, 0, 0], gt, offset, f"s{offset}")
        ch = {k: float(v) for k, v in c.compute().items()}
        np.save(f"{out_dir}/rank{rank}.npy", np.array([value, ci.low, ci.high, ch["1s"], ch["2s"], ch["3s"]]))
    finally:
        dist.destroy_process_group()
