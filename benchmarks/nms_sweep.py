"""The NMS IoU threshold of a tree model, chosen on the held-out sites: one JSON line per value tried.

    python scripts/train_default_model.py --prepare-only          # runs/tree-lite/holdout*.csv
    python benchmarks/nms_sweep.py                                 # the bundled model, 0.05-0.4
    python benchmarks/nms_sweep.py --model runs/x/x.safetensors --nms 0.05,0.1,0.15

For each NMS IoU threshold (within one window, a box overlapping a higher-scoring box of the same
label by more than it is dropped), the held-out sites are predicted and scored as
``benchmarks/heldout.py`` does: the score threshold of best pooled F1 on the three held-out sites,
then per-site pooled P / R / F1 and ``OSBS_029``'s at that threshold. The last line names the NMS
threshold with the best held-out pooled F1 (``OSBS_029`` plays no part in either choice).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from heldout import score  # noqa: E402  (benchmarks/heldout.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint, bundled or hub name (default: the bundled model)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "tree-lite",
                        help="folder with holdout.csv and holdout_<SITE>.csv (train_default_model.py --prepare-only)")
    parser.add_argument("--nms", default="0.05,0.1,0.15,0.2,0.3,0.4", help="comma-separated NMS IoU thresholds")
    args = parser.parse_args()
    try:
        values = [float(v) for v in args.nms.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--nms must be comma-separated numbers such as 0.05,0.1, not {args.nms!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise SystemExit(f"--nms values must lie in (0, 1], got {args.nms!r}")
    if not (args.work_dir / "holdout.csv").is_file():
        raise SystemExit(f"no holdout.csv in {args.work_dir}; run scripts/train_default_model.py --prepare-only first")
    rows = []
    for nms in values:
        rows.append({"nms_threshold": nms, **score(args.model, args.work_dir, nms_threshold=nms)})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["holdout"]["f1"])
    print(json.dumps({"best_nms_threshold": best["nms_threshold"], "threshold": best["threshold"],
                      "holdout_f1": best["holdout"]["f1"]}))


if __name__ == "__main__":
    main()
