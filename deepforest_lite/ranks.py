"""The processes of one prediction run: one, or many across devices and machines through Lightning Fabric.

:func:`launch` hands the process start-up to Lightning Fabric: with
``devices=2`` on one machine its launcher starts the other process (the same
command line, run again), and under ``torchrun`` or a SLURM ``srun`` step its
cluster environments read the ranks the scheduler gave. :class:`Ranks` is
what the prediction code sees: this process's ``rank`` of ``world_size``, its
device, and the few collective steps prediction needs (share work out, gather
results, wait for the others). A one-process run is ``Ranks.single()`` and
never imports Lightning.

How work is shared: rasters go round-robin (:meth:`Ranks.mine`), and the
windows of one raster in contiguous blocks (:meth:`Ranks.block`), so the
blocks gathered in rank order are the windows in grid order and the merged
boxes equal a one-process run's.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import InvalidInputError, first_sentence

__all__ = ["Ranks", "launch", "launched_as_secondary"]

T = TypeVar("T")

#: environment variables through which launchers name a process's rank (torchrun, SLURM, Lightning's own)
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run.

    Attributes:
        rank: global rank, 0 .. ``world_size - 1``; rank 0 writes what all share
            (the catalogue, a single ``--output`` file) and prints.
        world_size: number of processes in the run (1: a plain run).
        device: the device this process predicts on, e.g. ``"cpu"``, ``"cuda:1"``.
    """

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    _fabric: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def single(cls, device: str = "cpu") -> Ranks:
        """A one-process run on ``device``."""
        return cls(0, 1, device)

    @property
    def main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    @property
    def shared(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    def mine(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``, round-robin: items ``rank, rank + world_size, ...``."""
        return list(items[self.rank :: self.world_size])

    def block(self, n: int, unit: int = 1) -> range:
        """This rank's contiguous block of ``n`` items (indices), cut at multiples of ``unit``.

        The ``ceil(n / unit)`` groups of ``unit`` items are dealt out in
        contiguous runs whose lengths differ by at most one group; with
        ``unit`` = the batch size every rank forwards exactly the batches a
        one-process run would.
        """
        groups = -(-n // unit)
        start = self.rank * groups // self.world_size * unit
        stop = (self.rank + 1) * groups // self.world_size * unit
        return range(min(start, n), min(stop, n))

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in a one-process run."""
        if not self.shared:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for in a one-process run)."""
        if self.shared:
            self._fabric.barrier()


def launch(accelerator: str = "auto", devices: Any = "auto", num_nodes: int = 1, strategy: str = "auto") -> Ranks:
    """Start (or join) the processes of a run through Lightning Fabric and return this one's :class:`Ranks`.

    Args:
        accelerator: Lightning accelerator name: ``"auto"``, ``"cpu"``, ``"gpu"``, ``"cuda"``, ``"mps"``.
        devices: processes per machine: a number, a list of device ids, ``"auto"`` or ``-1`` (all).
        num_nodes: machines taking part.
        strategy: Lightning strategy, e.g. ``"auto"``, ``"ddp"``; processes talk through gloo on CPUs
            and NCCL on GPUs.

    With ``devices > 1`` on one machine this process becomes rank 0 and Fabric
    starts the others by running the same command again; under ``torchrun`` or
    SLURM the ranks come from the environment (the job must start
    ``devices x num_nodes`` processes).

    Raises:
        InvalidInputError: Lightning refuses the settings (e.g. ``gpu`` without a GPU).
    """
    from lightning.fabric import Fabric

    logs = [logging.getLogger(name) for name in ("lightning", "lightning.fabric", "lightning.pytorch", "lightning_utilities")]
    levels = [log.level for log in logs]
    for log in logs:  # no "Initializing distributed: GLOBAL_RANK..." banners: the run's own lines say it
        log.setLevel(logging.WARNING)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
        except Exception as exc:  # MisconfigurationException, ValueError, RuntimeError, ...
            raise InvalidInputError(
                f"Lightning cannot run accelerator={accelerator!r}, devices={devices!r}, num_nodes={num_nodes!r}, "
                f"strategy={strategy!r} here: {first_sentence(exc)}; "
                "change these settings (--accelerator cpu always works)."
            ) from None
        fabric.launch()
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)
    return Ranks(fabric.global_rank, fabric.world_size, str(fabric.device), fabric)


def launched_as_secondary() -> bool:
    """Whether a launcher started this process as a rank other than 0 (read from its environment).

    True before :func:`launch` has run, so checks that run first can stay quiet
    on every rank but the first.
    """
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "0").strip()
        if value.isdigit() and int(value) != 0:
            return True
    return False
