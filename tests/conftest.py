"""Shared test settings."""
import pytest, torch

@pytest.fixture(autouse=True)
def _torch_threads(request):
    "Run each test with the intra-op thread count its module names in `THREADS` (none: as is); give the session its count back after."
    want, n = getattr(request.module, 'THREADS', None), torch.get_num_threads()
    if want: torch.set_num_threads(want)
    yield
    torch.set_num_threads(n)

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a heavy test (long runs, subprocesses, kill and resume); `pytest -m 'not slow'` is the quick loop")
