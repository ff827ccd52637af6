"""``deepforest-lite evaluate``: summary, files written, one-line errors with exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepforest_lite as dfl
from deepforest_lite.cli import main


@pytest.fixture
def files(tmp_path):
    """OSBS_029 truth beside its image; predictions: the truth with scores, 5 boxes moved, 2 dropped."""
    shutil.copy(dfl.get_data("OSBS_029.tif"), tmp_path / "OSBS_029.tif")
    truth = pd.read_csv(dfl.get_data("OSBS_029.csv"))
    truth.to_csv(tmp_path / "truth.csv", index=False)
    preds = truth.copy()
    preds["score"] = np.linspace(0.3, 0.95, len(preds))
    preds.loc[:4, ["xmin", "xmax"]] += 20
    preds = preds.drop(index=[10, 11])
    preds.to_csv(tmp_path / "preds.csv", index=False)
    return tmp_path, preds, truth


def test_summary_and_files(files, capsys):
    tmp, preds, truth = files
    out_csv = tmp / "out" / "metrics.csv"
    code = main(
        [
            "evaluate",
            str(tmp / "preds.csv"),
            str(tmp / "truth.csv"),
            "--output",
            str(out_csv),
            "--plot-dir",
            str(tmp / "plots"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    expected = dfl.evaluate_boxes(preds, truth)
    assert "box precision" in text and "box recall" in text and "mAP@0.5" in text
    assert f"{expected['box_precision']:.3f}" in text and f"{expected['f1']:.3f}" in text
    assert "per class" in text and "Tree" in text

    metrics = pd.read_csv(out_csv).set_index("metric")["value"]
    assert float(metrics["box_precision"]) == pytest.approx(expected["box_precision"])
    assert float(metrics["box_recall"]) == pytest.approx(expected["box_recall"])
    assert float(metrics["f1"]) == pytest.approx(expected["f1"])
    assert 0 < float(metrics["map_50"]) <= 1
    results = pd.read_csv(tmp / "out" / "metrics_results.csv")
    assert len(results) == len(truth) and results["match"].sum() == expected["true_positive"]
    for name in ["per_class", "per_image", "confusion", "sweep"]:
        assert (tmp / "out" / f"metrics_{name}.csv").is_file()

    with Image.open(tmp / "plots" / "OSBS_029_evaluation.png") as im:
        assert im.size == (400, 400)
    with Image.open(tmp / "plots" / "precision_recall.png") as im:
        assert im.format == "PNG"


def test_predictions_without_scores(files, capsys):
    tmp, preds, _ = files
    preds.drop(columns=["score"]).to_csv(tmp / "noscore.csv", index=False)
    assert main(["evaluate", str(tmp / "noscore.csv"), str(tmp / "truth.csv")]) == 0
    text = capsys.readouterr().out
    assert "mAP: n/a" in text and "box recall" in text


def test_missing_image_is_a_note_not_an_error(files, capsys):
    tmp, _, _ = files
    (tmp / "OSBS_029.tif").unlink()
    assert (
        main(["evaluate", str(tmp / "preds.csv"), str(tmp / "truth.csv"), "--plot-dir", str(tmp / "p")]) == 0
    )
    assert "no image file" in capsys.readouterr().err
    assert (tmp / "p" / "precision_recall.png").is_file()
    assert not (tmp / "p" / "OSBS_029_evaluation.png").exists()


def test_root_dir_locates_images(files, tmp_path_factory):
    tmp, _, _ = files
    elsewhere = tmp_path_factory.mktemp("csvs")
    shutil.move(str(tmp / "truth.csv"), elsewhere / "truth.csv")
    args = [
        "evaluate",
        str(tmp / "preds.csv"),
        str(elsewhere / "truth.csv"),
        "--plot-dir",
        str(tmp / "p"),
        "--root-dir",
        str(tmp),
    ]
    assert main(args) == 0
    assert (tmp / "p" / "OSBS_029_evaluation.png").is_file()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["MISSING"], "does not exist"),
        (["--iou-threshold", "1.5"], "between 0 and 1"),
        (["--root-dir", "NOWHERE"], "--root-dir"),
        (["BADCOLUMNS"], "lacks the column"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(files, capsys, extra, fragment):
    tmp, _, _ = files
    pd.DataFrame({"a": [1]}).to_csv(tmp / "bad.csv", index=False)
    preds, truth = str(tmp / "preds.csv"), str(tmp / "truth.csv")
    if extra == ["MISSING"]:
        argv = ["evaluate", str(tmp / "nope.csv"), truth]
    elif extra == ["BADCOLUMNS"]:
        argv = ["evaluate", str(tmp / "bad.csv"), truth]
    else:
        argv = ["evaluate", preds, truth, *[str(tmp / e) if e == "NOWHERE" else e for e in extra]]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert fragment in err


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from deepforest_lite.cli import main; sys.exit(main())",
            "evaluate",
            str(tmp_path / "p.csv"),
            str(tmp_path / "t.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "p.csv" in proc.stderr


def test_warnings_printed_once(files, capsys):
    tmp, _, truth = files
    truth.loc[0, "label"] = None
    truth.to_csv(tmp / "truth_nolabel.csv", index=False)
    assert main(["evaluate", str(tmp / "preds.csv"), str(tmp / "truth_nolabel.csv")]) == 0
    err = capsys.readouterr().err
    # evaluate_boxes, mean_average_precision and the sweep all warn; the command says it once
    assert err.count("warning: 1 box(es) of the ground truth have no label") == 1


def test_predictions_from_a_geopackage_and_truth_from_voc(tmp_path, capsys):
    from affine import Affine

    truth = dfl.read_annotations(dfl.get_data("OSBS_029.xml"))
    truth["image_path"] = "OSBS_029.tif"
    preds = truth.assign(score=0.9).iloc[:30]
    gdf = dfl.boxes_to_map(preds, Affine(0.1, 0, 404211.9, 0, -0.1, 3285142.9), "EPSG:32617")
    dfl.write_boxes(gdf, tmp_path / "preds.gpkg")
    assert main(["evaluate", str(tmp_path / "preds.gpkg"), dfl.get_data("OSBS_029.xml")]) == 0
    text = capsys.readouterr().out
    expected = dfl.evaluate_boxes(preds, truth)
    assert expected["recall"] == pytest.approx(30 / 61)
    assert f"{expected['recall']:.3f}" in text


def test_plot_dir_skips_an_image_prediction_could_not_read_without_bands(files, capsys):
    import rasterio

    tmp, _, _ = files
    with rasterio.open(tmp / "OSBS_029.tif") as src:  # rewrite the image as RGB + one more band
        profile = src.profile | {"count": 4, "nodata": None, "photometric": "minisblack"}  # no alpha
        pixels = src.read()
    with rasterio.open(tmp / "OSBS_029.tif", "w", **profile) as dst:
        dst.write(np.concatenate([pixels, pixels[:1]]))
    code = main(["evaluate", str(tmp / "preds.csv"), str(tmp / "truth.csv"), "--plot-dir", str(tmp / "plots")])
    assert code == 0
    err = capsys.readouterr().err
    assert "overlay is skipped" in err and "bands=" in err
    assert not (tmp / "plots" / "OSBS_029_evaluation.png").exists()
    assert (tmp / "plots" / "precision_recall.png").is_file()
