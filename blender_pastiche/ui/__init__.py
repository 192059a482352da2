"""The Pastiche sidebar panels, the worker status box and the live preview."""
