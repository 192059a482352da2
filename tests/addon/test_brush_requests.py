"""Brush Size and Detail through the add-on's worker client and a real worker."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from blender_pastiche.worker.client import WorkerClient, WorkerConfig, WorkerError


def test_brush_size_and_detail_reach_the_worker(tiny_model):
    from pastiche_core import Stylizer

    image = np.random.default_rng(4).random((40, 48, 4), dtype=np.float32)
    image[..., :3] *= image[..., 3:4]
    client = WorkerClient(lambda: WorkerConfig(python=sys.executable))
    try:
        kw = dict(colour_space="linear", premultiplied=True, brush_size=2.0, detail=0.5)
        out = client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", **kw)
        ref = Stylizer(tiny_model, device="cpu").stylize(image, {"a": 1.0}, **kw)
        np.testing.assert_allclose(out, ref, atol=1e-6)
        plain = client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu",
                               colour_space="linear", premultiplied=True)
        assert np.abs(out - plain).max() > 0.01
        with pytest.raises(WorkerError) as err:
            client.stylize(image, {"a": 1.0}, model=tiny_model, device="cpu", brush_size=3.0)
        assert err.value.kind == "BrushError"
        assert "minimum side of 16 pixels" in err.value.message and "2.5" in err.value.message
    finally:
        client.shutdown()
