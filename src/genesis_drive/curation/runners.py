"""Executors that run :class:`~.worker.ClipWorker` over shards of planned clips.

Both call ``on_part(part_index, rows)`` in the driver process as shards finish (in any order), so
the driver alone writes files:

* :func:`run_local`: worker processes of this machine (``fork`` where available), fed through
  queues; each builds one ClipWorker and exits when the driver goes away.
* :func:`run_ray`: Ray Data, one actor per worker (``ActorPoolStrategy``) on a local Ray instance
  or the cluster at ``address``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import traceback
from collections.abc import Callable

from ..errors import GenesisError
from .worker import ClipWorker, CurationConfig, PlannedClip

__all__ = ["Part", "run_inline", "run_local", "run_ray"]

Part = tuple[int, list[PlannedClip]]
OnPart = Callable[[int, list[dict]], None]


def run_inline(root: str, cfg: CurationConfig, parts: list[Part], on_part: OnPart) -> None:
    """Process every part in this process (one worker, no subprocess)."""
    worker = ClipWorker(root, cfg)
    for i, plan in parts:
        on_part(i, worker.process(plan))


def _local_worker_main(root: str, cfg: CurationConfig, tasks: mp.Queue, results: mp.Queue, parent: int) -> None:
    """Worker process: build a ClipWorker, process parts until a None arrives or the driver dies."""
    try:
        worker = ClipWorker(root, cfg)
    except BaseException as e:  # reported to the driver, which raises it
        results.put(("fatal", e if isinstance(e, GenesisError) else RuntimeError(traceback.format_exc())))
        return
    while True:
        try:
            item = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the driver was killed: stop instead of lingering
                return
            continue
        if item is None:
            return
        i, plan = item
        try:
            results.put(("part", i, worker.process(plan)))
        except BaseException:
            results.put(("fatal", RuntimeError(traceback.format_exc())))
            return


def run_local(root: str, cfg: CurationConfig, parts: list[Part], on_part: OnPart, workers: int) -> None:
    """Process parts on ``workers`` local processes (inline when ``workers <= 1``)."""
    if workers <= 1 or len(parts) <= 1:
        run_inline(root, cfg, parts, on_part)
        return
    # fork (as torch's DataLoader does on Linux) starts workers without re-importing the heavy
    # stack; spawn where fork does not exist
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    n = min(workers, len(parts))
    for part in parts:
        tasks.put(part)
    for _ in range(n):
        tasks.put(None)
    procs = [ctx.Process(target=_local_worker_main, args=(root, cfg, tasks, results, os.getpid()), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        left = len(parts)
        while left:
            try:
                msg = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or all(p.exitcode is not None for p in procs):
                    codes = [p.exitcode for p in procs]
                    raise GenesisError(f"curation worker processes stopped before finishing (exit codes {codes}); rerun to resume")
                continue
            if msg[0] == "fatal":
                raise msg[1]
            _, i, rows = msg
            on_part(i, rows)
            left -= 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)


class _RayWorker:
    """Ray Data callable class: one ClipWorker per actor; a row in = one part, a row out = its rows."""

    def __init__(self, root: str, cfg: CurationConfig):
        self.worker = ClipWorker(root, cfg)

    def __call__(self, item: dict) -> dict:
        plan = [PlannedClip.from_dict(d) for d in json.loads(item["plan"])]
        return {"part": item["part"], "rows": json.dumps(self.worker.process(plan))}


def run_ray(root: str, cfg: CurationConfig, parts: list[Part], on_part: OnPart, workers: int, address: str | None = None) -> None:
    """Process parts with Ray Data on ``workers`` actors (1 CPU each).

    Connects to ``address`` when given (an existing cluster; the dataset root must be readable at
    the same path on every node), else starts a local Ray with ``workers`` CPUs. A Ray instance
    this function started is shut down at the end.
    """
    import ray
    import ray.data

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        if not parts:
            return
        items = [{"part": i, "plan": json.dumps([p.to_dict() for p in plan])} for i, plan in parts]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map(
            _RayWorker,
            fn_constructor_kwargs={"root": root, "cfg": cfg},
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(items)))),
            num_cpus=1,
        )
        for row in ds.iter_rows():
            on_part(int(row["part"]), json.loads(row["rows"]))
    finally:
        if started:
            ray.shutdown()
