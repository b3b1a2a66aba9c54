import os

import pytest
import torch


@pytest.fixture
def device() -> str:
    """The torch device under test: POSEKIT_TEST_DEVICE (default cpu); cuda is skipped where absent."""
    name = os.environ.get("POSEKIT_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("POSEKIT_TEST_DEVICE asks for cuda but none is available")
    return name
