"""A DeepForest 2.1 user's calls work, or fail with one sentence that names our spelling."""

from __future__ import annotations

import numpy as np
import pytest

import deepforest_lite as dfl
from deepforest_lite.cli import main
from deepforest_lite.compat import CLI_HINTS, DEEPFOREST_HINTS
from deepforest_lite.errors import DeepForestLiteError, UnknownNameError


@pytest.fixture
def det(boxy_detector, one_thread):
    return boxy_detector(scale_factor=0.5, per_image=10)


def same_boxes(a, b) -> None:
    assert len(a) > 0
    np.testing.assert_array_equal(a[["xmin", "ymin", "xmax", "ymax", "score"]].to_numpy(),
                                  b[["xmin", "ymin", "xmax", "ymax", "score"]].to_numpy())


def test_predict_image_path_and_image_keywords(det, make_raster):
    png = make_raster("photo.png", width=128, height=96)
    ours = det.predict_image(png.path)
    same_boxes(det.predict_image(path=png.path), ours)
    assert det.predict_image(path=png.path)["image_path"].iloc[0] == "photo.png"
    array = dfl.read_image(png.path)
    same_boxes(det.predict_image(image=array), det.predict_image(array))


def test_predict_tile_path_and_image_keywords_with_deepforest_settings(det, make_raster):
    tif = make_raster("ortho.tif")
    settings = {"patch_size": 200, "patch_overlap": 0.1, "iou_threshold": 0.2}
    ours = det.predict_tile(tif.path, progress=False, **settings)
    for keyword in ("path", "raster_path"):
        theirs = det.predict_tile(**{keyword: tif.path}, progress=False, **settings)
        same_boxes(theirs, ours)
        assert theirs.crs == ours.crs
    array = dfl.read_image(tif.path)
    same_boxes(det.predict_tile(image=array, progress=False, **settings),
               det.predict_tile(array, progress=False, **settings))


@pytest.mark.parametrize(
    ("call", "ours"),
    [
        (lambda d, p: d.predict_image(p, score_thresh=0.3), "score_threshold"),
        (lambda d, p: d.predict_image(path=p, return_plot=True), "plot_predictions"),
        (lambda d, p: d.predict_tile(path=p, nms_thresh=0.1), "nms_threshold"),
        (lambda d, p: d.predict_tile(path=p, mosaic=True), "leave it out"),
        (lambda d, p: d.predict_tile(p, patch_sise=300), "did you mean patch_size"),
        (lambda d, p: dfl.Detector(label_dict={"Tree": 0}), "labels"),
        (lambda d, p: dfl.Detector(["Tree"], num_classes=1), "len(labels)"),
        (lambda d, p: d.fit("train.csv", max_epochs=3), "epochs"),
        (lambda d, p: d.fit("train.csv", csv_file="train.csv"), "train="),
        (lambda d, p: d.save_model("model.pt"), "det.save"),
        (lambda d, p: d.use_release(), "dfl.load_model()"),
        (lambda d, p: setattr(d, "score_thresh", 0.3), "det.score_threshold = 0.3"),
        (lambda d, p: dfl.plot_results, "plot_predictions"),
        (lambda d, p: dfl.load_model("x.pt", model_name="y"), "both model_name="),
    ],
)
def test_deepforest_spellings_name_ours(det, make_raster, call, ours):
    png = make_raster("photo.png", width=64, height=64)
    with pytest.raises(UnknownNameError) as info:
        call(det, str(png.path))
    message = str(info.value)
    assert ours in message and "\n" not in message
    assert isinstance(info.value, DeepForestLiteError) and isinstance(info.value, TypeError)


def test_a_deepforest_attribute_is_not_silently_set(det):
    with pytest.raises(AttributeError):
        det.score_thresh = 0.3
    assert not hasattr(det, "score_thresh") and det.score_threshold != 0.3
    det.score_threshold = 0.3  # ours works as before
    assert det.model.score_thresh == pytest.approx(0.3)
    det.notes = "mine"  # other attributes can still be attached
    assert det.notes == "mine"


def test_load_model_accepts_deepforest_model_name(det, tmp_path):
    path = det.save(tmp_path / "m.pt")
    assert dfl.load_model(model_name=str(path), device="cpu").labels == ("Tree",)


def test_deepforest_config_keys_name_ours(tmp_path):
    with pytest.raises(dfl.ConfigError, match=r"'score_thresh'.*score_threshold"):
        dfl.config.from_mapping(dfl.ModelConfig, {"score_thresh": 0.3})
    with pytest.raises(dfl.ConfigError, match=r"'epoch'.*did you mean epochs"):
        dfl.config.from_mapping(dfl.TrainConfig, {"epoch": 3})


def test_deepforest_cli_options_name_ours(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--train", "t.csv", "--output", "m.pt", "--tensorboard"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "--logger tensorboard" in err


def test_every_hint_is_a_clause():
    for table in (DEEPFOREST_HINTS, CLI_HINTS):
        for name, hint in table.items():
            assert hint and not hint.endswith(".") and hint.split()[0] in {"here", "leave"}, name


def test_the_guide_names_every_deepforest_spelling_we_know():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "from-deepforest.md").read_text()
    missing = [name for name in [*DEEPFOREST_HINTS, *CLI_HINTS] if f"`{name}`" not in page]
    assert not missing
