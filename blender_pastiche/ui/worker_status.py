"""The worker status box (state, device, progress, last error, restart button),
shown in the sidebar panel and in the add-on preferences."""

from __future__ import annotations

from typing import Any

from ..worker import client as worker_client


def draw_worker_status(layout: Any) -> None:
    """The worker's state (device, busy, last error) and a restart button."""
    st = worker_client.status()
    box = layout.box()
    row = box.row()
    icon = {"busy": "SORTTIME", "idle": "CHECKMARK", "starting": "TIME"}.get(st["state"], "PAUSE")
    text = f"Worker: {st['state']}"
    if st.get("device"):
        text += f" on {st['device']}"
    row.label(text=text, icon=icon)
    row.operator("pastiche.restart_worker", text="", icon="FILE_REFRESH")
    job = st.get("job")
    if job:
        box.label(text=f"{job['message']} ({job['fraction'] * 100:.0f}%)")
    if st.get("last_error"):
        for i, line in enumerate(str(st["last_error"]).splitlines()[:3]):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def draw_preferences_status(layout: Any, context: Any) -> None:
    """The status box in the add-on preferences (a preferences.DRAW_HOOKS entry)."""
    draw_worker_status(layout)
