"""The picture of style regions in docs/regions.md, made by the add-on itself.

    python examples/regions_picture.py [--out docs/images/regions-blender.png] [--size 320x240]

Renders the demo scene (examples/demo_scene.py) with Cycles, then stylizes it
with the bundled default model through Render Stylized Animation: the scene's
mix is The Starry Night and one style region (the Suzanne object, from the
Cryptomatte object pass) and another (the blue material, from the material
pass) are The Scream. Saves a 2 x 2 sheet: the render, the whole frame in
style A, the whole frame in style B, and the regions result (a 256-colour
PNG, to stay small).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STYLE_A = "starry_night"
STYLE_B = "the_scream"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "regions-blender.png"))
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = tempfile.mkdtemp(prefix="pastiche-regions-picture-")
    os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(work, "blender-user"))
    sys.path[:0] = [ROOT, os.path.join(ROOT, "examples")]
    import bpy
    import numpy as np
    from demo_scene import build_scene
    from PIL import Image, ImageDraw

    import blender_pastiche
    from blender_pastiche.props import regions as region_props
    from blender_pastiche.props import scene as properties
    from blender_pastiche.worker import client as worker_client

    scene = build_scene(width, height, args.samples)
    blender_pastiche.register()
    try:
        settings = scene.pastiche
        settings.model_source = "BUNDLED"
        properties.sync_styles(scene)
        if settings.model_error:
            raise SystemExit(f"the bundled model can't be read: {settings.model_error}")
        settings.device = "CPU"
        for item in settings.styles:
            item.weight = 1.0 if item.name == STYLE_A else 0.0
        for region in (region_props.add_region(scene, "Suzanne", "OBJECT", bpy.data.objects["Suzanne"]),
                       region_props.add_region(scene, "Blue", "MATERIAL", bpy.data.materials["Blue"])):
            for item in region.styles:
                item.weight = 1.0 if item.name == STYLE_B else 0.0
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        scene.render.filepath = os.path.join(work, "frame_")
        scene.frame_start = scene.frame_end = 1
        settings.keep_original = True
        if bpy.ops.pastiche.render_animation() != {"FINISHED"}:
            raise SystemExit("Render Stylized Animation failed (see the log above)")
        regions = np.asarray(Image.open(os.path.join(work, "frame_0001.png")).convert("RGB"))
        render = np.asarray(Image.open(os.path.join(work, "unstylized", "frame_0001.png")).convert("RGB"))
        options = {k: v for k, v in properties.stylize_options(scene).items()}
        rgb = render.astype(np.float32) / 255.0
        singles = [worker_client.stylize(rgb, {style: 1.0}, colour_space="srgb", **options)
                   for style in (STYLE_A, STYLE_B)]
    finally:
        worker_client.shutdown()
        blender_pastiche.unregister()

    def tile(pixels) -> Image.Image:
        array = pixels if pixels.dtype == np.uint8 else np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        return Image.fromarray(array[..., :3])

    titles = ["render", "whole frame: The Starry Night", "whole frame: The Scream",
              "regions: Suzanne, blue: The Scream; rest: Starry Night"]
    sheet = Image.new("RGB", (2 * width, 2 * height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (picture, title) in enumerate(zip([render, *singles, regions], titles, strict=True)):
        x, y = (i % 2) * width, (i // 2) * height
        sheet.paste(tile(picture), (x, y))
        draw.rectangle([x, y, x + 7 * len(title) + 6, y + 14], fill="black")
        draw.text((x + 3, y + 2), title, fill="white")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = f"{args.out}.tmp.png"
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        tmp, optimize=True)
    os.replace(tmp, args.out)  # atomic: a half-written picture never replaces a good one
    print(f"wrote {args.out} ({sheet.width} x {sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
