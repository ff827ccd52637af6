"""Does a new model learn briskly? ``fit`` from scratch on planted objects, scored on the same images.

    python benchmarks/fit_defaults.py                                        # fit's defaults
    python benchmarks/fit_defaults.py --optimizer sgd --lr 1e-3 --batch-size 4 --head-norm none

Eight 128 px images with four coloured squares each (16-25 px, classes Red and Blue, the test
suite's planted images), a ResNet-18 RetinaNet at native scale (``resize="scale"``) from random
weights, 40 epochs, one thread, seed 0. Recall and precision at IoU 0.4 and score threshold 0.1
(pooled). Options not given keep ``fit``'s and ``ModelConfig.for_weights``'s defaults. Prints one
JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import deepforest_lite as dfl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import write_planted_images  # noqa: E402  (the planted images of the test suite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--optimizer")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--head-norm", choices=("none", "group"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fit_options = {k: v for k, v in {"optimizer": args.optimizer, "lr": args.lr,
                                     "batch_size": args.batch_size}.items() if v is not None}
    model_options = {"head_norm": args.head_norm} if args.head_norm else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        truth = write_planted_images(folder, n_images=8, size=128, per_image=4, seed=0)
        torch.manual_seed(0)
        det = dfl.Detector(["Red", "Blue"], backbone="resnet18", resize="scale", device="cpu", **model_options)
        started = time.perf_counter()
        det.fit(folder / "train.csv", output_dir=folder / "run", epochs=args.epochs, progress=False, seed=0,
                **fit_options)
        seconds = time.perf_counter() - started
        det.score_threshold = 0.1
        predictions = pd.concat([det.predict_image(folder / f"img{i}.png") for i in range(8)], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = dfl.evaluate_boxes(predictions, truth, iou_threshold=0.4)
    print(json.dumps({"fit_options": fit_options, "model_options": model_options, "epochs": args.epochs,
                      "head_norm": det.config.head_norm, "recall": round(float(scores.recall), 3),
                      "precision": None if pd.isna(scores.precision) else round(float(scores.precision), 3),
                      "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
