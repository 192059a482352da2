"""Per-style ratio of the network's style loss to Gatys optimization's, from `pastiche evaluate` reports.

    python examples/default_model/style_ratios.py NETWORK.json [GATYS.json]

NETWORK.json: a report of the model (its "network" losses); GATYS.json: a report
with the Gatys reference on the same photos and settings (default: the same
file). Gatys does not depend on the model, so one reference serves every
sitting: examples/default_model/gatys_reference.json (300 L-BFGS iterations on
four held-out photos since 2026-12-04; the two-photo, 100-iteration one before
it is in the git history). The target of issue #16
is a ratio of at most 1.5 for every style.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def means(report: dict, which: str) -> dict[str, dict]:
    return {s["name"]: s["mean"][which] for s in report["styles"] if s["mean"].get(which)}


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        network, gatys = (json.loads(Path(path).read_text()) for path in (argv[0], argv[-1]))
    except (OSError, ValueError) as err:
        print(f"style_ratios.py: cannot read the report: {err}", file=sys.stderr)
        return 2
    for key in ("size", "style_size", "loss", "content_images"):
        if network.get(key) != gatys.get(key):
            print(f"warning: the reports differ in {key}: {network.get(key)} vs {gatys.get(key)}", file=sys.stderr)
    net, ref = means(network, "network"), means(gatys, "gatys")
    rows = [(name, net[name]["style"], ref[name]["style"]) for name in net if name in ref]
    print(f"{'style':<22} {'network':>8} {'gatys':>8} {'ratio':>6}")
    for name, n, g in sorted(rows, key=lambda r: r[1] / r[2]):
        print(f"{name:<22} {n:8.3f} {g:8.3f} {n / g:6.2f}")
    ratios = [n / g for _, n, g in rows]
    print(f"worst {max(ratios):.2f}, median {statistics.median(ratios):.2f}, "
          f"styles at or under 1.5: {sum(r <= 1.5 for r in ratios)} of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
