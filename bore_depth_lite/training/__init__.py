"""Two-stage training of BoRe-Depth, as a small sub-package read in data-flow order:

- :mod:`.config`: :class:`TrainConfig` (one object from YAML or the command line down to every
  loss switch) and the named ``PRESETS``;
- :mod:`.data`: the data sets a run reads (a prepared folder, or the cached synthetic world);
- :mod:`.step`: :func:`training_step`, one batch top to bottom, and the student model;
- :mod:`.trainer`: :class:`Trainer`, the loop (state, resume, data parallel, validation);
- :mod:`.callbacks`: what a run writes besides its checkpoint (metrics, TensorBoard, samples);
- :mod:`.two_stage`: stage 1 → teacher → stage 2, the chapters' and the ablation's experiment.

The command line is :mod:`bore_depth_lite.train`.
"""
from ..sampling import StepBatchSampler
from .callbacks import Callback, MetricsCSV, SampleImages, TensorBoardLog, default_callbacks
from .config import PRESETS, TrainConfig
from .data import teacher_dataset, training_datasets
from .step import StudentModel, build_networks, training_step
from .trainer import Trainer
from .two_stage import VARIANTS, run_two_stage, train_phase

__all__ = ["TrainConfig", "PRESETS", "build_networks", "StudentModel", "training_step", "Trainer",
           "StepBatchSampler", "Callback", "MetricsCSV", "TensorBoardLog", "SampleImages", "default_callbacks",
           "training_datasets", "teacher_dataset", "VARIANTS", "train_phase", "run_two_stage"]
