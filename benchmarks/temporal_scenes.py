"""Render the temporal-coherence test animations with Blender (bpy 5.0).

    python benchmarks/temporal_scenes.py --out DIR [--size 96] [--frames 12] [--samples 48]

Three tiny animations, each a textured set (ground, back wall, a cube and a
sphere with procedural, surface-attached textures) so strokes have something
to stick to and geometry covers every pixel (the world background has no
motion vectors):
  camera_pan       the camera slides sideways: parallax and disocclusion
  rotating_object  the cube spins in place in front of a still camera
  moving_light     nothing moves but a point light circling the set
Each is rendered with Cycles (CPU, fixed seed) to single-layer EXR files of
the Image and Vector passes through a compositor File Output node, then
packed into DIR/<scene>.npz: ``rgb`` (T, H, W, 3, scene-linear), ``vector``
(T, H, W, 4, Blender's Vector pass), rows top-down as read from the EXR.
Needs bpy and OpenEXR; runs in its own process (the benchmark starts it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

SCENES = ("camera_pan", "rotating_object", "moving_light")
# Bump when the scenes change, so cached renders are not reused.
VERSION = 1


def _linear(fcurve_owner) -> None:
    """Constant speed: make every keyframe of the owner's action linear."""
    from bpy_extras import anim_utils

    ad = fcurve_owner.animation_data
    for fc in anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot).fcurves:
        for k in fc.keyframe_points:
            k.interpolation = "LINEAR"


