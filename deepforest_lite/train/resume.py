"""Run folders and resuming: the run identity file, which checkpoint to resume, and what changed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..annotations import AnnotationSet
from ..config import ModelConfig, TrainConfig
from ..errors import InvalidInputError
from ..labels import LabelMap

#: the file in ``output_dir`` that records what a run trains (data, labels, model, settings)
RUN_FILE = "run.json"
#: TrainConfig fields that may change when a run is resumed (length and hardware, not what is learned)
_RESUMABLE_CHANGES = frozenset({"epochs", "workers", "accelerator", "devices", "strategy", "num_nodes", "precision",
                                "logger"})


def _last_checkpoints(output: Path) -> list[Path]:
    folder = output / "checkpoints"
    return sorted(folder.glob("last*.ckpt")) if folder.is_dir() else []


def _check_run_folder(output: Path, resume: str | os.PathLike | bool | None) -> None:
    """Refuse a new run in a folder that holds one, and a resume that would pick an ambiguous checkpoint."""
    if output.exists() and not output.is_dir():
        raise InvalidInputError(f"output_dir {str(output)!r} is a file; give a folder (it is created if missing).")
    last = _last_checkpoints(output)
    if resume is None or resume is False:
        held = last or [p for p in (output / "last.safetensors",) if p.is_file()]
        if held:
            raise InvalidInputError(
                f"output_dir {str(output)!r} already holds a training run ({held[0].relative_to(output)}); "
                "continue it with resume=True (--resume on the command line), or choose another output_dir."
            )
    elif resume is True and len(last) > 1:
        raise InvalidInputError(
            f"Cannot resume: {str(output / 'checkpoints')!r} holds the last checkpoints of several runs "
            f"({', '.join(p.name for p in last)}); pass the one to continue as resume='path/to/last.ckpt', "
            "or start a new run in another output_dir."
        )


def _table_fingerprint(data: AnnotationSet) -> str:
    """A hash of the boxes (image, coordinates, label) and the empty images, independent of row order."""
    table = data.boxes
    columns = [c for c in ("image_path", "xmin", "ymin", "xmax", "ymax", "label") if c in table.columns]
    rows = np.sort(pd.util.hash_pandas_object(table[columns].astype(str), index=False).to_numpy())
    images = sorted(data.empty_images)
    return f"{len(table)}:{_hash_bytes(rows.tobytes() + repr(images).encode())}"


def _hash_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _run_identity(
    train: AnnotationSet, val: AnnotationSet | None, label_map: LabelMap, model_config: ModelConfig,
    config: TrainConfig, crop_size: int | None,
) -> dict[str, Any]:
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUMABLE_CHANGES}
    return {
        "train_data": _table_fingerprint(train),
        "val_data": None if val is None else _table_fingerprint(val),
        "labels": list(label_map.names),
        "model": dataclasses.asdict(model_config),
        "settings": {**settings, "crop_size": crop_size},
        "epochs": config.epochs,
    }


def _write_run_file(output: Path, identity: Mapping[str, Any]) -> None:
    import json

    from ..files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(identity, f, indent=1, default=str)

    atomic_write(output / RUN_FILE, write)


def _read_run_file(output: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads((output / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _checkpoint_for(resume: str | os.PathLike | bool, output: Path) -> Path:
    path = output / "checkpoints" / "last.ckpt" if isinstance(resume, bool) else Path(resume)
    if not path.is_file():
        raise InvalidInputError(
            f"Cannot resume: {str(path)!r} does not exist; resume needs the checkpoints/last.ckpt of an earlier run "
            "with the same output folder."
        )
    return path


def epochs_done(checkpoint: str | os.PathLike) -> int:
    """Epochs a Lightning ``last.ckpt`` has finished (read without loading its weights into memory)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    try:
        # saved at the end of an epoch, which counts as processed before it counts as completed
        return int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(state.get("epoch", -1)) + 1


def describe_resume(output_dir: str | os.PathLike, resume: str | os.PathLike | bool | None,
                    config: TrainConfig) -> str | None:
    """One line saying what ``fit(..., resume=resume)`` would continue ("resuming epoch N of M ..."), or ``None``.

    Raises the same errors as training would for a folder that holds a run
    when ``resume`` is false, or holds nothing (or several runs) to resume.
    """
    output = Path(output_dir)
    _check_run_folder(output, resume)
    if resume is None or resume is False:
        return None
    path = _checkpoint_for(resume, output)
    done = epochs_done(path)
    return f"resuming {str(path)!r}: epoch {done + 1} of {config.epochs} ({done} finished)"


def _resume_path(
    resume: str | os.PathLike | bool | None, output: Path, identity: Mapping[str, Any] | None = None,
    config: TrainConfig | None = None,
) -> str | None:
    """The checkpoint to resume from, after checking it belongs to this run (data, labels, model, settings)."""
    if resume is None or resume is False:
        return None
    path = _checkpoint_for(resume, output)
    stored = _read_run_file(path.parent.parent) if identity is not None else None
    if stored is not None and identity is not None:
        for key, what in (("train_data", "training data"), ("val_data", "validation data"), ("labels", "labels"),
                          ("model", "model settings"), ("settings", "training settings")):
            old, new = stored.get(key), _json_like(identity.get(key))
            if old != new:
                detail = _first_difference(old, new)
                raise InvalidInputError(
                    f"Cannot resume {str(path)!r}: its run used other {what}{detail}; resume with the same "
                    "data, labels, model and settings, or start a new run in another output_dir."
                )
    if config is not None:
        done = epochs_done(path)
        if done >= config.epochs:
            raise InvalidInputError(
                f"Cannot resume {str(path)!r}: it already finished {done} epoch(s) and epochs={config.epochs}; "
                f"give more than {done} epochs to train longer."
            )
    return str(path)


def _json_like(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    import json

    return json.loads(json.dumps(value, default=str))


def _first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f" ({key} was {old.get(key)!r}, now {new.get(key)!r})"
    if isinstance(old, list) and isinstance(new, list):
        return f" ({old} then, {new} now)"
    return ""
