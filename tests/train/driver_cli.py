"""Run ``genesis-drive train ...`` argument lists through ``train.cli.register`` (for subprocess tests).

Several runs can share one process (and one torchrun process group): separate their argument
lists with ``--then``; the process group is left only after the last one. With
``--dump-ranks``, each rank also writes its final weights to RUN_DIR/rank<R>.safetensors.
"""

from __future__ import annotations

import argparse
import sys

from safetensors.torch import save_file

from genesis_drive.errors import GenesisError
from genesis_drive.train import cli as train_cli
from genesis_drive.train import distributed, loop


def _dump_ranks() -> None:
    original = loop.train

    def train_and_dump(task, cfg, run_dir, **kw):
        result = original(task, cfg, run_dir, **kw)
        distributed.reshard(result.model)  # FSDP: gather whole tensors (a collective on every rank)
        state = {k: distributed.full_tensor(v.detach()).cpu().contiguous()
                 for k, v in result.model.state_dict().items()}
        save_file(state, f"{run_dir}/rank{kw['env'].rank}.safetensors")
        return result

    loop.train = train_and_dump


def main(argv: list[str]) -> int:
    if "--dump-ranks" in argv:
        argv = [a for a in argv if a != "--dump-ranks"]
        _dump_ranks()
    runs, current = [], []
    for a in argv:
        if a == "--then":
            runs.append(current)
            current = []
        else:
            current.append(a)
    runs.append(current)
    parser = argparse.ArgumentParser(prog="genesis-drive")
    train_cli.register(parser.add_subparsers(dest="command"))
    leave_group = distributed.shutdown_distributed
    distributed.shutdown_distributed = lambda synchronize=True: None  # keep the group for the next run
    code = 1
    try:
        for run_argv in runs:
            args = parser.parse_args(run_argv)
            code = 1  # until this run returns: a run that raises leaves without the barrier
            code = args.func(args)
            if code:
                return code
    except GenesisError as e:
        print(f"genesis-drive train: error: {e}", file=sys.stderr)
        return 1
    finally:
        leave_group(synchronize=code == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
