"""Train (or resume) the bundled default model with `pastiche train`.

    python examples/default_model/train.py --assets ../shared/assets            # start stage D
    python examples/default_model/train.py --assets ../shared/assets --resume   # continue it
    python examples/default_model/train.py --assets ../shared/assets --stage a  # redo stage A from scratch

The run has four stages (STAGES below), each starting from the weights the one
before it ended with (stage_a/b/c.safetensors, committed).
The 20 training paintings of the project's asset set (train-ready/styles, the
four paintings reserved for evaluating add-style left out) get short names and
their credits from styles.json beside this file. The photos listed in
holdout.txt are never trained on: `pastiche evaluate` scores the model on them
(docs/training.md, section 8). Everything else here is the exact command line.

The checkpoint (model, Adam state, random generators, data position; a few MB
for the light network) is kept beside this file, so a run stopped in one
sitting resumes exactly in the next one, on any machine. To stop a run, send it
SIGINT (Ctrl-C, or `kill -INT` on the `pastiche train` process): it saves a
checkpoint first. The model being
trained is written to .train/default.safetensors at every checkpoint; it
replaces core/models/default.safetensors only when it is good enough
(`--ship` converts it to float16 and puts it there).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / ".train"  # ignored by git
CHECKPOINT = HERE / "checkpoint.safetensors"
MODEL = WORK / "default.safetensors"

# Stage A (12,297 steps): content at relu4_1 and style weight 25, the settings Gatys
# optimization liked. The network lost the subject with them (docs/training.md,
# section 9), so stage B went on from stage A's weights with content at relu3_1, style
# weight 5 and a total-variation term, chosen by 400-step probes. Its style loss stopped
# falling at Adam's 1e-3 after about 10,000 steps; it was stopped at 27,461 and stage C
# went on at a lower learning rate, chosen by two 400-step probes (1e-3 against 2e-4).
# Stage C levelled off by 3,744; stage D adds zoomed-out crops (scale jitter up to 3.2,
# so a crop can hold most of a photo, as the held-out scoring and wide shots do), chosen
# by a paired 600-step probe. The painting at twice the crop size sets the stroke size.
COMMON = ["--arch", "light", "--crop-size", "128", "--style-size", "256", "--batch-size", "4"]
STAGE_B_LOSS = ["--content-layer", "relu3_1", "--style-loss-weight", "5", "--tv-weight", "10"]
STAGES = {
    "a": {"settings": [*COMMON, "--lr", "1e-3", "--content-layer", "relu4_1", "--style-loss-weight", "25",
                       "--seed", "0"],
          "steps": 12297, "log": HERE / "stage_a.log.jsonl", "init": None, "weights": HERE / "stage_a.safetensors"},
    "b": {"settings": [*COMMON, "--lr", "1e-3", *STAGE_B_LOSS, "--seed", "1"],
          "steps": 27461, "log": HERE / "stage_b.log.jsonl", "init": HERE / "stage_a.safetensors",
          "weights": HERE / "stage_b.safetensors"},
    "c": {"settings": [*COMMON, "--lr", "2e-4", *STAGE_B_LOSS, "--seed", "2"],
          "steps": 3744, "log": HERE / "stage_c.log.jsonl", "init": HERE / "stage_b.safetensors",
          "weights": HERE / "stage_c.safetensors"},
    "d": {"settings": [*COMMON, "--lr", "2e-4", *STAGE_B_LOSS, "--scale-jitter", "0.8", "3.2", "--seed", "7"],
          "steps": 12000, "log": HERE / "train.log.jsonl", "init": HERE / "stage_c.safetensors", "weights": None},
}
CURRENT = "d"  # the stage whose checkpoint is committed; finished stages keep only their weights


def split_photos(content: Path) -> tuple[Path, Path]:
    """Link the photos into .train/content (training) and .train/holdout (evaluation only)."""
    holdout = {line.strip() for line in (HERE / "holdout.txt").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    train_dir, hold_dir = WORK / "content", WORK / "holdout"
    for d in (train_dir, hold_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    photos = sorted(p for p in content.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    missing = holdout - {p.name for p in photos}
    if missing:
        raise SystemExit(f"holdout.txt names photos that {content} lacks: {', '.join(sorted(missing))}")
    for p in photos:
        (hold_dir if p.name in holdout else train_dir).joinpath(p.name).symlink_to(p.resolve())
    return train_dir, hold_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", default=str(ROOT.parent / "shared" / "assets"),
                    help="the project's asset folder (train-ready/, vgg/)")
    ap.add_argument("--stage", choices=sorted(STAGES), default=CURRENT,
                    help=f"redo a finished stage (writes its weights file), or {CURRENT} (default): the current one")
    ap.add_argument("--steps", type=int, help="steps of the stage (default: its planned length)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all)")
    ap.add_argument("--ship", nargs="?", const=str(MODEL), metavar="MODEL",
                    help="write MODEL (default: the current stage's, .train/default.safetensors) as "
                         "float16 to core/models/default.safetensors and stop")
    args, extra = ap.parse_known_args()
    if args.ship:
        import torch

        from pastiche_core.model.modelfile import load_model, reorder_styles, save_model

        model = load_model(args.ship)
        # Training orders the styles by file name; the shipped model follows styles.json
        # (The Starry Night first: what a bare `pastiche stylize` uses).
        order = [entry["name"] for entry in json.loads((HERE / "styles.json").read_text())]
        model = reorder_styles(model, order)
        out = save_model(model, ROOT / "core" / "models" / "default.safetensors", dtype=torch.float16)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {model.training.get('steps')} steps)")
        return 0
    assets = Path(args.assets)
    train_dir, _ = split_photos(assets / "train-ready" / "content")
    stage = STAGES[args.stage]
    out = stage["weights"] or MODEL
    checkpoint = CHECKPOINT if args.stage == CURRENT else WORK / f"stage_{args.stage}.ckpt.safetensors"
    cmd = [sys.executable, "-m", "pastiche_core", "train",
           "--styles", str(assets / "train-ready" / "styles"), "--styles-manifest", str(HERE / "styles.json"),
           "--content", str(train_dir), "--vgg", str(assets / "vgg" / "vgg19-imagenet-caffe.safetensors"),
           "--out", str(out), "--checkpoint", str(checkpoint), "--log", str(stage["log"]),
           "--steps", str(args.steps or stage["steps"]), "--device", "cpu", "--workers", "0",
           "--checkpoint-minutes", "10", *stage["settings"],
           *(["--init", str(stage["init"])] if stage["init"] else []),
           *(["--resume"] if args.resume else []), *extra]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(" ".join(cmd), flush=True)
    # A shell starting this in the background (`... &`) makes SIGINT ignored, and Python then
    # never raises KeyboardInterrupt: restore it in the child so `kill -INT` checkpoints the run.
    return subprocess.call(cmd, env=env, cwd=ROOT,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


if __name__ == "__main__":
    sys.exit(main())
