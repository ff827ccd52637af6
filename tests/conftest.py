"""Shared fixtures. Tests never touch the network and never train on OSBS_029."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# ONNX exports made by engine="auto" go to a scratch cache, not the user's ~/.cache
os.environ.setdefault("DEEPFOREST_LITE_CACHE", os.path.join(__import__("tempfile").gettempdir(), "dfl_test_cache"))

from pathlib import Path  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def import_benchmark(name: str) -> Any:
    """``benchmarks/<name>.py`` as a module, for tests that share its builders (the scripts are no
    package; loaded by path as ``benchmark_<name>``, so nothing is added to ``sys.path``)."""
    import importlib.util
    import sys

    module_name = f"benchmark_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None, name
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def doc_table(page: str, first_header: str) -> list[dict[str, str]]:
    """The one Markdown table of ``docs/<page>`` whose first header cell is ``first_header``.

    Returns one dict per body row, header text -> cell text, with the emphasis and code marks
    (``*``, `````) stripped, so tests can check the figures a page records against a fresh run.
    """
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in (REPO / "docs" / page).read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip().replace("**", "").strip("*`").replace("`", "") for c in line.strip().strip("|").split("|")]
        if current is None:
            current = [cells]
            if cells[0] == first_header:
                tables.append(current)
        elif not set("".join(cells)) <= set("-: "):  # skip the |---| line
            current.append(cells)
    assert len(tables) == 1, f"docs/{page}: {len(tables)} tables headed {first_header!r}, expected one"
    header, *rows = tables[0]
    return [dict(zip(header, row)) for row in rows]


def doc_figures(cell: str) -> list[float]:
    """The numbers in a table cell, in order: ``"0.745 / 0.623 / 0.679"`` -> [0.745, 0.623, 0.679]; ``"1,942"`` -> [1942]."""
    import re

    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", cell)]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full sample data folder beside the checkout; tests that need it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available on this machine")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Run torch on one thread for the test: tiny models run fastest so, and several threads crawl
    when other jobs share the CPU. Modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_detector():
    """Factory for small, fast, randomly initialised detectors (ResNet-18, 32-channel FPN, native scale)."""

    def make(labels=("Tree",), seed: int = 0, **options):
        import torch

        import deepforest_lite as dfl

        torch.manual_seed(seed)
        # Plain heads unless asked: GroupNorm with 32 channels in 32 groups cannot normalise the 1 x 1 P7
        # maps of the 96 px test images at batch size 1 (one value per group).
        settings = {"resize": "scale", "fpn_channels": 32, "head_norm": "none", "device": "cpu", **options}
        return dfl.Detector(labels=list(labels), backbone=settings.pop("backbone", "resnet18"), **settings)

    return make


@pytest.fixture(scope="session")
def boxy_detector(tiny_detector):
    """Factory for tiny random detectors that do find boxes: ``boxy_detector(labels=("Tree",), seed=5,
    per_image=20, topk_candidates=50, **options)`` (options as for ``tiny_detector``). Every class
    logit's bias is raised to 0.5, so scores spread over (0, 1) and boxes pass the score threshold;
    ``per_image`` boxes at most per window."""

    def make(labels=("Tree",), seed: int = 5, per_image: int = 20, topk_candidates: int = 50, **options):
        import torch

        det = tiny_detector(list(labels), seed=seed, topk_candidates=topk_candidates, **options)
        det.detections_per_image = per_image
        with torch.no_grad():
            det.model.head.classification_head.cls_logits.bias.fill_(0.5)
        return det

    return make


@pytest.fixture
def model_file(boxy_detector, tmp_path) -> str:
    """Path of a saved :func:`boxy_detector` checkpoint (seed 5, 20 boxes per window) that looks at
    windows at half resolution (``scale_factor=0.5``), to keep CLI tests fast."""
    return str(boxy_detector(scale_factor=0.5).save(tmp_path / "model.pt"))


# ---------------------------------------------------------------------------
# Synthetic rasters with objects planted at known pixel boxes
# ---------------------------------------------------------------------------

from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

#: default planted boxes for ``make_raster`` (xmin, ymin, xmax, ymax in px), at least 50 px from the edges of 300 x 200 px
DEFAULT_PLANTED = ((50, 50, 80, 80), (100, 80, 140, 110), (180, 50, 200, 90), (210, 110, 250, 150))


class PlantedRaster(NamedTuple):
    """What ``make_raster`` wrote.

    Attributes:
        path: the file.
        boxes: box table (``boxes.ANNOTATION_COLUMNS``, label ``"Tree"``,
            ``image_path`` = str(path)) of the planted objects, in pixels
            (origin top-left, x = column, xmax/ymax exclusive).
        data: the pixel values written, shape ``(bands, height, width)``,
            file dtype; an alpha band, if any, is the last band.
        transform: the affine transform written (pixel -> map).
        crs: the CRS string written, or ``None``.
    """

    path: Path
    boxes: Any
    data: np.ndarray
    transform: Any
    crs: str | None


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., PlantedRaster]:
    """Factory writing a small raster into ``tmp_path``; returns a :class:`PlantedRaster`.

    Signature (all keyword arguments optional)::

        make_raster(name="raster.tif", *, width=300, height=200,
                    boxes=DEFAULT_PLANTED, labels="Tree", bands=3, dtype="uint8",
                    tiled=False, blocksize=64, compress=None,
                    crs="EPSG:32617", origin=(400000.0, 3300000.0), pixel_size=(0.5, 0.25),
                    transform=None, nodata=None, border=0, nodata_regions=(),
                    alpha=False, scale=None, offset=None, data=None, seed=0)

    Pixels: a textured dark background (values 20..80, seeded), each planted
    box filled with 230 (band 1), 220 (band 2), 210 (band 3), extra bands
    120. Values are then stored as ``value * scale + offset`` in ``dtype``;
    defaults: uint8 ``(1, 0)``, other unsigned ints ``(200, 1000)`` (so
    values exceed 255 and a plain cast would wrap), signed ints ``(100, 0)``,
    floats ``(1/255, 0)`` (reflectance in [0, 1]). ``boxes=()`` plants
    nothing; ``labels`` is one name for all boxes or one per box. ``data``
    (``(bands, height, width)``, any dtype) replaces all of this and is
    written as given (``boxes`` then only fills the returned table).

    No-data: ``border`` px along every edge and each ``nodata_regions`` box
    (xmin, ymin, xmax, ymax) are set to ``nodata`` in every band (0 when
    ``nodata`` is None) and to 0 in the alpha band. Planted boxes must not
    touch them. ``alpha=True`` adds an alpha band (255 elsewhere).

    File: GTiff for ``.tif``/``.tiff`` (``tiled`` with square ``blocksize``
    blocks, else striped; ``compress`` e.g. ``"deflate"``, ``"lzw"``), PNG for
    ``.png`` (no CRS), JPEG for ``.jpg`` (no CRS, lossy: don't compare
    pixels exactly). Georeferencing: ``transform`` if given, else
    ``Affine(px, 0, x0, 0, -py, y0)`` for ``origin=(x0, y0)`` (top-left corner) and
    ``pixel_size=(px, py)`` (non-square allowed);
    ``crs=None`` writes none.
    """
    import rasterio
    from affine import Affine

    from deepforest_lite.boxes import make_boxes

    def _make(
        name: str = "raster.tif",
        *,
        width: int = 300,
        height: int = 200,
        boxes: Sequence[Sequence[float]] = DEFAULT_PLANTED,
        labels: str | Sequence[str] = "Tree",
        bands: int = 3,
        dtype: str = "uint8",
        tiled: bool = False,
        blocksize: int = 64,
        compress: str | None = None,
        crs: str | None = "EPSG:32617",
        origin: tuple[float, float] = (400000.0, 3300000.0),
        pixel_size: tuple[float, float] = (0.5, 0.25),
        transform: Any = None,
        nodata: float | None = None,
        border: int = 0,
        nodata_regions: Sequence[Sequence[int]] = (),
        alpha: bool = False,
        scale: float | None = None,
        offset: float | None = None,
        data: np.ndarray | None = None,
        seed: int = 0,
    ) -> PlantedRaster:
        path = tmp_path / name
        suffix = path.suffix.lower()
        driver = {".tif": "GTiff", ".tiff": "GTiff", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}[suffix]
        coords = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        names = [labels] * len(coords) if isinstance(labels, str) else list(labels)
        holes = [(0, 0, width, border), (0, height - border, width, height),
                 (0, 0, border, height), (width - border, 0, width, height)] if border else []
        holes += [tuple(r) for r in nodata_regions]
        if data is None:
            rng = np.random.default_rng(seed)
            base = rng.integers(20, 81, size=(bands, height, width)).astype(np.float64)
            fill = [230.0, 220.0, 210.0] + [120.0] * max(0, bands - 3)
            for x0, y0, x1, y1 in coords.astype(int):
                for x0h, y0h, x1h, y1h in holes:
                    if x0 < x1h and x0h < x1 and y0 < y1h and y0h < y1:
                        raise ValueError(f"planted box {(x0, y0, x1, y1)} touches no-data area {(x0h, y0h, x1h, y1h)}")
                for b in range(bands):
                    base[b, y0:y1, x0:x1] = fill[b]
            kind = np.dtype(dtype).kind
            default = {"u": (200.0, 1000.0) if dtype != "uint8" else (1.0, 0.0), "i": (100.0, 0.0), "f": (1 / 255, 0.0)}[kind]
            s = default[0] if scale is None else scale
            o = default[1] if offset is None else offset
            values = base * s + o
            if kind != "f":
                values = np.rint(values)
            data = values.astype(dtype)
            for x0h, y0h, x1h, y1h in holes:
                data[:, y0h:y1h, x0h:x1h] = 0 if nodata is None else nodata
        data = np.asarray(data)
        count = data.shape[0]
        if alpha:
            mask = np.full((1, height, width), 255, dtype=data.dtype)
            for x0h, y0h, x1h, y1h in holes:
                mask[0, y0h:y1h, x0h:x1h] = 0
            data = np.concatenate([data, mask])
        if transform is None:
            # north-up: x grows with columns, y falls with rows (rasterio's from_origin)
            transform = Affine(pixel_size[0], 0.0, origin[0], 0.0, -pixel_size[1], origin[1])
        profile: dict[str, Any] = dict(
            driver=driver, width=width, height=height, count=data.shape[0], dtype=str(data.dtype)
        )
        if driver == "GTiff":
            profile.update(crs=crs, transform=transform, nodata=nodata)
            if tiled:
                profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
            if compress:
                profile.update(compress=compress)
            # GDAL would take a 4-band uint8 file as RGBA unless told otherwise
            profile.update(photometric="RGB" if count == 3 else "MINISBLACK")
            if alpha:
                profile.update(alpha="YES")
        elif nodata is not None:
            profile.update(nodata=nodata)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data)
        table = make_boxes(coords, names, image_path=str(path))
        return PlantedRaster(path, table, data, transform, crs if driver == "GTiff" else None)

    return _make


def write_planted_images(folder, n_images: int = 2, size: int = 128, per_image: int = 4, seed: int = 0):
    """Write PNGs with coloured squares (Red / Blue classes) on a noisy grey background.

    Returns the annotation table (DeepForest CSV columns); the CSV is written to
    ``folder / "train.csv"`` with image paths relative to ``folder``.
    """
    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        image = rng.integers(90, 140, size=(size, size, 3), dtype=np.uint8)
        placed: list[tuple[int, int, int]] = []
        for j in range(per_image):
            for _ in range(500):
                s = int(rng.integers(16, 26))
                x, y = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
                if all(x + s + 4 < a or a + b + 4 < x or y + s + 4 < c or c + b + 4 < y for a, c, b in placed):
                    break
            placed.append((x, y, s))
            label = "Red" if (i + j) % 2 == 0 else "Blue"
            image[y : y + s, x : x + s] = (220, 40, 40) if label == "Red" else (40, 40, 220)
            rows.append((f"img{i}.png", float(x), float(y), float(x + s), float(y + s), label))
        Image.fromarray(image).save(folder / f"img{i}.png")
    table = pd.DataFrame(rows, columns=["image_path", "xmin", "ymin", "xmax", "ymax", "label"])
    table.to_csv(folder / "train.csv", index=False)
    return table


@pytest.fixture
def planted_images(tmp_path):
    """Factory: ``planted_images(n_images=2, size=128, per_image=4, seed=0)`` -> (folder, table)."""

    def make(**kwargs):
        folder = tmp_path / f"planted{kwargs.get('seed', 0)}"
        folder.mkdir(exist_ok=True)
        return folder, write_planted_images(folder, **kwargs)

    return make


# --------------------------------------------------------------------------- engines compared box for box

from deepforest_lite.boxes import pairwise_iou  # noqa: E402

BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]


@pytest.fixture(scope="session")
def bundled():
    """The bundled tree-lite model on the CPU."""
    import deepforest_lite as dfl

    return dfl.load_model(None, device="cpu")


@pytest.fixture
def engine_cache(tmp_path_factory, monkeypatch):
    """An ONNX cache of the test session (``DEEPFOREST_LITE_CACHE``), not the user's."""
    monkeypatch.setenv("DEEPFOREST_LITE_CACHE", str(tmp_path_factory.getbasetemp() / "engine_cache"))


def assert_same_boxes(a: Any, b: Any, near_ties: float = 0.0) -> None:
    """Box for box: each box of ``a`` has its own partner in ``b`` with IoU >= 0.999 (zero-area boxes:
    corners within 0.01 px), the same label and a score within 1e-4. Pairs are found by best IoU, as
    boxes whose scores tie within float noise may come in either order.

    ``near_ties``: the fraction of boxes allowed to differ. Only for a merge over a thousand boxes whose
    scores tie to 1e-4 (a random network's saturated scores), where float noise of 1e-6 between the
    engines flips which of two tied boxes survives; everything else must agree box for box.
    """
    allowed = int(near_ties * len(a))
    assert abs(len(a) - len(b)) <= allowed and len(a) > 0
    ca, cb = a[BOX_COLUMNS].to_numpy(np.float64), b[BOX_COLUMNS].to_numpy(np.float64)
    ious = pairwise_iou(ca, cb)
    same_corners = np.abs(ca[:, None, :] - cb[None, :, :]).max(axis=2) < 0.01
    ious = np.where(same_corners, 1.0, ious)
    partner = ious.argmax(axis=1)
    matched = ious[np.arange(len(a)), partner] >= 0.999
    matched &= a["label"].to_numpy() == b["label"].to_numpy()[partner]
    matched &= np.abs(a["score"].to_numpy() - b["score"].to_numpy()[partner]) <= 1e-4
    assert (~matched).sum() <= allowed, f"{(~matched).sum()} of {len(a)} boxes differ"
    assert len(set(partner[matched].tolist())) == matched.sum(), "two boxes share one partner"


@pytest.fixture(scope="session")
def deepforest_resnet50(tmp_path_factory):
    """A DeepForest-layout (Hugging Face folder) ResNet-50 RetinaNet with random weights that finds many boxes;
    the one ``benchmarks/engine_settings.py --model deepforest-r50`` measures."""
    return import_benchmark("engine_settings").deepforest_r50_folder(tmp_path_factory.mktemp("deepforest_r50"))
