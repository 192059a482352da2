"""How close can the network get to Gatys when it only has to serve a few photos?

Fine-tunes a copy of a model's network for one style on whole photos (long side
256, as `pastiche evaluate` scores them; Adam, in the precision `pastiche train`
would pick on this CPU) and prints the style and content losses on those photos and on held-out
ones as it goes. With one photo this is per-image optimization through the
network's weights: it says whether the architecture can express a picture as
good as Gatys's. With more photos it says how much of that survives when one
network must serve them all (docs/training.md, section 9, "Seventh sitting").

    python examples/default_model/amortization_probe.py core/models/default.safetensors \
        kroyer_self_portrait --photos .train/holdout/kodak_kodim07.jpg --steps 600
    python examples/default_model/amortization_probe.py core/models/default.safetensors \
        kroyer_self_portrait --random-photos 8 --steps 1600 --every 400

.train/content and .train/holdout are written by train.py (split_photos).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pastiche_core.model.modelfile import load_model
from pastiche_core.perceptual.losses import LossConfig, PerceptualLoss
from pastiche_core.perceptual.vgg import load_vgg
from pastiche_core.training.data import load_style_image
from pastiche_core.training.evaluate import _content_tensor
from pastiche_core.training.train import training_placement

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HELD_OUT = ["kodak_kodim07.jpg", "kodak_kodim17.jpg", "wikimedia_013.jpg"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("style", help="the style's name in the model")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--photos", nargs="+", type=Path, help="train on these photos")
    group.add_argument("--random-photos", type=int, metavar="K",
                       help="train on K photos of .train/content, drawn with seed 0")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100, help="print the losses every N steps")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--assets", type=Path, default=ROOT.parent / "shared" / "assets")
    args = ap.parse_args()
    if args.steps < 0 or args.every < 1 or (args.random_photos is not None and args.random_photos < 1):
        ap.error("--steps must be >= 0, --every and --random-photos >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.model)
    cfg = LossConfig.from_dict(model.training["loss"]) if "loss" in model.training else LossConfig()
    vgg = load_vgg(args.assets / "vgg" / "vgg19-imagenet-caffe.safetensors", cfg.layers, "caffe",
                   torch.device("cpu"))
    vgg.requires_grad_(False)
    loss = PerceptualLoss(vgg, cfg)
    net = model.network.train().requires_grad_(True)
    credits = {e["name"]: e for e in json.loads((HERE / "styles.json").read_text())}
    painting = args.assets / "train-ready" / "styles" / credits[args.style]["file"]
    grams = loss.style_grams([load_style_image(painting, int(model.training.get("style_size", 256)), 1)])
    onehot = F.one_hot(torch.tensor([model.style_names.index(args.style)]), len(model.style_names)).float()
    first = torch.zeros(1, dtype=torch.long)

    if args.photos:
        train = list(args.photos)
    else:
        train = sorted((ROOT / ".train" / "content").iterdir())
        random.Random(0).shuffle(train)
        train = train[: args.random_photos]
    trained = {p.name for p in train}
    held_out = [ROOT / ".train" / "holdout" / name for name in HELD_OUT if name not in trained]
    missing = [p for p in [*train, *held_out] if not p.exists()]
    if missing or not train:
        ap.error(f"photo missing: {missing[0]} (train.py links .train/content and .train/holdout)" if missing
                 else "no photos to train on")
    xs = [_content_tensor(p, 256) for p in train]
    hs = [_content_tensor(p, 256) for p in held_out]
    targets = [vgg(x)[cfg.content_layer].detach() for x in xs]

    def score(images: list[torch.Tensor]) -> str:
        if not images:
            return "(none)"
        net.eval()
        with torch.no_grad():
            terms = [loss(net(x, onehot), x, grams, first).means() for x in images]
        net.train()
        mean = {k: sum(t[k] for t in terms) / len(terms) for k in ("style", "content")}
        each = " ".join(f"{t['style']:.3f}" for t in terms)
        return f"style {mean['style']:.3f} content {mean['content']:.3f} (style per photo: {each})"

    amp = training_placement("cpu").amp_dtype  # bf16 where the CPU has it, as `pastiche train`
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start = time.time()
    print(f"step 0: trained-on {score(xs)}; held-out {score(hs)}", flush=True)
    for step in range(1, args.steps + 1):
        i = step % len(xs)
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            terms = loss(net(xs[i], onehot).float(), xs[i], grams, first, content_features=targets[i])
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        if step % args.every == 0 or step == args.steps:
            print(f"step {step} ({time.time() - start:.0f} s): trained-on {score(xs)}; held-out {score(hs)}",
                  flush=True)


if __name__ == "__main__":
    main()
