"""Blender-version differences (4.5 / 5.0) and locating the core's files; imports nothing else of the add-on."""
