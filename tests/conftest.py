import os

import pytest
import torch


@pytest.fixture(scope="session")
def test_device() -> str:
    """The torch device under test: POSEKIT_TEST_DEVICE (default cpu); cuda is skipped where absent.
    Session-wide, so module-scoped engine fixtures can take it too."""
    name = os.environ.get("POSEKIT_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("POSEKIT_TEST_DEVICE asks for cuda but none is available")
    return name


@pytest.fixture
def device(test_device) -> str:
    """:func:`test_device` for function-scoped tests."""
    return test_device


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's counts (tests/fuzzing.py), when fuzz tests ran."""
    import sys

    fuzzing = sys.modules.get("fuzzing")
    lines = fuzzing.summary_lines() if fuzzing is not None else []
    if lines:
        terminalreporter.section("fuzz probes and outcomes")
        for line in lines:
            terminalreporter.write_line(line)
