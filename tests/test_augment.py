"""Augmentation presets keep boxes consistent with pixels."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

import deepforest_lite as dfl
from deepforest_lite.augment import PRESETS, apply_augmentation, bbox_params, build_augmentation


def _image_with_box():
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:30, 5:25] = 255  # box (5, 10, 25, 30)
    return image, np.array([[5, 10, 25, 30]], np.float32)


@pytest.mark.parametrize("name", PRESETS)
def test_boxes_follow_the_pixels(name):
    image, boxes = _image_with_box()
    pipeline = build_augmentation(name, min_box_size=2)
    for seed in range(10):
        np.random.seed(seed)
        pipeline.set_random_seed(seed)
        out, out_boxes, labels = apply_augmentation(pipeline, image, boxes, [1])
        assert labels.tolist() == [1]
        bright = np.argwhere(out.max(axis=2) > 100)
        (y0, x0), (y1, x1) = bright.min(axis=0), bright.max(axis=0) + 1
        if name in ("none", "flip"):  # geometric transforms only: exact
            np.testing.assert_allclose(out_boxes[0], [x0, y0, x1, y1], atol=1e-4)
        else:
            np.testing.assert_allclose(out_boxes[0], [x0, y0, x1, y1], atol=3)


def test_flip_mirrors_the_box_exactly():
    image, boxes = _image_with_box()
    pipeline = A.Compose([A.HorizontalFlip(p=1)], bbox_params=bbox_params())
    _, out_boxes, _ = apply_augmentation(pipeline, image, boxes, [0])
    np.testing.assert_allclose(out_boxes, [[80 - 25, 10, 80 - 5, 30]])


def test_crop_pads_small_images_and_drops_tiny_boxes():
    image, _ = _image_with_box()
    boxes = np.array([[5, 10, 25, 30], [70, 50, 71, 51]], np.float32)  # the second is 1 px
    pipeline = build_augmentation("none", crop_size=100, min_box_size=2)
    out, out_boxes, labels = apply_augmentation(pipeline, image, boxes, [0, 1])
    assert out.shape == (100, 100, 3)
    assert labels.tolist() == [0]
    np.testing.assert_allclose(out_boxes, [[5, 10, 25, 30]])


def test_empty_images_pass_through():
    out, boxes, labels = apply_augmentation(build_augmentation("strong"), np.zeros((50, 50, 3), np.uint8), np.zeros((0, 4)), [])
    assert out.shape == (50, 50, 3) and boxes.shape == (0, 4) and labels.shape == (0,)


def test_custom_compose_must_handle_boxes():
    good = A.Compose([A.VerticalFlip(p=1)], bbox_params=bbox_params())
    assert build_augmentation(good) is good
    with pytest.raises(dfl.InvalidInputError, match="bbox_params=A.BboxParams"):
        build_augmentation(A.Compose([A.VerticalFlip(p=1)]))
    with pytest.raises(dfl.InvalidInputError, match="bbox_params=A.BboxParams"):
        build_augmentation(A.Compose([A.VerticalFlip(p=1)], bbox_params=A.BboxParams(format="coco", label_fields=["labels"])))
    with pytest.raises(dfl.InvalidInputError, match=r"Unknown augmentation 'wild'; choose one of \['none'"):
        build_augmentation("wild")


def _bright_box(image):
    bright = np.argwhere(image.max(axis=2) > 100)
    (y0, x0), (y1, x1) = bright.min(axis=0), bright.max(axis=0) + 1
    return [x0, y0, x1, y1]


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_random_rescale_scales_objects_about_the_centre(factor):
    """A fixed zoom s maps (x, y) to c + s (x - c): the box and the pixels move together, the canvas stays."""
    image = np.zeros((80, 80, 3), np.uint8)
    image[30:50, 20:40] = 255  # box (20, 30, 40, 50); centre of the canvas (40, 40)
    pipeline = build_augmentation("none", scale_range=(factor, factor), scale_p=1.0)
    out, out_boxes, labels = apply_augmentation(pipeline, image, np.array([[20, 30, 40, 50]], np.float32), [3])
    assert out.shape == image.shape and labels.tolist() == [3]
    expected = [40 + factor * (20 - 40), 40 + factor * (30 - 40), 40 + factor * (40 - 40), 40 + factor * (50 - 40)]
    np.testing.assert_allclose(out_boxes[0], expected, atol=0.5)
    np.testing.assert_allclose(_bright_box(out), expected, atol=1.5)


def test_multiscale_preset_zooms_within_its_range():
    pipeline = build_augmentation("multiscale")
    affines = [t for t in pipeline.transforms if isinstance(t, A.Affine)]
    assert len(affines) == 1 and affines[0].p == 0.5
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255  # a 20 px box at the centre: never clipped for zooms up to 2x
    sides = set()
    for seed in range(40):
        pipeline.set_random_seed(seed)
        _, out_boxes, _ = apply_augmentation(pipeline, image, np.array([[40, 40, 60, 60]], np.float32), [0])
        sides.add(round(float(out_boxes[0, 2] - out_boxes[0, 0]), 1))
    assert min(sides) >= 20 * 0.5 - 0.5 and max(sides) <= 20 * 2.0 + 0.5
    assert 20.0 in sides and len(sides) > 5  # unzoomed half the time, and a spread of zooms otherwise


@pytest.mark.parametrize("bad", [(2.0, 1.0), (0, 1), (1,), "big", (0.5, float("inf"))])
def test_bad_scale_range_is_refused(bad):
    with pytest.raises(dfl.InvalidInputError, match="scale_range must"):
        build_augmentation("default", scale_range=bad)
    with pytest.raises(dfl.InvalidInputError, match="scale_p must"):
        build_augmentation("default", scale_range=(0.5, 2), scale_p=1.5)


def _augmented(pipeline, image, n=6):
    boxes = np.array([[10, 10, 40, 30]], np.float32)
    return [apply_augmentation(pipeline, image, boxes, [0]) for _ in range(n)]


def _same(a, b):
    return all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_a_seeded_run_augments_the_same_way_every_time():
    # albumentations keeps its own random state; without seeding it from torch's seed two runs
    # with the same seed would train on different augmentations
    import torch

    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    torch.manual_seed(3)
    first = _augmented(build_augmentation("robust"), image)
    torch.manual_seed(3)
    again = _augmented(build_augmentation("robust"), image)
    torch.manual_seed(4)
    other = _augmented(build_augmentation("robust"), image)
    assert _same(first, again)
    assert not _same(first, other)
    assert not all(np.array_equal(first[0][0], x[0]) for x in first[1:])  # the stream advances within a run


def test_a_pipeline_with_its_own_seed_keeps_it():
    import torch

    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)

    def own():
        return A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)], bbox_params=bbox_params(), seed=7)

    torch.manual_seed(1)
    a = _augmented(own(), image)
    torch.manual_seed(2)
    b = _augmented(own(), image)
    assert _same(a, b)
