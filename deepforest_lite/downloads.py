"""Weights fetched over the network: Hugging Face hub models and ImageNet backbones. Torch-free at import.

:func:`download_from_hub` gives the folder of a hub model's
``model.safetensors`` (and ``config.json``) in huggingface_hub's cache,
using a cached copy without contacting the hub;
:func:`imagenet_backbone_weights` gives torchvision's ImageNet weights of a
backbone, cached in torch's hub folder. A failure of either is one
:class:`~deepforest_lite.errors.ModelDownloadError` sentence saying how to
get the files by other means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import ModelDownloadError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = ["download_from_hub", "imagenet_backbone_weights"]


def download_from_hub(repo_id: str, revision: str | None) -> Path:
    """``config.json`` and ``model.safetensors`` of a hub model, from huggingface_hub's cache or the hub.

    A model already in the cache is used without contacting the hub (instant
    and offline); otherwise both files are downloaded into the cache.

    Args:
        repo_id: the hub name, e.g. ``"weecology/deepforest-tree"``.
        revision: a branch, tag or commit, or ``None`` for the default branch.

    Returns:
        The cache folder holding ``model.safetensors`` (and ``config.json``
        when the repository has one).

    Raises:
        ModelDownloadError: the model is not cached and cannot be downloaded.
    """
    try:
        return _fetch_from_hub(repo_id, revision, local_files_only=True)
    except Exception:  # not cached (or only partly): download
        pass
    try:
        return _fetch_from_hub(repo_id, revision, local_files_only=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelDownloadError(
            f"Could not fetch {repo_id!r} from the Hugging Face Hub ({reason}); on a machine with internet "
            f"run `hf download {repo_id}` (`huggingface-cli download` in older huggingface_hub) or copy "
            "its model.safetensors and config.json into a folder, and pass that folder: "
            "load_model('path/to/folder')."
        ) from exc


def _fetch_from_hub(repo_id: str, revision: str | None, *, local_files_only: bool) -> Path:
    import logging

    from huggingface_hub import hf_hub_download

    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # no "Retrying in 1s" lines: a failure is one ModelDownloadError
    try:
        fetch: dict[str, Any] = dict(revision=revision, library_name="deepforest-lite", local_files_only=local_files_only)
        weights = cast(str, hf_hub_download(repo_id, "model.safetensors", **fetch))  # a path: no dry_run
        try:
            hf_hub_download(repo_id, "config.json", **fetch)
        except Exception:  # a repository without config.json still has usable weights
            pass
    finally:
        hub_logger.setLevel(level)
    return Path(weights).parent


def imagenet_backbone_weights(backbone: str) -> dict[str, Tensor]:
    """Torchvision's ImageNet weights for ``backbone``, downloaded once into torch's hub cache.

    Args:
        backbone: a torchvision model name, e.g. ``"resnet50"``.

    Returns:
        The backbone's state dict (torchvision's tensor names).

    Raises:
        ModelDownloadError: the weights are not cached and cannot be downloaded.
    """
    import torchvision

    enum = torchvision.models.get_model_weights(backbone).IMAGENET1K_V1
    try:
        return enum.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:
        raise ModelDownloadError(
            f"Could not download the ImageNet weights of {backbone} from {enum.url} "
            f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}); download that file "
            "elsewhere and pass its path as backbone_weights."
        ) from exc
