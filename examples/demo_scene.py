"""Build and render Pastiche's demo scene with Blender (bpy as a module or `blender -b -P`).

    python examples/demo_scene.py --out examples/demo.png [--size 512x384] [--samples 16]

A small still life (Suzanne, a sphere, a torus and a cube on a floor, warm key light and a
cool sky) with enough colour, edges and smooth gradients to show what a style does.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile


def build_scene(width: int, height: int, samples: int):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"

    def material(name, rgb, roughness=0.4, metallic=0.0):
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = metallic
        return mat

    def add(obj_op, location, mat, **kw):
        obj_op(location=location, **kw)
        obj = bpy.context.active_object
        obj.data.materials.append(mat)
        return obj

    floor = add(bpy.ops.mesh.primitive_plane_add, (0, 0, 0), material("Floor", (0.55, 0.45, 0.32), 0.8), size=20)
    floor.name = "Floor"
    monkey = add(bpy.ops.mesh.primitive_monkey_add, (0, 0, 1.0), material("Red", (0.8, 0.12, 0.08)), size=1.6)
    monkey.rotation_euler = (math.radians(-15), 0, math.radians(20))
    bpy.ops.object.shade_smooth()
    mod = monkey.modifiers.new("Subdiv", "SUBSURF")
    mod.levels = mod.render_levels = 2
    add(bpy.ops.mesh.primitive_uv_sphere_add, (-2.3, 1.2, 0.7), material("Blue", (0.1, 0.25, 0.8), 0.2), radius=0.7)
    bpy.ops.object.shade_smooth()
    add(bpy.ops.mesh.primitive_torus_add, (2.2, 0.8, 0.35), material("Gold", (0.9, 0.65, 0.2), 0.3, 1.0))
    bpy.ops.object.shade_smooth()
    cube = add(bpy.ops.mesh.primitive_cube_add, (1.4, -1.6, 0.5), material("Green", (0.15, 0.6, 0.25)), size=1.0)
    cube.rotation_euler = (0, 0, math.radians(30))

    world = bpy.data.worlds.new("Sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.5, 0.8, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world

    bpy.ops.object.light_add(type="SUN", location=(4, -4, 8))
    sun = bpy.context.active_object
    sun.data.energy = 4.0
    sun.data.color = (1.0, 0.9, 0.75)
    sun.rotation_euler = (math.radians(50), math.radians(10), math.radians(35))

    bpy.ops.object.camera_add(location=(0, -7.5, 3.4))
    cam = bpy.context.active_object
    cam.rotation_euler = (math.radians(72), 0, 0)
    cam.data.lens = 38
    scene.camera = cam
    return scene


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", default="512x384")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    # Keep Blender's user config out of the home folder when run as a module.
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="pastiche-demo-"))
    import bpy

    scene = build_scene(width, height, args.samples)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = os.path.abspath(args.out)
    bpy.ops.render.render(write_still=True)
    print(f"wrote {args.out} ({width}x{height}, {args.samples} samples)")
    return 0


if __name__ == "__main__":
    # Under `blender -b -P`, our arguments follow "--".
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
