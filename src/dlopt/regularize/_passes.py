"""The passes over X behind the linear solvers (:mod:`dlopt.regularize.linear`): Gram matrices
in float64 and float32, X's column sums with a product, and the correlations X_cᵀ(y_c − X_c w)
that certify a fit — on the CPU in numpy by row blocks that stay in cache, elsewhere in torch —
and the refusal of an X they cannot use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlopt.errors import InvalidParameterError


def gram(X: Tensor) -> Tensor:
    """XᵀX. On CPU numpy's matmul recognises XᵀX and calls BLAS syrk: half the flops of gemm.
    An overflow or NaN is left in the result for refuse_non_finite, not warned of by numpy."""
    if X.device.type == "cpu":
        Xn = X.numpy()
        with np.errstate(all="ignore"):
            return torch.from_numpy(Xn.T @ Xn)
    return X.T @ X


def refuse_non_finite(X: Tensor, caller: str, squares: Tensor | None = None) -> None:
    """InvalidParameterError for a NaN or inf in X — or, given `squares` (the Gram matrix's
    diagonal, non-finite where X is), for entries whose squares overflow float64."""
    if squares is not None and bool(torch.isfinite(squares).all()):
        return
    if not bool(torch.isfinite(X).all()):
        raise InvalidParameterError(f"{caller}(X, y): X must be finite; found NaN or inf.")
    if squares is not None:
        raise InvalidParameterError(
            f"{caller}(X, y): X's entries are too large: their squares overflow float64 "
            f"(largest |x| = {float(X.abs().max()):.3g}; about 1e150 is the most); rescale X."
        )


def sums_and_products(X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(1ᵀX, Xᵀy): X's column sums and its products with y, in one pass over X (on the CPU by
    blocks of CORRELATION_ROWS rows: 4.6 ms at 20000 × 500 against 7.6 for torch's mean and
    a product apart). Block by block the sums are as accurate as torch's mean (5e-15 apart)."""
    if X.device.type != "cpu":
        return X.sum(0), X.T @ y
    Xn, yn = X.numpy(), y.numpy()
    sums, products = np.zeros(Xn.shape[1]), np.zeros(Xn.shape[1])
    ones = np.ones(min(CORRELATION_ROWS, len(yn)))
    with np.errstate(all="ignore"):  # an inf in X: the caller refuses it by its sum
        for start in range(0, len(yn), CORRELATION_ROWS):
            rows = Xn[start : start + CORRELATION_ROWS]
            sums += ones[: len(rows)].dot(rows)
            products += yn[start : start + CORRELATION_ROWS].dot(rows)
    return torch.from_numpy(sums), torch.from_numpy(products)


@dataclass(frozen=True)
class Centred:
    """A least-squares problem with its intercept taken out, X never centred in memory:
    X_c = X − 1x̄ᵀ (x̄ = 0 without an intercept), y_c = y − ȳ and c = X_cᵀy_c."""

    X: Tensor
    y: Tensor  # y_c
    x_mean: Tensor
    c: Tensor

    def correlation(
        self, w: Tensor, X_w: Tensor | None = None, cols: Tensor | None = None
    ) -> Tensor:
        """X_cᵀ(y_c − X_c w): see :func:`correlation`."""
        return correlation(self.X, self.y, self.x_mean, w, X_w, cols)


def centred_problem(
    X: Tensor, y: Tensor, fit_intercept: bool, caller: str
) -> tuple[Centred, Tensor]:
    """(the Centred problem, ȳ) in one pass over X (sums_and_products), y centred first: with
    Xᵀy − n·x̄ȳ a large ȳ would cancel away. A NaN or inf anywhere in X reaches its column's
    sum and is refused."""
    y_mean = y.mean() if fit_intercept else X.new_zeros(())
    y_c = y - y_mean
    sums, products = sums_and_products(X, y_c)
    refuse_non_finite(X, caller, sums)  # NaN or inf, or entries near the float64 limit
    x_mean = sums / len(X) if fit_intercept else X.new_zeros(X.shape[1])
    return Centred(X, y_c, x_mean, products - x_mean * y_c.sum()), y_mean


CORRELATION_ROWS = 128
"""Rows per block of correlation() on the CPU: X_w w and Xᵀr read each block once, while it
is in cache (20000 × 500: 3.5 ms against 5.6 for two whole passes)."""


