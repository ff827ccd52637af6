"""Accuracy across ground sample distances: one annotated raster resampled to several GSDs, predicted with and without rescaling.

    python benchmarks/resolution.py                                   # bundled model on sample_data/OSBS_029
    python benchmarks/resolution.py --gsds 0.05 0.1 0.2 --out-dir /tmp/res --plot docs/images/resolution.png

For each GSD, ``split_raster(..., gsd=)`` writes one GeoTIFF covering the whole raster resampled to
that pixel size (average when shrinking, bilinear when enlarging; its transform states the new pixel
size) and its boxes scaled with it. Each copy is predicted with ``predict_tile`` twice, default
settings otherwise: ``rescale=True`` (windows are read resampled to the model's GSD) and
``rescale=False`` (raster pixels fed as they are), and scored with ``evaluate_boxes`` at IoU 0.4.
Up-sampling a 0.1 m image to 0.02 m simulates a drone image: it has no detail a 0.1 m camera did not
record, so the finer rows measure the resampling, not real drone imagery.

Prints one table row per GSD on stderr and one JSON line on stdout; writes the JSON (``--json``)
and a PNG of F1 against GSD (``--plot``, both curves).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import deepforest_lite as dfl
from deepforest_lite.files import atomic_write
from deepforest_lite.gsd import file_gsd

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GSDS = (0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)


def _figure(value: float) -> float | None:
    """Rounded to 4 decimals; ``None`` (JSON null) for a figure that cannot be computed (NaN)."""
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def resample_copy(raster: Path, annotations: Path, gsd: float, out_dir: Path) -> tuple[Path, Path, float]:
    """Write ``raster`` and its boxes at ``gsd`` m per pixel as one GeoTIFF + CSV in ``out_dir``.

    Uses :func:`deepforest_lite.split_raster` with a window larger than the raster, so the single
    tile is the whole raster, resampled when ``gsd`` differs from the raster's own by more than 10 %.
    Returns ``(tile, csv, gsd actually written)``: the written GSD is the raster's extent over the
    tile's whole number of pixels, so it can differ slightly from ``gsd`` (0.3008 for 0.3 on 400 px).
    """
    own = file_gsd(raster)
    if own is None:
        raise SystemExit(f"{raster} has no usable GSD (no CRS in metres, feet or degrees): give a GeoTIFF.")
    with dfl.RasterSource(raster) as source:
        longest = max(source.width, source.height)
    factor = max(own) / gsd  # output px per raster px
    patch = 2 * math.ceil(longest * factor) + 2  # so the window (patch / factor raster px) covers the raster
    result = dfl.split_raster(raster, annotations, patch_size=patch, patch_overlap=0.0, out_dir=out_dir,
                              gsd=gsd, progress=False)
    if len(result.tiles) != 1:
        raise SystemExit(f"expected one tile at {gsd} m, got {len(result.tiles)}")
    written = file_gsd(result.tiles[0])
    return result.tiles[0], result.csv_path, float(written[0])


def score(det: dfl.Detector, tile: Path, truth_csv: Path, rescale: bool, iou_threshold: float) -> dict:
    """P / R / F1 of ``predict_tile(tile, rescale=rescale)`` against ``truth_csv``."""
    truth = dfl.read_annotations(truth_csv)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boxes = det.predict_tile(tile, rescale=rescale, progress=False, image_path=tile.name)
        seconds = time.perf_counter() - started
        scores = dfl.evaluate_boxes(boxes, truth, iou_threshold=iou_threshold)
    return {
        "predicted_boxes": int(scores.n_predictions),
        "precision": _figure(scores.precision),
        "recall": _figure(scores.recall),
        "f1": _figure(scores.f1),
        "box_precision": _figure(scores.box_precision),
        "box_recall": _figure(scores.box_recall),
        "rescaled": bool(boxes.attrs.get("rescaled")),
        "windows": int(boxes.attrs.get("windows", 0)),
        "seconds": round(seconds, 2),
    }


def plot(rows: list[dict], native_gsd: float, path: Path) -> None:
    """F1 against GSD (log axis), with and without rescaling, to a PNG written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    gsds = [r["gsd"] for r in rows]
    for key, label, style in (("rescaled", "rescaled to the model's GSD (default)", "o-"),
                              ("as_is", "raster pixels as they are (--no-rescale)", "s--")):
        ax.plot(gsds, [math.nan if r[key]["f1"] is None else r[key]["f1"] for r in rows], style, label=label)
    native = next((r for r in rows if math.isclose(r["gsd"], native_gsd, rel_tol=0.01)), None)
    if native is not None and native["rescaled"]["f1"] is not None:
        ax.axhspan(0.9 * native["rescaled"]["f1"], native["rescaled"]["f1"], color="0.85", zorder=0,
                   label="within 10 % of native F1")
    ax.axvline(native_gsd, color="0.5", linewidth=0.8)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(gsds)
    ax.set_xticklabels([f"{g:g}" for g in gsds])
    ax.set_xlabel("raster GSD (m per pixel; model trained at %g m)" % native_gsd)
    ax.set_ylabel("F1 (IoU 0.4)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower center", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint, bundled or hub name (default: the bundled model)")
    parser.add_argument("--raster", default=str(REPO / "sample_data" / "OSBS_029.tif"),
                        help="annotated GeoTIFF at its native GSD (default: sample_data/OSBS_029.tif, 0.1 m)")
    parser.add_argument("--annotations", default=str(REPO / "sample_data" / "OSBS_029.csv"),
                        help="its boxes in pixels (default: sample_data/OSBS_029.csv, 61 trees)")
    parser.add_argument("--gsds", type=float, nargs="+", default=list(DEFAULT_GSDS), metavar="M",
                        help="GSDs to resample to, metres (default: %(default)s)")
    parser.add_argument("--iou-threshold", type=float, default=0.4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", help="folder for the resampled copies (default: a temporary folder)")
    parser.add_argument("--json", help="also write the result to this JSON file")
    parser.add_argument("--plot", help="write F1 against GSD to this PNG")
    args = parser.parse_args()

    det = dfl.load_model(args.model, device=args.device)
    raster, annotations = Path(args.raster), Path(args.annotations)
    own = file_gsd(raster)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.out_dir) if args.out_dir else Path(scratch)
        rows = []
        for gsd in sorted(args.gsds):
            tile, truth_csv, written = resample_copy(raster, annotations, gsd, base / f"gsd_{gsd:g}")
            with dfl.RasterSource(tile) as source:
                size = [source.width, source.height]
            row = {"gsd": gsd, "written_gsd": round(written, 6), "size_px": size,
                   "rescaled": score(det, tile, truth_csv, True, args.iou_threshold),
                   "as_is": score(det, tile, truth_csv, False, args.iou_threshold)}
            rows.append(row)
            print(f"{gsd:>5g} m {size[0]:>5d} px  rescaled P/R/F1 {row['rescaled']['precision']}/"
                  f"{row['rescaled']['recall']}/{row['rescaled']['f1']}   as is {row['as_is']['precision']}/"
                  f"{row['as_is']['recall']}/{row['as_is']['f1']}", file=sys.stderr)
    native_gsd = det.gsd if det.gsd is not None else (own[0] if own else math.nan)
    native = next((r for r in rows if math.isclose(r["gsd"], native_gsd, rel_tol=0.01)), None)
    target = None
    if native is not None and native["rescaled"]["f1"]:
        band = [r for r in rows if 0.03 - 1e-9 <= r["gsd"] <= 0.2 + 1e-9]
        ratios = {f"{r['gsd']:g}": round(r["rescaled"]["f1"] / native["rescaled"]["f1"], 4)
                  for r in band if r["rescaled"]["f1"] is not None}
        target = {"rule": "rescaled F1 at 0.03-0.2 m >= 0.9 x native F1", "ratios": ratios,
                  "met": bool(ratios) and len(ratios) == len(band) and min(ratios.values()) >= 0.9}
    result = {
        "model": args.model or "tree-lite (bundled)",
        "model_gsd": det.gsd,
        "score_threshold": det.score_threshold,
        "raster": os.path.relpath(raster, REPO) if raster.is_relative_to(REPO) else str(raster),
        "raster_gsd": None if own is None else list(own),
        "iou_threshold": args.iou_threshold,
        "rows": rows,
        "target": target,
    }
    if args.json:
        text = json.dumps(result, indent=1) + "\n"
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    if args.plot:
        plot(rows, native_gsd, Path(args.plot))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
