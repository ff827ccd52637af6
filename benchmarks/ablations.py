"""Single-factor ablations of the tree-lite recipe on a short schedule, scored on the held-out sites.

    python benchmarks/ablations.py --epochs 10                                   # all variants, resumable
    python benchmarks/ablations.py --epochs 10 --variants baseline,resnet34      # some of them

Each variant is ``scripts/train_default_model.py`` with one change to the shipped recipe
(``deepforest_lite/configs/tree-lite.yaml``), trained for ``--epochs`` epochs (the same for every
row, far fewer than the shipped model's 60, so the table compares recipes, not final accuracy) in
``runs/ablation/<variant>-<epochs>ep/`` (continued with ``--resume`` when a run folder exists), then scored
like ``benchmarks/heldout.py`` does: the held-out sites (MLBS, NIWO, CLBJ; never trained on) predicted
at score 0.05, the threshold of best pooled F1 on all three chosen from them, then per-site pooled
F1 and ``OSBS_029`` P / R / F1 at that threshold (IoU 0.4). A variant and schedule already in
``results.json`` is not run again, and one whose model file exists is only scored. Prints one
JSON line per variant and writes ``runs/ablation/results.json``.

Variants: ``baseline`` (the recipe), ``resnet34`` (backbone), ``no-clahe`` (augment
``multiscale``: the recipe's flips, colour jitter and 0.5-2x rescale without CLAHE and blur),
``no-sparse`` (without the sparsely labelled tree-top-view sites DEJU, BLAN, HEAL), ``no-ttv``
(the old data alone: no tree-top-view; 88 images, so give it more epochs for the same steps).
Every variant is scored at NMS IoU ``--nms-threshold`` (default 0.05, as the table's rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from heldout import score  # noqa: E402  (benchmarks/heldout.py)

#: the tree-top-view sites the recipe trains on (all but the held-out MLBS, NIWO, CLBJ)
TTV_TRAINING_SITES = ("ABBY", "BART", "BLAN", "BONA", "DEJU", "DSNY", "GUAN", "HARV", "HEAL", "JERC", "KONZ",
                      "LAJA", "LENO", "TEAK")
#: variant -> (config overrides, extra arguments of scripts/train_default_model.py)
VARIANTS: dict[str, tuple[dict, list[str]]] = {
    "baseline": ({}, []),
    "resnet34": ({"model": {"backbone": "resnet34"}}, []),
    "no-clahe": ({"augment": "multiscale"}, []),
    "no-sparse": ({}, ["--exclude-sites", "DEJU,BLAN,HEAL"]),
    # the old data alone: neon-plots, YELL tiles, SOAP_061, no tree-top-view (all 14 of its training sites)
    "no-ttv": ({}, ["--exclude-sites", ",".join(TTV_TRAINING_SITES)]),
}


def config_for(overrides: dict, path: Path) -> Path:
    """The shipped recipe with ``overrides`` (one level of nesting), written to ``path``."""
    settings = yaml.safe_load((REPO / "deepforest_lite" / "configs" / "tree-lite.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per variant (default 10)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "ablation")
    parser.add_argument("--nms-threshold", type=float, default=0.05,
                        help="NMS IoU to score at (default 0.05: the table's rows were scored at it)")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    results_file = args.work_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in names:
        key = f"{name}@{args.epochs}"
        if key in results:
            print(json.dumps({key: results[key]}))
            continue
        overrides, extra = VARIANTS[name]
        work = args.work_dir / f"{name}-{args.epochs}ep"
        work.mkdir(parents=True, exist_ok=True)
        model = work / f"{name}.safetensors"
        command = [sys.executable, str(REPO / "scripts" / "train_default_model.py"), "--data", str(args.data),
                   "--work-dir", str(work), "--config", str(config_for(overrides, work / "config.yaml")),
                   "--output", str(model), "--epochs", str(args.epochs), *extra]
        if (work / "run" / "checkpoints" / "last.ckpt").is_file():
            command.append("--resume")
        if not model.is_file():  # written when training ends: a run whose scoring failed is only scored again
            subprocess.run(command, check=True)
        results[key] = {"variant": name, "epochs": args.epochs, "overrides": overrides, "arguments": extra,
                        **score(model, work, nms_threshold=args.nms_threshold)}
        if results_file.is_file():  # another invocation may have added variants meanwhile
            results = {**json.loads(results_file.read_text()), key: results[key]}
        results_file.write_text(json.dumps(results, indent=1))
        print(json.dumps({key: results[key]}))


if __name__ == "__main__":
    main()
