"""Camera-model tests run torch on one thread: the machine is shared, and oversubscribed
OpenMP threads slow small attention kernels down by orders of magnitude."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
