import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["fp32", "fp64"])
def dtype(request):
    return request.param


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest single-threaded (and the test machine's cores are shared); restores the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
