"""Keeping freed memory for reuse (inference/memory.py)."""

import sys

import numpy as np
import pytest

from pastiche_core.inference.memory import reuse_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_reuse_freed_memory_takes_effect_on_glibc_and_is_idempotent():
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True
    # Allocation still works normally afterwards.
    a = np.ones((2048, 2048), np.float32)
    del a
    assert np.zeros((1024, 1024), np.float32).sum() == 0
