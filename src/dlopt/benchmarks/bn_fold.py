"""`dlopt bench bn-fold`: inference before and after folding BN into the layer before it.

Models, in eval mode with non-trivial BN statistics, on 3×32×32 inputs: the builders' dense
Conv-BN-ReLU-MaxPool CNN (``cnn()``: 3×3 convolutions, channels 32-64-64, batch 32), in
PyTorch's default NCHW layout and in channels_last (NHWC, the layout PyTorch recommends for
CNN inference on CPU); a depthwise-separable (MobileNet-style) Conv-BN-ReLU CNN at batch 1
(NCHW) and 32 (NHWC), where BN costs about as much as the depthwise convolution; and a
Linear-BN MLP (784-512-512-10, batch 512). Anchor: the same models fused with
``torch.nn.utils.fusion.fuse_conv_bn_eval`` / ``fuse_linear_bn_eval``. Folding removes one
memory-bound pass per BN; eval-mode BN is already a single fused affine kernel in PyTorch, so
the gain is the share of time BN took. In NCHW on CPU that share is small because
``max_pool2d`` there is slow (about half the CNN's time); in NHWC pooling is vectorised and the
convolutions skip their layout reorders, so BN's share — and folding's gain — is larger.
dlopt's folded copy is also laid out for inference (``fold_batchnorm``: in-place ReLUs after
each Linear/Conv, Conv2d weights channels_last on the CPU), so on the NCHW rows it runs in NHWC
while torch's fusion keeps the layout it was given; the channels_last rows compare both in NHWC.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from dlopt.benchmarks.harness import BenchReport, Timing, benchmark, interleave, wall_clock
from dlopt.nn import cnn, fold_batchnorm, mlp


def _with_statistics(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator))  # type: ignore[union-attr]
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)  # type: ignore[union-attr]
            m.weight.data.normal_(1.0, 0.1, generator=generator)
            m.bias.data.normal_(0.0, 0.1, generator=generator)
    return model.eval()


def torch_fused(model: nn.Sequential) -> nn.Sequential:
    """The anchor: torch's own fusion helpers on each (Conv|Linear, BN) pair."""
    fused = copy.deepcopy(model).eval()
    names = list(fused._modules)
    dropped = []
    for before, name in itertools.pairwise(names):
        layer, bn = fused._modules[before], fused._modules[name]
        if isinstance(bn, nn.BatchNorm2d) and isinstance(layer, nn.Conv2d):
            fused._modules[before] = fuse_conv_bn_eval(layer, bn)
            dropped.append(name)
        elif isinstance(bn, nn.BatchNorm1d) and isinstance(layer, nn.Linear):
            fused._modules[before] = fuse_linear_bn_eval(layer, bn)
            dropped.append(name)
    for name in dropped:
        del fused._modules[name]
    return fused


def separable_cnn() -> nn.Sequential:
    """MobileNet-style: a 3×3 stem, then depthwise 3×3 + pointwise 1×1 blocks, each + BN + ReLU."""
    layers: list[nn.Module] = [
        nn.Unflatten(1, (3, 32, 32)),
        nn.Conv2d(3, 32, 3, 1, 1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
    ]
    for c_in, c_out, stride in (
        (32, 64, 1),
        (64, 128, 2),
        (128, 128, 1),
        (128, 256, 2),
        (256, 256, 1),
    ):
        layers += [
            nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


def _timer(model: nn.Module, x: torch.Tensor, calls: int) -> Callable[[], float]:
    """Seconds per forward over `calls` calls (returned, so interleave() uses it)."""

    def forwards() -> None:
        for _ in range(calls):
            model(x)

    def run() -> float:
        with torch.inference_mode():
            return wall_clock(forwards, x.device)[1] / calls

    return run


@benchmark(
    "bn-fold",
    "inference with BatchNorm vs folded into Conv/Linear (and torch's fusion)",
    devices=("cpu", "cuda"),
)
def bn_fold_benchmark(repeats: int, device: torch.device) -> BenchReport:
    torch.manual_seed(0)
    dense = _with_statistics(
        cnn((3, 32, 32), 10, channels=(32, 64, 64), batch_norm=True, hidden=(128,))
    )
    separable = _with_statistics(separable_cnn())
    channels_last = torch.channels_last
    models = {
        "CNN": (dense, torch.randn(32, 3 * 32 * 32), 5, None),
        "CNN channels_last": (dense, torch.randn(32, 3 * 32 * 32), 5, channels_last),
        "separable CNN b1": (separable, torch.randn(1, 3 * 32 * 32), 50, None),
        "separable CNN b32": (separable, torch.randn(32, 3 * 32 * 32), 5, channels_last),
        "MLP": (
            _with_statistics(mlp(784, 10, (512, 512), batch_norm=True)),
            torch.randn(512, 784),
            50,
            None,
        ),
    }
    timings: list[Timing] = []
    notes = []
    for name, (model, x, calls, layout) in models.items():
        model, x = copy.deepcopy(model).to(device), x.to(device)
        if layout is not None:  # weights in NHWC: the convolutions' outputs follow
            model = model.to(memory_format=layout)  # type: ignore[call-overload]
        ours, theirs = fold_batchnorm(model), torch_fused(model)  # type: ignore[arg-type]
        with torch.inference_mode():
            reference = model(x)
            notes.append(
                f"{name}: max |folded − unfolded| {float((ours(x) - reference).abs().max()):.2e}"
                f", torch fusion {float((theirs(x) - reference).abs().max()):.2e}"
            )
        timings += interleave(
            {
                f"{name} with BN": _timer(model, x, calls),
                f"{name} folded (dlopt)": _timer(ours, x, calls),
                f"{name} fused (torch)": _timer(theirs, x, calls),
            },
            repeats,
        )
    report = BenchReport(
        "BatchNorm folding, inference (eval mode, inference_mode)",
        "forward",
        timings,
        baseline="CNN with BN",
        notes=notes,
    )
    for name in models:
        report.notes.append(
            f"{name}: speed-up of folding {report.ratio(f'{name} with BN', f'{name} folded (dlopt)'):.3f}×"
            f" (torch fusion {report.ratio(f'{name} with BN', f'{name} fused (torch)'):.3f}×)"
        )
    return report
