"""Training: one step learns, an interrupted run resumes bit for bit, DDP equals one process."""
from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bore_depth_lite.data.generate import SyntheticConfig
from bore_depth_lite.data.cache import ensure_synthetic
from bore_depth_lite.training import StepBatchSampler, TrainConfig, Trainer, training_datasets


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    config = SyntheticConfig(preset="indoor", height=64, width=64, seed=0, train_scenes=2, val_scenes=0,
                             frames_per_scene=5, test_scenes=1, test_frames_per_scene=2)
    return ensure_synthetic(config, cache)


def tiny_config(root, out, **overrides) -> TrainConfig:
    values = dict(data_root=str(root), val_protocol="synthetic_indoor", model="tiny", height=64, width=64,
                  batch_size=2, steps=4, steps_per_epoch=2,
                  val_images=2, out_dir=str(out), lr=1e-3)
    values.update(overrides)
    return TrainConfig(**values)


def run(config: TrainConfig, resume: bool = False) -> Trainer:
    # One thread in every process (the trainer leaves the thread count to its caller): runs with
    # other thread counts sum in another order, and the runs compared here must agree to 1e-5.
    torch.set_num_threads(1)
    train, val = training_datasets(config)
    trainer = Trainer(config, train, val, progress=False)
    if resume:
        assert trainer.resume()
    trainer.fit()
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {**{f"d.{k}": v.clone() for k, v in trainer.depth_net.state_dict().items()},
            **{f"p.{k}": v.clone() for k, v in trainer.pose_net.state_dict().items()}}


def test_batches_are_a_function_of_seed_and_step():
    a = StepBatchSampler(100, 4, seed=3, start_step=0, steps=10)
    b = StepBatchSampler(100, 4, seed=3, start_step=6, steps=10)
    assert list(a)[6:] == list(b)
    assert a.global_batch(0) != StepBatchSampler(100, 4, seed=4, start_step=0, steps=1).global_batch(0)


def test_learning_rate_steps_down_at_its_milestones():
    config = TrainConfig(lr=1e-3, lr_milestones=(10, 20), lr_gamma=0.5)
    assert [config.lr_at(s) for s in (0, 9, 10, 19, 20, 99)] == [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]
    assert TrainConfig.from_dict(config.to_dict()) == config
    for bad in (dict(lr_milestones=(5, 5)), dict(lr_milestones=(0,)), dict(lr_gamma=0.0), dict(lr_gamma=2.0)):
        with pytest.raises(ValueError, match="--lr-"):
            TrainConfig(out_dir="/tmp/unused", **bad).check()
    from bore_depth_lite.train import parse_config
    parsed, _ = parse_config(["--lr-milestones", "100", "200", "--lr-gamma", "0.2", "--out", "/tmp/unused-lr"])
    assert parsed.lr_milestones == (100, 200) and parsed.lr_gamma == 0.2


def test_interrupted_run_resumes_to_identical_weights(data_root, tmp_path):
    # The learning rate drops between the interruption and the end: the schedule must resume too.
    straight = run(tiny_config(data_root, tmp_path / "straight", lr_milestones=(3,)))
    first = run(tiny_config(data_root, tmp_path / "killed", steps=2, lr_milestones=(3,)))  # "killed" after step 2
    assert (tmp_path / "killed" / "checkpoint.pt").exists() and first.step == 2
    resumed = run(tiny_config(data_root, tmp_path / "killed", lr_milestones=(3,)), resume=True)  # started again, continues
    assert resumed.step == straight.step == 4
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    # the networks did move: the test would catch a resume that silently restarted from scratch
    untrained = Trainer(tiny_config(data_root, tmp_path / "fresh"), *training_datasets(tiny_config(data_root, tmp_path)),
                        progress=False)
    assert not all(torch.equal(v, weights(untrained)[k]) for k, v in a.items())


