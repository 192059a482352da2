"""Worker paths (the torch installer's torch_site) and the preferences' worker
configuration, with real bpy (the preferences need Blender)."""

from __future__ import annotations

import os
import sys

import pytest

from blender_pastiche.worker import client as worker_client
from blender_pastiche.worker.client import WorkerClient, WorkerConfig, WorkerError

pytestmark = pytest.mark.blender


def test_installed_torch_paths_only_for_blenders_own_python(tmp_path, tiny_model):
    """Worker paths (the torch installer's torch_site) hold packages built for
    Blender's Python version: only a worker on Blender's own Python gets them."""
    from blender_pastiche.worker import config as worker_config

    site = tmp_path / "torch_site"
    site.mkdir()
    (site / "torch.py").write_text("raise ImportError(\"No module named 'torch'\", name='torch')\n")
    worker_client.add_worker_path(site)
    try:
        own = worker_client.worker_env(WorkerConfig())
        assert own["PYTHONPATH"].split(os.pathsep)[0] == str(site)
        chosen = worker_client.worker_env(WorkerConfig(python=sys.executable, extra_paths=("/extra",)))
        assert str(site) not in chosen.get("PYTHONPATH", "").split(os.pathsep)
        assert chosen["PYTHONPATH"].split(os.pathsep)[0] == "/extra"
        # Empty Worker Python in the preferences means Blender's own.
        assert worker_config.from_preferences().runs_own_python()
        # Real workers: Blender's own Python picks up the (broken) torch there, a chosen one does not.
        for config, works in ((WorkerConfig(), False), (WorkerConfig(python=sys.executable), True)):
            client = WorkerClient(lambda config=config: config)
            try:
                if works:
                    assert client.call("ping", timeout=120)["pong"] is True
                else:
                    with pytest.raises(WorkerError) as err:
                        client.call("ping", timeout=120)
                    assert err.value.kind == "MissingDependency"
                    assert "Install PyTorch in the add-on preferences" in err.value.message
            finally:
                client.shutdown()
    finally:
        worker_client.remove_worker_path(site)
