"""The add-on's own package name, in one place.

``blender_pastiche`` as a legacy add-on or on sys.path, ``bl_ext.<repo>.blender_pastiche``
as an extension. Blender keys the add-on's preferences and its extension folder by it.
"""

from __future__ import annotations

ADDON_PACKAGE = (__package__ or "blender_pastiche.support").rpartition(".")[0]