def correlation(
    X: Tensor,
    y_centred: Tensor,
    x_mean: Tensor,
    w: Tensor,
    X_w: Tensor | None = None,
    cols: Tensor | None = None,
) -> Tensor:
    """X_cᵀ(y_c − X_c w) without centring X (X_c = X − 1x̄ᵀ); w over the columns `cols` of X
    (X_w = X[:, cols]) when given, else over all of them. On the CPU in numpy by blocks of
    CORRELATION_ROWS rows, one pass over X; elsewhere two products in torch."""
    X_w = X if X_w is None else X_w
    shift = float((x_mean if cols is None else x_mean[cols]) @ w)  # x̄_Wᵀw
    if X.device.type == "cpu":
        return _correlation_by_blocks(X, X_w, y_centred, x_mean, w, shift)
    residual = y_centred - (X_w @ w - shift)  # y_c − X_c w
    return X.T @ residual - x_mean * residual.sum()


def _correlation_by_blocks(
    X: Tensor, X_w: Tensor, y_centred: Tensor, x_mean: Tensor, w: Tensor, shift: float
) -> Tensor:
    Xn, Xn_w, wn, y = X.numpy(), X_w.numpy(), w.numpy(), y_centred.numpy()
    total, residual = np.zeros(Xn.shape[1]), np.empty(len(y))
    for start in range(0, len(y), CORRELATION_ROWS):
        rows = slice(start, start + CORRELATION_ROWS)
        r = residual[rows]
        np.subtract(y[rows] + shift, Xn_w[rows].dot(wn), out=r)
        total += r.dot(Xn[rows])
    return torch.from_numpy(total - x_mean.numpy() * residual.sum())


GRAM_ROWS = 2048
"""Rows per block of the float32 Gram matrix on the CPU: a 4 MB float32 copy at d = 500."""


def centred_gram_float32(X: Tensor, x_mean: Tensor) -> tuple[Tensor, Tensor]:
    """(G̃, diag G): X_cᵀX_c in float32 (summed and returned in float64) from X rounded to
    float32 and centred there, and its diagonal ‖x_j − x̄_j‖² in float64 to check it by.

    Half the time of the float64 product (20000 × 500: 52 against 97 ms, rounding, centring
    and the check included). On the CPU by blocks of GRAM_ROWS rows (no float32 copy of X,
    and each block's sum rounded apart: 1.2e-7 relative error against 3.7e-7 in one
    product). The rounding of a large column mean cancels in the centring: what stays is a
    relative error of about ε₃₂·(|x̄|/σ)/√n in the Gram matrix."""
    by_blocks = X.device.type == "cpu"
    G, squares = (_gram_float32_by_blocks if by_blocks else _gram_float32_whole)(X, x_mean)
    return G, squares - X.shape[0] * x_mean * x_mean


def _gram_float32_whole(X: Tensor, x_mean: Tensor) -> tuple[Tensor, Tensor]:
    """(X_cᵀX_c in float32, Σᵢ x_ij² in float64) in whole-matrix torch, for a device."""
    X32 = X.to(torch.float32)
    X32 -= x_mean.to(torch.float32)
    return (X32.T @ X32).to(torch.float64), torch.einsum("ij,ij->j", X, X)


def _gram_float32_by_blocks(X: Tensor, x_mean: Tensor) -> tuple[Tensor, Tensor]:
    """(X_cᵀX_c in float32 by blocks, Σᵢ x_ij² in float64) for centred_gram_float32."""
    Xn, n, d = X.numpy(), X.shape[0], X.shape[1]
    block, G = np.empty((min(GRAM_ROWS, n), d), np.float32), np.zeros((d, d))
    squares = np.zeros(d)
    with np.errstate(all="ignore"):  # float32 overflow: faithful() reports it, not numpy
        mean = x_mean.numpy().astype(np.float32)
        for start in range(0, n, GRAM_ROWS):
            rows, exact = block[: min(GRAM_ROWS, n - start)], Xn[start : start + GRAM_ROWS]
            np.copyto(rows, exact, casting="same_kind")
            rows -= mean
            G += rows.T @ rows  # numpy recognises XᵀX: BLAS syrk
            squares += np.einsum("ij,ij->j", exact, exact)
    return torch.from_numpy(G), torch.from_numpy(squares)


def faithful(G: Tensor, diagonal: Tensor) -> bool:
    """Whether the float32 Gram matrix G̃ kept every column: its diagonal within 10⁻⁴ of the
    float64 one (or 10⁻⁶ of the largest). Overflow and underflow fail it (so would a column
    mean far above the spread, but linear.py centres such data first); the refinement's
    contraction tests the rest."""
    mismatch = (G.diagonal() - diagonal).abs()
    return bool((mismatch <= 1e-4 * diagonal + 1e-6 * diagonal.max()).all())
