"""DeepForest's names where its users reach for them. Torch-free.

A DeepForest 2.1 user types ``predict_image(path=...)``, ``split_raster(
annotations_file=..., path_to_raster=...)``, ``score_thresh`` or
``model.save_model(...)`` from memory. This module turns those habits into
either a working call (keyword aliases, see :func:`deepforest_keywords`) or a
one-sentence error that names this package's spelling
(:func:`unknown_name_error`), never a bare ``TypeError``/``AttributeError``.

:data:`DEEPFOREST_HINTS` is the one table of DeepForest (and Lightning) names
that are spelled differently here, with what to write instead; the Python
API, the YAML config keys and the command line all read it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .errors import UnknownNameError

__all__ = [
    "DEEPFOREST_HINTS",
    "CLI_HINTS",
    "DeepForestAttributes",
    "check_raster_first",
    "deepforest_keywords",
    "spelling_hint",
    "unknown_keys_hint",
    "unknown_name_error",
]

F = TypeVar("F", bound=Callable[..., Any])

#: DeepForest / Lightning name -> what to do in deepforest_lite instead (a clause that
#: completes "'score_thresh' is DeepForest's name; ...")
DEEPFOREST_HINTS: dict[str, str] = {
    "score_thresh": "here it is score_threshold: det.score_threshold = 0.3 (or --score-threshold)",
    "nms_thresh": "here it is nms_threshold: det.nms_threshold = 0.05",
    "detections_per_img": "here it is detections_per_image: det.detections_per_image = 300",
    "label_dict": "here the class names are labels, in id order: labels=['Alive', 'Dead']",
    "numeric_to_label_dict": "here the class names are labels, in id order: labels=['Alive', 'Dead']",
    "num_classes": "here the classes are labels=['Alive', 'Dead'] and their number is len(labels)",
    "save_model": "here it is save: det.save('model.pt')",
    "use_release": "here dfl.load_model() loads the bundled model and "
    "dfl.load_model('weecology/deepforest-tree') DeepForest's",
    "load_model": "here it is the function dfl.load_model('weecology/deepforest-tree')",
    "plot_results": "here it is plot_predictions: dfl.plot_predictions(image, boxes, 'boxes.png')",
    "return_plot": "here pictures are a separate call: dfl.plot_predictions(image, boxes, 'boxes.png')",
    "color": "here drawing options belong to dfl.plot_predictions, not to prediction",
    "thickness": "here drawing options belong to dfl.plot_predictions, not to prediction",
    "mosaic": "leave it out: the boxes of all windows are always merged into one table",
    "in_memory": "leave it out: windows are always read lazily from the file",
    "dataloader_strategy": "leave it out; workers= sets the processes that read windows",
    "crop_model": "leave it out: there is no crop classifier step",
    "sigma": "leave it out: overlaps are merged by plain NMS at iou_threshold",
    "thresh": "leave it out: overlaps are merged by plain NMS at iou_threshold",
    "numpy_image": "here split_raster reads a raster file: write the array to a PNG or GeoTIFF first",
    "base_dir": "here it is out_dir: split_raster(raster, annotations, out_dir='tiles/')",
    "csv_file": "here the files are train= and val=: det.fit(train='train.csv', val='val.csv') "
    "(or --train / --val)",
    "train_csv": "here it is train=: det.fit(train='train.csv')",
    "max_epochs": "here it is epochs",
    "learning_rate": "here it is lr",
    "gpus": "here it is devices",
    "num_workers": "here it is workers",
    "create_trainer": "here training is one call: det.fit(train='train.csv', epochs=10)",
    "trainer": "here training is one call: det.fit(train='train.csv', epochs=10)",
    "predict_file": "here call predict_image on each image of dfl.read_annotations(csv)",
    "evaluate": "here it is dfl.evaluate_boxes(predictions, ground_truth)",
}

#: DeepForest command-line spellings -> what to give ``deepforest-lite`` instead
CLI_HINTS: dict[str, str] = {
    "--tensorboard": "here it is --logger tensorboard",
    "--disable-checkpoint": "leave it out: every epoch's model is kept in --output-dir",
    "--mode": "leave it out: predict always cuts rasters into windows (an image smaller than "
    "--patch-size is one window)",
    "--save-predictions": "here predictions are written by deepforest-lite predict --output, then evaluated",
    "--score-thresh": "here it is --score-threshold",
    "--nms-thresh": "leave it out: --iou-threshold merges boxes across windows",
    "--config-name": "here it is --config YAML (train and split)",
    "--config-dir": "here it is --config YAML (train and split)",
    "--csv-file": "here it is --train (train) or the GROUND_TRUTH argument (evaluate)",
    "--max-epochs": "here it is --epochs",
    "--learning-rate": "here it is --lr",
    "--gpus": "here it is --devices",
}


#: file name endings of annotation files (never rasters)
ANNOTATION_SUFFIXES: tuple[str, ...] = (".csv", ".xml", ".json", ".shp", ".gpkg", ".geojson", ".fgb")
#: file name endings of images and rasters
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".vrt", ".img")


def _suffix(value: Any) -> str | None:
    import os

    if not isinstance(value, (str, os.PathLike)):
        return None
    return os.path.splitext(os.fspath(value))[1].lower()


def check_raster_first(raster: Any, annotations: Any) -> None:
    """Refuse an annotation file given where the raster belongs (DeepForest's argument order).

    DeepForest's ``split_raster(annotations_file, path_to_raster, ...)`` takes
    the annotations first; this package takes the raster first. Raises
    :class:`~deepforest_lite.errors.InvalidInputError` with a one-line hint
    when ``raster`` names an annotation file (``.csv``, ``.xml``, ``.json``,
    ``.shp``, ``.gpkg``, ``.geojson``).
    """
    from .errors import InvalidInputError

    if _suffix(raster) not in ANNOTATION_SUFFIXES:
        return
    import os

    raster_name = os.fspath(raster)
    if _suffix(annotations) in RASTER_SUFFIXES:
        raise InvalidInputError(
            f"{raster_name!r} is an annotation file where the raster belongs and "
            f"{os.fspath(annotations)!r} a raster where the annotations belong (DeepForest's order); "
            f"give the raster first, then its annotations: {os.fspath(annotations)!r}, {raster_name!r}."
        )
    raise InvalidInputError(
        f"{raster_name!r} is an annotation file where the raster belongs; give the raster "
        "(GeoTIFF, PNG, ...) first, then its annotations."
    )


def spelling_hint(name: str, valid: Iterable[str]) -> str:
    """The end of an error sentence for the unknown ``name``: our spelling, or the valid names.

    DeepForest names of :data:`DEEPFOREST_HINTS` (with a leading ``--`` also
    :data:`CLI_HINTS`) give their hint; other names get the closest valid
    name (``difflib``), or the list of valid names. No final full stop.
    """
    valid = list(valid)
    table = CLI_HINTS if name.startswith("--") else DEEPFOREST_HINTS
    key = name
    if name.startswith("--") and name not in CLI_HINTS and name[2:].replace("-", "_") in DEEPFOREST_HINTS:
        table, key = DEEPFOREST_HINTS, name[2:].replace("-", "_")
    if key in table:
        return f"that is DeepForest's name; {table[key]}"
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}"
    return f"the valid names are {', '.join(valid)}"


def unknown_keys_hint(unknown: Iterable[str], valid: Iterable[str]) -> str:
    """`` ('key': hint)`` for the first DeepForest name among ``unknown`` (else the first key)."""
    unknown = list(unknown)
    if not unknown:
        return ""
    key = next((k for k in unknown if k in DEEPFOREST_HINTS), unknown[0])
    return f" ({key!r}: {spelling_hint(key, valid)})"


def unknown_name_error(where: str, name: str, valid: Iterable[str], kind: str = "keyword") -> UnknownNameError:
    """An :class:`UnknownNameError` for ``name`` given to ``where``, naming our spelling."""
    return UnknownNameError(f"{where} has no {kind} {name!r}; {spelling_hint(name, valid)}.")


class DeepForestAttributes:
    """Mixin: DeepForest's attribute names (``score_thresh``, ``label_dict``...) raise an error that names ours.

    Reading such a name, or setting it (``det.score_thresh = 0.3`` would
    otherwise do nothing), raises :class:`~deepforest_lite.errors.UnknownNameError`
    unless the class has it; every other missing attribute is a plain ``AttributeError``.
    """

    def __getattr__(self, name: str) -> Any:
        # only called for names the instance and class lack
        where = type(self).__name__
        if name.startswith("_") or name not in DEEPFOREST_HINTS:
            raise AttributeError(f"'{where}' object has no attribute {name!r}")
        raise unknown_name_error(where, name, [], kind="attribute")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DEEPFOREST_HINTS and not hasattr(type(self), name):
            raise unknown_name_error(type(self).__name__, name, [], kind="attribute")
        super().__setattr__(name, value)


def deepforest_keywords(
    aliases: Mapping[str, str] | None = None, extra_names: Callable[[], Iterable[str]] | None = None
) -> Callable[[F], F]:
    """Decorate a function so DeepForest's keyword names work or get a "did you mean" error.

    Args:
        aliases: DeepForest keyword -> the parameter it stands for here (e.g.
            ``{"path": "image"}``); the value is passed under our name. Giving
            both (or the parameter positionally as well) is an error.
        extra_names: for a function with ``**options``, a callable returning
            the names those options accept (e.g. a dataclass's fields); any
            other keyword is refused with a hint.

    Unknown keywords raise :class:`~deepforest_lite.errors.UnknownNameError`
    (also a ``TypeError``) whose message names the spelling to use.
    """
    aliases = dict(aliases or {})

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        params = [p for p in signature.parameters.values() if p.name != "self"]
        positional = [
            p.name for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        has_options = any(p.kind == p.VAR_KEYWORD for p in params)
        where = f"{func.__qualname__.replace('.__init__', '')}()"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for alias, ours in aliases.items():
                if alias not in kwargs:
                    continue
                given_positionally = ours in positional and positional.index(ours) < len(args)
                if ours in kwargs or given_positionally:
                    raise UnknownNameError(
                        f"{where} got both {alias}= (DeepForest's name) and {ours}; give the "
                        f"{ours} once."
                    )
                kwargs[ours] = kwargs.pop(alias)
            valid = named + (list(extra_names()) if extra_names is not None else [])
            for key in kwargs:
                passes_through = has_options and (extra_names is None or key in valid)
                if key not in named and not passes_through:
                    raise unknown_name_error(where, key, valid + list(aliases))
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
