"""Newton–Schulz quintic and Polar Express orthogonalizers, batched over leading dims.

Both are odd matrix polynomials applied to singular values: X = U S Vᵀ maps to U p(S) Vᵀ.
"""

from __future__ import annotations

import torch
from torch import Tensor

NS5_COEFFS: tuple[tuple[float, float, float], ...] = ((3.4445, -4.7750, 2.0315),) * 5

# Per-iteration coefficients of the speedrun's Polar Express (arXiv 2505.16932), 5 iterations,
# already divided by the safety factor; normalisation uses the 1.02 safety factor.
POLAR_EXPRESS_COEFFS: tuple[tuple[float, float, float], ...] = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


def coefficients(method: str, steps: int = 5) -> tuple[tuple[float, float, float], ...]:
    if method == "ns5":
        return NS5_COEFFS[:1] * steps
    if method == "polar_express":
        if steps > len(POLAR_EXPRESS_COEFFS):
            raise ValueError(f"polar_express has {len(POLAR_EXPRESS_COEFFS)} published iterations")
        return POLAR_EXPRESS_COEFFS[:steps]
    raise ValueError(f"unknown orthogonalizer {method!r}")


def normalize(x: Tensor, method: str) -> Tensor:
    norm = x.norm(dim=(-2, -1), keepdim=True)
    if method == "polar_express":
        return x / (norm * 1.02 + 1e-6)
    return x / (norm + 1e-7)


def orthogonalize(g: Tensor, method: str = "ns5", steps: int = 5, dtype: torch.dtype | None = None) -> Tensor:
    """Approximate polar factor of each matrix in g (shape (..., m, n)), computed in `dtype`.

    Tall matrices are transposed so the Gram matrix is the small side, as in the record.
    """
    x = g.to(dtype or g.dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = normalize(x, method)
    batched = x.dim() == 3
    for a, b, c in coefficients(method, steps):
        A = x @ x.mT
        if batched:
            B = torch.baddbmm(A, A, A, beta=b, alpha=c)
            x = torch.baddbmm(x, B, x, beta=a, alpha=1.0)
        else:
            B = b * A + c * (A @ A)
            x = a * x + B @ x
    if tall:
        x = x.mT
    return x


def flops(shape: tuple[int, ...], steps: int = 5) -> int:
    """Matmul FLOPs of orthogonalizing a (B, m, n) stack: per step 4m²n + 2m³ with m <= n."""
    *lead, m, n = shape
    m, n = min(m, n), max(m, n)
    count = 1
    for s in lead:
        count *= s
    return count * steps * (4 * m * m * n + 2 * m ** 3)
