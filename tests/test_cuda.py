"""The same code on CUDA (device and dtype follow the inputs). Skipped without a GPU."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("method", ["lbfgs", "cg", "bfgs", "newton-cg", "newton"])
def test_minimize_runs_on_the_gpu(method):
    from dlopt.optim import minimize

    x0 = torch.full((10,), -1.2, dtype=torch.float64, device="cuda")
    x0[1::2] = 1.0
    result = minimize(
        lambda x: (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum(), x0, method=method
    )
    assert result.success and result.x.device.type == "cuda"
    assert torch.allclose(result.x.cpu(), torch.ones(10, dtype=torch.float64), atol=1e-4)


def test_trainer_penalties_fold_and_ridge_on_the_gpu():
    from dlopt.data import load_bundled, split_dataset
    from dlopt.nn import fold_batchnorm, mlp
    from dlopt.regularize import L1, ridge
    from dlopt.train import Trainer

    splits = split_dataset(load_bundled("digits"), seed=0)
    torch.manual_seed(0)
    model = mlp(64, 10, (64,), batch_norm=True, dropout=0.2).cuda()
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), 1e-3),
        max_epochs=3,
        penalties=[L1(1e-4, proximal=True)],
    )
    trainer.fit(splits.train, splits.val)
    assert trainer.evaluate(splits.test)["accuracy"] > 0.9
    x = splits.test.X[:16].cuda()
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model)(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    X, y = torch.randn(50, 5, device="cuda"), torch.randn(50, device="cuda")
    assert ridge(X, y, 1.0).coef.device.type == "cuda"