def _material(name: str, kind: str, colours: tuple[tuple[float, float, float], tuple[float, float, float]],
              scale: float):
    """A Principled material coloured by a procedural texture in object space,
    so the pattern moves with the surface."""
    import bpy

    mat = bpy.data.materials.new(name)
    tree = mat.node_tree if mat.node_tree else None
    if tree is None:
        mat.use_nodes = True
        tree = mat.node_tree
    nodes, links = tree.nodes, tree.links
    bsdf = nodes.get("Principled BSDF")
    coords = nodes.new("ShaderNodeTexCoord")
    tex = nodes.new({"checker": "ShaderNodeTexChecker", "noise": "ShaderNodeTexNoise",
                     "voronoi": "ShaderNodeTexVoronoi", "wave": "ShaderNodeTexWave"}[kind])
    tex.inputs["Scale"].default_value = scale
    links.new(coords.outputs["Object"], tex.inputs["Vector"])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*colours[0], 1.0)
    ramp.color_ramp.elements[1].color = (*colours[1], 1.0)
    factor = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs["Distance"]
    links.new(factor, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.6
    return mat


def _add(obj_name: str, mesh_op, material, **kwargs):
    import bpy

    mesh_op(**kwargs)
    ob = bpy.context.active_object
    ob.name = obj_name
    ob.data.materials.append(material)
    return ob


def build_set(size: int, samples: int):
    """The shared set: returns (scene, camera object, cube, light object)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = samples
    sc.cycles.use_denoising = False
    sc.cycles.seed = 0
    sc.cycles.max_bounces = 2
    sc.render.resolution_x = sc.render.resolution_y = size
    sc.render.resolution_percentage = 100
    sc.render.use_motion_blur = False  # Cycles writes no Vector pass with motion blur on
    sc.render.film_transparent = False
    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.05, 0.06)
    sc.world = world

    ground = _material("ground", "checker", ((0.15, 0.12, 0.1), (0.7, 0.6, 0.45)), 3.0)
    wall = _material("wall", "noise", ((0.1, 0.25, 0.45), (0.8, 0.75, 0.6)), 4.0)
    cube_m = _material("cube", "voronoi", ((0.7, 0.15, 0.1), (0.95, 0.8, 0.2)), 3.0)
    ball_m = _material("ball", "wave", ((0.1, 0.45, 0.2), (0.85, 0.9, 0.8)), 2.0)
    _add("ground", bpy.ops.mesh.primitive_plane_add, ground, size=40.0, location=(0, 0, 0))
    _add("wall", bpy.ops.mesh.primitive_plane_add, wall, size=40.0, location=(0, 6, 10),
         rotation=(math.pi / 2, 0, 0))
    cube = _add("cube", bpy.ops.mesh.primitive_cube_add, cube_m, size=2.0, location=(-0.6, 0.5, 1.0))
    _add("ball", bpy.ops.mesh.primitive_uv_sphere_add, ball_m, radius=1.0, location=(1.9, -0.6, 1.0),
         segments=32, ring_count=16)

    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = 35.0
    cam = bpy.data.objects.new("camera", cam_data)
    sc.collection.objects.link(cam)
    cam.location = (0.0, -9.0, 3.2)
    cam.rotation_euler = (math.radians(78), 0.0, 0.0)
    sc.camera = cam

    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 2.0
    sun.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))
    sc.collection.objects.link(sun)
    lamp = bpy.data.objects.new("lamp", bpy.data.lights.new("lamp", "POINT"))
    lamp.data.energy = 600.0
    lamp.location = (-3.0, -3.0, 4.0)
    sc.collection.objects.link(lamp)
    return sc, cam, cube, lamp


def animate(scene_name: str, sc, cam, cube, lamp, frames: int) -> None:
    sc.frame_start, sc.frame_end = 1, frames
    if scene_name == "camera_pan":
        cam.location.x = -1.2
        cam.keyframe_insert("location", frame=1)
        cam.location.x = 1.2
        cam.keyframe_insert("location", frame=frames)
        _linear(cam)
    elif scene_name == "rotating_object":
        cube.rotation_euler = (0.0, 0.0, 0.0)
        cube.keyframe_insert("rotation_euler", frame=1)
        cube.rotation_euler = (0.0, 0.0, math.radians(5.0 * (frames - 1)))
        cube.keyframe_insert("rotation_euler", frame=frames)
        _linear(cube)
    elif scene_name == "moving_light":
        for f in range(1, frames + 1):
            a = 2 * math.pi * (f - 1) / (4 * frames)  # a quarter turn over the animation
            lamp.location = (4.0 * math.cos(a + 3.5), 4.0 * math.sin(a + 3.5), 4.0)
            lamp.keyframe_insert("location", frame=f)
    else:
        raise ValueError(f"unknown scene {scene_name!r}; use one of {SCENES}")


def add_pass_outputs(sc, directory: Path) -> None:
    """Compositor: Render Layers -> File Output writing Image and Vector as
    separate single-layer float EXRs (a multilayer File Output only wrote the
    first input in bpy 5.0.1)."""
    import bpy

    view_layer = sc.view_layers[0]
    view_layer.use_pass_vector = True
    tree = bpy.data.node_groups.new("Comp", "CompositorNodeTree")
    sc.compositing_node_group = tree
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    layers = tree.nodes.new("CompositorNodeRLayers")
    group_out = tree.nodes.new("NodeGroupOutput")
    tree.links.new(layers.outputs["Image"], group_out.inputs[0])
    out = tree.nodes.new("CompositorNodeOutputFile")
    out.directory = str(directory) + os.sep
    out.file_name = "pass_"
    out.format.media_type = "IMAGE"
    out.format.file_format = "OPEN_EXR"
    out.format.color_depth = "32"
    out.format.exr_codec = "ZIP"
    out.file_output_items.new("RGBA", "Image")
    out.file_output_items.new("RGBA", "Motion")  # the Vector pass, 4 channels
    tree.links.new(layers.outputs["Image"], out.inputs["Image"])
    tree.links.new(layers.outputs["Vector"], out.inputs["Motion"])


def read_exr(path: Path):
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        channels = f.channels()
        return next(iter(channels.values())).pixels.astype("float32").copy()


def render_scene(scene_name: str, out_dir: Path, size: int, frames: int, samples: int) -> Path:
    import bpy
    import numpy as np

    sc, cam, cube, lamp = build_set(size, samples)
    animate(scene_name, sc, cam, cube, lamp, frames)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        add_pass_outputs(sc, tmpdir)
        sc.render.filepath = str(tmpdir / "beauty_")
        sc.render.image_settings.file_format = "PNG"
        bpy.ops.render.render(animation=True)
        rgb, vector = [], []
        for f in range(1, frames + 1):
            rgb.append(read_exr(tmpdir / f"pass_Image{f:04d}.exr")[..., :3])
            vector.append(read_exr(tmpdir / f"pass_Motion{f:04d}.exr"))
    target = out_dir / f"{scene_name}.npz"
    partial = out_dir / f".{scene_name}.partial.npz"
    np.savez_compressed(partial, rgb=np.stack(rgb), vector=np.stack(vector))
    os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for <scene>.npz")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--scenes", nargs="*", default=list(SCENES), choices=SCENES)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # Keep Blender's user folders out of the home directory.
    user = tempfile.mkdtemp(prefix="pastiche-bpy-user-")
    os.environ.setdefault("BLENDER_USER_RESOURCES", user)
    for name in args.scenes:
        path = render_scene(name, args.out, args.size, args.frames, args.samples)
        print(f"rendered {name}: {path}", flush=True)
    meta = {"version": VERSION, "size": args.size, "frames": args.frames, "samples": args.samples,
            "scenes": args.scenes, "rows": "top_down", "engine": "CYCLES"}
    (args.out / "scenes.json").write_text(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
