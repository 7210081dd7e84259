"""Resumable sampling: the training order is a function of (seed, epoch) and resumes mid-epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.data.datamodules import InMemoryPixels, ResumableDataLoader, ResumableSampler, keep_batch


def test_order_is_a_function_of_seed_and_epoch() -> None:
    first = ResumableSampler(50, seed=7)
    second = ResumableSampler(50, seed=7)
    assert list(first) == list(second)
    assert sorted(first) == list(range(50))  # a permutation
    first.set_epoch(1)
    assert list(first) != list(second)
    np.testing.assert_array_equal(list(first), np.random.default_rng([7, 1]).permutation(50))
    assert list(ResumableSampler(50, seed=8)) != list(second)
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_training_shards_are_padded_and_evaluation_shards_exact() -> None:
    training = [ResumableSampler(11, seed=3, num_replicas=3, rank=r, pad=True) for r in range(3)]
    orders = [list(s) for s in training]
    assert [len(o) for o in orders] == [4, 4, 4]  # ceil(11 / 3) each, one sample repeated
    assert set().union(*orders) == set(range(11))
    evaluation = [ResumableSampler(11, shuffle=False, num_replicas=3, rank=r, pad=False) for r in range(3)]
    orders = [list(s) for s in evaluation]
    assert orders == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]  # every sample exactly once
    assert [len(s) for s in evaluation] == [4, 4, 3]


def _loader(seed: int = 0) -> ResumableDataLoader:
    dataset = InMemoryPixels(torch.arange(40, dtype=torch.float32).reshape(20, 2), torch.arange(20))
    sampler = ResumableSampler(len(dataset), seed=seed)
    return ResumableDataLoader(dataset, sampler=sampler, batch_size=3, collate_fn=keep_batch)


def test_loader_resumes_after_the_consumed_batches() -> None:
    reference = _loader()
    reference.sampler.set_epoch(2)
    full = [targets.tolist() for _, targets in reference]
    assert len(full) == 7  # ceil(20 / 3)

    interrupted = _loader()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    consumed = [next(iterator)[1].tolist() for _ in range(3)]
    state = interrupted.state_dict()
    assert state["epoch"] == 2 and state["samples_consumed"] == 9

    resumed = _loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning sets the epoch before iterating
    rest = [targets.tolist() for _, targets in resumed]
    assert consumed + rest == full
    assert resumed.state_dict()["samples_consumed"] == 20
    # the skip applies once: the next epoch is whole again
    resumed.sampler.set_epoch(3)
    assert sum(len(t) for _, t in resumed) == 20


def test_skip_is_dropped_when_another_epoch_starts() -> None:
    loader = _loader()
    loader.load_state_dict({"epoch": 1, "samples_consumed": 6, "seed": 0, "dataset_size": 20, "num_replicas": 1})
    loader.sampler.set_epoch(2)  # the saved epoch had ended
    assert sum(len(t) for _, t in loader) == 20


def test_changed_data_warns_and_restarts_the_epoch() -> None:
    loader = _loader()
    with pytest.warns(UserWarning, match="not exact"):
        loader.load_state_dict({"epoch": 0, "samples_consumed": 6, "seed": 0, "dataset_size": 99, "num_replicas": 1})
    assert sum(len(t) for _, t in loader) == 20
