"""Scoring a tree model on the held-out sites, the one way ``ablations.py`` and ``nms_sweep.py`` share.

The held-out sites (MLBS, NIWO, CLBJ; never trained on) are predicted at score 0.05, the threshold
of best pooled F1 on all three together is chosen from them, and the per-site pooled P / R / F1 and
those of ``OSBS_029`` are reported at that threshold (IoU 0.4, DeepForest's rule). ``OSBS_029``
never takes part in the choice. The held-out CSVs are ``<work>/holdout.csv`` and
``<work>/holdout_<SITE>.csv`` as ``scripts/train_default_model.py --prepare-only`` writes them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

import deepforest_lite as dfl

REPO = Path(__file__).resolve().parent.parent
SITES = ("MLBS", "NIWO", "CLBJ")
#: predictions are kept down to this score, so that the threshold can be chosen afterwards
FLOOR = 0.05


def pooled(predictions: pd.DataFrame, truth: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Pooled P / R / F1 at IoU 0.4 of the predictions scoring at least ``threshold``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = dfl.evaluate_boxes(predictions[predictions["score"] >= threshold], truth, iou_threshold=0.4)
    return {"precision": round(float(s.precision), 3), "recall": round(float(s.recall), 3), "f1": round(float(s.f1), 3)}


def predict(det: dfl.Detector, truth: pd.DataFrame) -> pd.DataFrame:
    """``det``'s boxes on every image of ``truth`` (``image_path`` as in ``truth``), one table."""
    tables = [det.predict_tile(p, image_path=p, progress=False) for p in truth["image_path"].unique()]
    return pd.concat(tables, ignore_index=True)


def osbs_truth() -> pd.DataFrame:
    """The boxes of the evaluation image ``sample_data/OSBS_029`` with absolute image paths."""
    truth = dfl.read_annotations(REPO / "sample_data" / "OSBS_029.csv")
    truth["image_path"] = [str(REPO / "sample_data" / p) for p in truth["image_path"]]
    return truth


def score(model: str | Path, work: Path, nms_threshold: float | None = None) -> dict:
    """Held-out per-site and pooled figures at the best held-out threshold, and ``OSBS_029`` at it.

    ``nms_threshold`` replaces the model's stored NMS IoU threshold when given. Returns
    ``{"threshold", "predicted", "holdout", <SITE>..., "OSBS_029"}``: the chosen score threshold, the
    number of held-out boxes kept at it, then ``{"precision", "recall", "f1"}`` per entry.
    """
    det = dfl.load_model(model, device="cpu")
    det.score_threshold = FLOOR
    if nms_threshold is not None:
        det.nms_threshold = nms_threshold
    held = dfl.read_annotations(work / "holdout.csv")
    predictions = predict(det, held)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threshold = float(dfl.best_threshold(dfl.threshold_sweep(predictions, held, iou_threshold=0.4)))
    result: dict = {"threshold": round(threshold, 3), "predicted": int((predictions["score"] >= threshold).sum()),
                    "holdout": pooled(predictions, held, threshold)}
    for site in SITES:
        truth = dfl.read_annotations(work / f"holdout_{site}.csv")
        on_site = predictions["image_path"].isin(set(truth["image_path"]))
        result[site] = pooled(predictions[on_site], truth, threshold)
    osbs = osbs_truth()
    result["OSBS_029"] = pooled(predict(det, osbs), osbs, threshold)
    return result