def test_resume_refuses_a_checkpoint_of_another_configuration(data_root, tmp_path):
    run(tiny_config(data_root, tmp_path / "r", steps=2))
    trainer = Trainer(tiny_config(data_root, tmp_path / "r", batch_size=4), *training_datasets(
        tiny_config(data_root, tmp_path / "r")), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.resume()


def test_checkpoint_is_written_atomically(data_root, tmp_path):
    run(tiny_config(data_root, tmp_path / "a", steps=2))
    leftovers = [p.name for p in (tmp_path / "a").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    from bore_depth_lite.checkpoint import load_any_depthnet

    net = load_any_depthnet(tmp_path / "a" / "checkpoint.pt")   # the training checkpoint is a normal one too
    assert net.num_parameters() > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str, result_path: str) -> None:
    import warnings

    warnings.filterwarnings("ignore", message="Grad strides do not match")  # a depth-wise conv's layout; harmless
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    config = tiny_config(root, out, batch_size=4, steps=3, steps_per_epoch=3, device="cpu")
    trainer = run(config)
    if rank == 0:
        torch.save(weights(trainer), result_path)
    trainer.dist.shutdown()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(data_root, tmp_path):
    single = run(tiny_config(data_root, tmp_path / "single", batch_size=4, grad_chunks=2, steps=3, steps_per_epoch=3,
                             device="cpu"))
    result = tmp_path / "ddp.pt"
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(data_root), str(tmp_path / "ddp"), str(result)),
                       nprocs=2, join=True, start_method="spawn")
    a, b = weights(single), torch.load(result, weights_only=True)
    for k in a:
        if "running_" in k or "num_batches" in k:
            continue  # BatchNorm statistics: DDP keeps rank 0's (half the batch); weights are what must agree
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")


def test_run_two_stage_interrupted_in_its_second_phase_resumes_bit_for_bit(data_root, tmp_path):
    from bore_depth_lite.training import Callback, run_two_stage

    class Interrupt(Exception):
        pass

    class StopAt(Callback):     # a killed process: the checkpoint at this step is written, nothing after it
        def __init__(self, phase: str, step: int):
            self.phase, self.step = phase, step

        def on_epoch_end(self, trainer, row):
            if Path(trainer.config.out_dir).name == self.phase and trainer.step == self.step:
                raise Interrupt

    torch.set_num_threads(1)
    base = tiny_config(data_root, tmp_path / "whole")
    train, _ = training_datasets(base)
    whole = run_two_stage(base, "stage1", 2, 4, train, checkpoint_every=2)
    cut = replace(base, out_dir=str(tmp_path / "cut"))
    with pytest.raises(Interrupt):
        run_two_stage(cut, "stage1", 2, 4, train, checkpoint_every=2, callbacks=[StopAt("phase2", 2)])
    phase1 = (tmp_path / "cut" / "phase1" / "checkpoint.pt").stat().st_mtime_ns
    resumed = run_two_stage(cut, "stage1", 2, 4, train, checkpoint_every=2, resume=True)
    assert (tmp_path / "cut" / "phase1" / "checkpoint.pt").stat().st_mtime_ns == phase1   # the finished phase is kept
    assert resumed.step == whole.step == 4
    for (name, a), b in zip(whole.depth_net.state_dict().items(), resumed.depth_net.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="checkpoint_every: expected an integer >= 1 or None"):
        run_two_stage(base, "stage1", 1, 1, train, checkpoint_every=0)


def test_run_two_stage_phases_and_bad_arguments(data_root, tmp_path):
    from bore_depth_lite.training import run_two_stage

    torch.set_num_threads(1)
    base = tiny_config(data_root, tmp_path / "stage1", steps=1, steps_per_epoch=1)
    train, _ = training_datasets(base)
    trainer = run_two_stage(base, "stage1", 1, 1, train)
    assert trainer.step == 1 and trainer.config.stage == 1
    assert (tmp_path / "stage1" / "phase1" / "checkpoint.pt").is_file()
    assert trainer.checkpoint_path == tmp_path / "stage1" / "phase2" / "checkpoint.pt"
    plain = run_two_stage(tiny_config(data_root, tmp_path / "plain"), "plain", 1, 1, train,
                          start=None)
    assert plain.config.model == "tiny-plain"
    with pytest.raises(ValueError, match="variant: expected one of"):
        run_two_stage(base, "stage3", 1, 1, train)
    with pytest.raises(ValueError, match="stage2_steps: expected an integer >= 1"):
        run_two_stage(base, "stage1", 1, 0, train)
    with pytest.raises(ValueError, match="needs a teacher checkpoint"):
        run_two_stage(base, "joint", 1, 1, train)
    with pytest.raises(ValueError, match="only the two_stage variant continues"):
        run_two_stage(base, "stage1", 1, 1, train, start=str(trainer.checkpoint_path))
