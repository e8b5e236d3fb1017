"""Data: the synthetic world, the shared on-disk layout, datasets, and real-data parsers.

- :mod:`.synthetic` / :mod:`.render`: the procedural world with exact depth (``render_sequence``);
- :mod:`.layout`: the on-disk layout shared by synthetic and real data; :mod:`.generate` writes it;
- :mod:`.datasets`: ``TrainTripletDataset``, ``TestDataset`` and ``SemanticFrames``; :mod:`.cache`: the
  synthetic world rendered once per configuration; :mod:`.transforms`: augmentations
  that update K;
- :mod:`.kitti`, :mod:`.nyu`, :mod:`.ibims`: parsers and preparation; :mod:`.download`: fetching.
"""
from .datasets import SemanticFrames, TestDataset, TrainTripletDataset
from .synthetic import CLASS_NAMES, SyntheticSequence, render_sequence

__all__ = ["render_sequence", "SyntheticSequence", "CLASS_NAMES", "TrainTripletDataset", "TestDataset", "SemanticFrames"]
