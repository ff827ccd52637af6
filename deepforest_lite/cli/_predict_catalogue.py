"""``deepforest-lite predict --output-dir``: the catalogue ``DIR/index.csv`` (or ``index.gpkg``) of a survey run.

One :class:`~deepforest_lite.survey.CatalogueRow` per raster: those predicted in this run
and those skipped because an earlier run wrote their file (their rows kept from the
earlier catalogue where it has them).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..detector import Detector
    from ..survey import CatalogueRow
    from ._predict_plan import Skipped

__all__ = ["Catalogue"]


class Catalogue:
    """The rows of DIR/index.csv (or .gpkg): this run's rasters and those kept from an earlier run."""

    def __init__(self, args: argparse.Namespace, skipped: list[Skipped]) -> None:
        from ..survey import read_catalogue

        self.path = os.path.join(args.output_dir, f"index.{args.index}")
        self.earlier = read_catalogue(self.path)
        self.model = args.model or "default"
        self.engine = args.engine
        self.rows: dict[str, CatalogueRow] = {}
        for raster, target, _ in skipped:
            self._skipped(raster, target)

    def _skipped(self, raster: str, target: str) -> None:
        from ..survey import CatalogueRow

        before = self.earlier.get(raster, {})
        crs, outline = before.get("crs", ""), before.get("footprint", "")
        if not outline and os.path.isfile(raster):
            crs, outline = _outline(raster)
        self.rows[raster] = CatalogueRow(
            raster=raster, output=target, status="skipped", boxes=_count_boxes(target),
            windows=_int_or_none(before.get("windows")), seconds=None, crs=str(crs or ""),
            footprint=str(outline or ""), model=str(before.get("model", "")), engine=str(before.get("engine", "")),
        )

    def add(self, raster: str, target: str, source: Any, table: pd.DataFrame, seconds: float, detector: Detector) -> None:
        """The row of a raster predicted in this run (``source``: its ``RasterSource``; ``seconds``: wall clock)."""
        from ..survey import CatalogueRow, footprint

        crs, outline = footprint(source)
        self.rows[raster] = CatalogueRow(
            raster=raster, output=target, status="resumed" if table.attrs.get("resumed_windows") else "done",
            boxes=len(table), windows=table.attrs.get("windows"), seconds=round(seconds, 3), crs=crs,
            footprint=outline, model=self.model, engine=f"{self.engine} on {detector.device}",
        )

    def absorb(self, parts: list[dict[str, CatalogueRow]], order: list[str]) -> None:
        """Take the rows every rank made (``Ranks.gather`` of ``rows``): skipped rasters first, then ``order``."""
        found: dict[str, CatalogueRow] = {}
        for part in parts:
            found.update(part)
        skipped = [raster for raster, row in self.rows.items() if row.status == "skipped"]
        self.rows = {raster: found[raster] for raster in skipped + order if raster in found}

    def write(self) -> None:
        """Write the catalogue (nothing when it has no rows)."""
        from ..survey import write_catalogue

        if self.rows:
            write_catalogue(list(self.rows.values()), self.path)

    def outputs(self) -> list[str]:
        """Every row's box file, in the catalogue's order."""
        return [row.output for row in self.rows.values()]


def _outline(raster: str) -> tuple[str, str]:
    from ..rasterfile import raster_header
    from ..survey import footprint

    return footprint(raster_header(raster))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _count_boxes(path: str) -> int:
    if path.endswith(".csv"):
        import pandas as pd

        return len(pd.read_csv(path, usecols=["xmin"]))
    import pyogrio

    return int(pyogrio.read_info(path)["features"])
