"""The package's exceptions.

Every error raised for a user mistake or an unusable input derives from
:class:`DeepForestLiteError` *and* from the built-in exception a caller would
naturally catch (``ValueError``, ``OSError``, ``KeyError``), so both
``except DeepForestLiteError`` and ``except ValueError`` work.

Messages are one sentence that says what was wrong, the offending value, and
what to do instead.
"""

from __future__ import annotations

__all__ = [
    "DeepForestLiteError",
    "InvalidInputError",
    "ImageReadError",
    "RasterError",
    "AnnotationError",
    "LabelError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "ModelDownloadError",
    "DataNotFoundError",
    "ConfigError",
    "WriteError",
    "MissingLabelsError",
    "UnknownNameError",
    "DeepForestLiteWarning",
    "BoxesClippedWarning",
    "SplitWarning",
    "EvaluationWarning",
    "TrainingWarning",
    "GSDWarning",
    "first_sentence",
]


class DeepForestLiteError(Exception):
    """Base class of every error raised by deepforest_lite."""


class InvalidInputError(DeepForestLiteError, ValueError):
    """An argument has a wrong value, shape or dtype."""


class ConfigError(DeepForestLiteError, ValueError):
    """A configuration file or mapping has unknown keys or bad values."""


class ImageReadError(DeepForestLiteError, OSError):
    """An image or raster file is missing or cannot be decoded."""


class RasterError(DeepForestLiteError, ValueError):
    """A raster was read but cannot be used as it is (band count, dtype, transform)."""


class AnnotationError(DeepForestLiteError, ValueError):
    """An annotation file or box table is malformed."""


class LabelError(DeepForestLiteError, KeyError):
    """A label name or id is not in the label map."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(DeepForestLiteError, ValueError):
    """A checkpoint file cannot be read or does not fit the model."""


class MissingLabelsError(CheckpointError):
    """A checkpoint stores weights but no label names (e.g. DeepForest's plain ``NEON.pt``).

    Attributes:
        num_classes: how many classes the weights predict (``None`` if unknown).
    """

    def __init__(self, message: str, num_classes: int | None = None) -> None:
        super().__init__(message)
        self.num_classes = num_classes


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would need full unpickling (arbitrary code execution) to load."""


class ModelDownloadError(DeepForestLiteError, OSError):
    """A model named on a hub could not be fetched."""


class DataNotFoundError(DeepForestLiteError, FileNotFoundError):
    """A bundled sample data file name is unknown."""


class WriteError(DeepForestLiteError, OSError):
    """An output file or folder cannot be written: read-only, full disk, no permission, or a path clash."""


class UnknownNameError(ConfigError, TypeError, AttributeError):
    """A keyword argument or attribute name this package does not have (often DeepForest's spelling).

    The message names the spelling to use. It is a :class:`ConfigError` (an
    unknown setting), a ``TypeError`` (what Python
    raises for an unexpected keyword) and an ``AttributeError`` (what it raises
    for a missing attribute, so ``hasattr`` keeps working).
    """


# --------------------------------------------------------------------------- warnings
# Every warning the package issues is a DeepForestLiteWarning (a UserWarning), so users can
# filter them by class: ``warnings.simplefilter("ignore", dfl.BoxesClippedWarning)``.


class DeepForestLiteWarning(UserWarning):
    """Base class of the package's warnings: the work went on, but something deserves a look."""


class BoxesClippedWarning(DeepForestLiteWarning):
    """Annotated boxes partly outside their image were clipped to its bounds."""


class SplitWarning(DeepForestLiteWarning):
    """``split_raster`` wrote no tiles, or left boxes out of every tile."""


class EvaluationWarning(DeepForestLiteWarning):
    """Scores may not mean what they seem: boxes without labels, disjoint image paths, capped detections."""


class TrainingWarning(DeepForestLiteWarning):
    """A training choice was made for the user (e.g. the score threshold of a rebuilt head)."""


class GSDWarning(DeepForestLiteWarning):
    """A raster's or a model's GSD is unknown, so imagery is used at its own pixel size."""


def first_sentence(exc: BaseException, limit: int = 240) -> str:
    """A library's exception as a fragment of one of our sentences: one line, at most ``limit`` characters.

    Whitespace is collapsed, a final full stop dropped (our sentence goes on),
    and an exception without a message gives its class name.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit].rstrip(".")
