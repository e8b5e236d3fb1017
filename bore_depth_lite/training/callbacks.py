"""What a training run writes besides its checkpoint: metrics, TensorBoard events, sample figures.

Each is a callback of :class:`~bore_depth_lite.training.trainer.Trainer`, called on the main
process only, after the checkpoint of the epoch is written (so no log gets ahead of it):

- :class:`MetricsCSV`: ``metrics.csv``, one row per epoch, rewritten atomically from the
  trainer's history (after a resume: the checkpoint's history, never rows of a killed run);
- :class:`TensorBoardLog`: event files in ``tensorboard/`` when TensorBoard is installed;
- :class:`SampleImages`: ``samples/step_XXXXXXX.png``, test images over predicted inverse depth.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..fileio import atomic_write, atomic_write_text

__all__ = ["Callback", "RunView", "MetricsCSV", "TensorBoardLog", "SampleImages", "default_callbacks"]


class RunView(Protocol):
    """What a callback may read of the run (a :class:`~.trainer.Trainer` is one)."""

    out: Path
    history: list[dict[str, float]]
    val_set: Dataset | None
    depth_net: nn.Module
    device: torch.device


class Callback:
    """Hooks of a training run; every method may be left out."""

    def on_fit_start(self, trainer: "RunView") -> None:
        """Before the first step of this process (a fresh run or a resumed one)."""

    def on_epoch_end(self, trainer: "RunView", row: dict[str, float]) -> None:
        """After each epoch's validation and checkpoint; ``row`` is the epoch's history entry."""


class MetricsCSV(Callback):
    def on_fit_start(self, trainer: "RunView") -> None:
        self.write(trainer)

    def on_epoch_end(self, trainer: "RunView", row: dict[str, float]) -> None:
        self.write(trainer)

    @staticmethod
    def write(trainer: "RunView") -> None:
        path = trainer.out / "metrics.csv"
        if not trainer.history:
            path.unlink(missing_ok=True)
            return
        names = list(dict.fromkeys(k for row in trainer.history for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=names)
        writer.writeheader()
        writer.writerows(trainer.history)
        atomic_write_text(path, text.getvalue())


class TensorBoardLog(Callback):
    """Scalars of every epoch; does nothing when TensorBoard is not installed (it is optional)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def on_fit_start(self, trainer: "RunView") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(trainer.out / "tensorboard"))

    def on_epoch_end(self, trainer: "RunView", row: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "step":
                self.writer.add_scalar(key, value, row["step"])
        self.writer.flush()


class SampleImages(Callback):
    """``samples/step_XXXXXXX.png``: the first ``count`` test images over their predicted inverse depth."""

    def __init__(self, count: int = 4) -> None:
        self.count = count

    @torch.no_grad()
    def on_epoch_end(self, trainer: "RunView", row: dict[str, float]) -> None:
        if trainer.val_set is None:
            return
        from ..evaluate import predict_depth
        from ..plotting import Panel, colorize_depth, panel_figure

        step = int(row["step"])
        trainer.depth_net.eval()
        items = [trainer.val_set[i] for i in range(min(self.count, len(trainer.val_set)))]
        depths = [predict_depth(trainer.depth_net, item["image"][None].to(trainer.device))[0, 0].float().cpu().numpy()
                  for item in items]
        fig = panel_figure([[Panel(item["image"].permute(1, 2, 0).numpy()) for item in items],
                            [Panel(colorize_depth(depth)) for depth in depths]], panel_size=(2.5, 2.0),
                           suptitle=f"step {step}: test images and predicted inverse depth")
        folder = trainer.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"step_{step:07d}.png", lambda f: fig.savefig(f, format="png", dpi=80))


def default_callbacks() -> list[Callback]:
    """What every run writes: metrics.csv, TensorBoard events (if installed), sample figures."""
    return [MetricsCSV(), TensorBoardLog(), SampleImages()]
