"""Style as statistics (Gatys et al. 2015): the Gram matrix of a layer's responses.

The Gram matrix keeps which channels fire together and throws away where they fire, so matching
Gram matrices reproduces a texture, while matching the features themselves (inversion) keeps the
layout of the photo.
"""
from __future__ import annotations

import torch

__all__ = ["gram"]


def gram(features: torch.Tensor) -> torch.Tensor:
    """Channel co-activation matrix of each image, averaged over positions.

    ``G[n, c, d] = sum_p F[n, c, p] * F[n, d, p] / P`` with ``P = h * w`` the number of positions.

    Args:
        features: ``[N,C,h,w]`` activations (or ``[N,C,P]`` already flattened).

    Returns:
        ``[N,C,C]`` symmetric, positive semi-definite, in squared activation units, differentiable.

    Raises:
        ValueError: ``features`` is not 3-D or 4-D.
    """
    if not torch.is_tensor(features) or features.dim() not in (3, 4):
        raise ValueError(f"features must be [N,C,h,w] or [N,C,P], got shape {tuple(getattr(features, 'shape', ()))}.")
    flat = features.flatten(2)
    return torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[-1]
