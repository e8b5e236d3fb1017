"""Checkpoints: one format, one writer, one safe loader, and the released checkpoints beside them.

- :mod:`.io`: :func:`safe_load` (``torch.load(weights_only=True)`` with one-line errors) and
  :func:`atomic_save`, the only places the package reads or writes a checkpoint file;
- :mod:`.ours`: our format (networks + configuration + plain ``extra`` values + an optional
  training state that a run resumes from), :func:`save_checkpoint` and the loaders;
- :mod:`.released`: the authors' released Lightning ``.ckpt`` → our networks, strictly, and back;
- :mod:`.released_layout`: a stand-in checkpoint in the released layout (the parity fixture).

Data flows one way: ``models`` know nothing of files; this package builds them from files.
"""
from .io import CheckpointError, atomic_save, check_finite_state, safe_load, shorten_list
from .ours import (FORMAT, VERSION, checkpoint_dict, load_any_depthnet, load_depthnet, load_posenet, read_checkpoint,
                   save_checkpoint, save_depthnet)
from .released import (LoadReport, load_released_depthnet, load_released_posenet, read_released_state_dict,
                       to_released_state_dict)

__all__ = ["CheckpointError", "atomic_save", "safe_load", "check_finite_state", "shorten_list", "FORMAT", "VERSION",
           "checkpoint_dict", "save_checkpoint", "save_depthnet", "read_checkpoint", "load_depthnet", "load_posenet",
           "load_any_depthnet", "LoadReport", "load_released_depthnet", "load_released_posenet",
           "read_released_state_dict", "to_released_state_dict"]
