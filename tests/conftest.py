"""Every test runs torch on one intra-op thread: the project's machines have 2 cores shared with
other work, oversubscribed OpenMP threads slow small kernels and batched linear algebra down by
orders of magnitude, and subprocess drivers run with OMP_NUM_THREADS=1 (the same arithmetic).
Session-scoped, so module- and session-scoped fixtures (a generated root compared byte for byte
with one a test makes) run on the same one thread as the tests: results differ in the last bits
between thread counts."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
