"""Blender images and render passes <-> numpy, EXR files, frame files on disk, model-file headers."""
