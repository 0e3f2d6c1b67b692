import pytest
import torch

from dlopt.data import Batches, load_bundled, polynomial, split_dataset


def test_splits_are_disjoint_complete_stratified_and_seeded():
    data = load_bundled("digits")
    splits = split_dataset(data, val_fraction=0.15, test_fraction=0.2, seed=5, standardize=False)
    rows = {tuple(r) for part in (splits.train, splits.val, splits.test) for r in part.X.tolist()}
    assert sum(splits.sizes().values()) == len(data)
    assert len(rows) == len({tuple(r) for r in data.X.tolist()})  # every sample, once
    for part, share in ((splits.test, 0.2), (splits.val, 0.15)):
        counts = part.y.bincount(minlength=10).double() / data.y.bincount().double()
        assert torch.all((counts - share).abs() < 0.02), counts  # stratified
    again = split_dataset(data, seed=5, standardize=False)
    assert torch.equal(again.test.X, splits.test.X)
    other = split_dataset(data, seed=6, standardize=False)
    assert not torch.equal(other.test.X, splits.test.X)


def test_standardization_uses_training_statistics_only():
    data = polynomial(n=400, seed=1)
    splits = split_dataset(data, seed=0)
    raw = split_dataset(data, seed=0, standardize=False)
    mean, std = raw.train.X.double().mean(0), raw.train.X.double().std(0, unbiased=False)
    torch.testing.assert_close(
        splits.test.X.double(), (raw.test.X.double() - mean) / std, rtol=1e-5, atol=1e-5
    )
    assert abs(float(splits.train.X.mean())) < 1e-5


def test_train_size_and_bad_fractions():
    splits = split_dataset(load_bundled("wine"), seed=0, train_size=30)
    assert len(splits.train) == 30
    with pytest.raises(ValueError, match="sum to < 1"):
        split_dataset(load_bundled("wine"), val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="train_size"):
        split_dataset(load_bundled("wine"), train_size=10_000)


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_epoch():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = Batches(X, y, batch_size=3, seed=4)
    assert len(batches) == 4
    epoch0 = list(batches.epoch(0))
    assert sorted(torch.cat([b[1] for b in epoch0]).tolist()) == list(range(10))
    assert [b[1].tolist() for b in Batches(X, y, 3, seed=4).epoch(0)] == [
        b[1].tolist() for b in epoch0
    ]
    assert [b[1].tolist() for b in batches.epoch(1)] != [b[1].tolist() for b in epoch0]
    assert [b[1].tolist() for b in batches.epoch(0, start=2)] == [b[1].tolist() for b in epoch0[2:]]
    assert len(Batches(X, y, 3, drop_last=True)) == 3
    assert next(Batches(X, y, 4, shuffle=False).epoch(0))[1].tolist() == [0, 1, 2, 3]
