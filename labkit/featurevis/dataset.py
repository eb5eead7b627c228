"""Dataset examples: the real images (and image patches) that excite a channel most.

Each image is scored by the channel's strongest response (its maximum over positions); the crop
is the layer's receptive field around that position, mapped back to input pixels.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import nn

from labkit import layers as L

__all__ = ["DatasetExamples", "dataset_examples", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class DatasetExamples:
    """The top-``k`` images for one channel, best first (draw with ``labkit.plot.dataset_examples_figure``).

    Attributes:
        images: ``[k,3,H,W]`` the images as the model saw them, ``[0,1]`` on the CPU.
        crops: ``k`` tensors ``[3,h,w]`` in ``[0,1]``: each image's receptive field around its
            strongest position (smaller where it meets the border).
        boxes: ``(top, left, bottom, right)`` of each crop in input pixels (bottom/right exclusive).
        positions: ``(y, x)`` of the strongest response in the layer's feature map.
        scores: ``[k]`` the channel's maximum activation in each image.
        sources: the path or name of each image (or its index in a tensor batch).
        indices: positions of the top images in the input list.
        all_scores: ``[N]`` the score of every image, in input order.
        layer, channel, relu, receptive_field: what was measured (receptive field in px; -1 = global).
    """

    images: torch.Tensor
    crops: List[torch.Tensor]
    boxes: List[Tuple[int, int, int, int]]
    positions: List[Tuple[int, int]]
    scores: torch.Tensor
    sources: List[str]
    indices: List[int]
    all_scores: torch.Tensor
    layer: str
    channel: int
    relu: Optional[str]
    receptive_field: int


def _collect(images) -> List:
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"No image files ({', '.join(IMAGE_SUFFIXES)}) in {str(images)!r}.")
        return files
    if isinstance(images, dict):
        return list(images.values())
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("Got an empty list of images.")
        return list(images)
    return [images]


def receptive_box(pos: Tuple[int, int], fmap_hw: Tuple[int, int], image_hw: Tuple[int, int],
                  receptive_field: int) -> Tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` in input pixels of the receptive field around feature-map
    position ``pos`` = ``(y, x)``, centred on the position's centre and clipped to the image."""
    (y, x), (h, w), (H, W) = pos, fmap_hw, image_hw
    if receptive_field is None or receptive_field < 0:
        return 0, 0, H, W
    cy, cx = (y + 0.5) * H / h, (x + 0.5) * W / w
    top, left = int(math.floor(cy - receptive_field / 2 + 0.5)), int(math.floor(cx - receptive_field / 2 + 0.5))
    bottom, right = top + receptive_field, left + receptive_field
    top, left, bottom, right = max(0, top), max(0, left), min(H, bottom), min(W, right)
    return top, left, max(bottom, top + 1), max(right, left + 1)


def dataset_examples(model: nn.Module, layer, channel: int, images, *, k: int = 9, batch_size: int = 16,
                     relu: Optional[str] = None, size: Optional[int] = None, progress: bool = True) -> DatasetExamples:
    """The ``k`` images among ``images`` that excite ``channel`` of ``layer`` most, with crops.

    Args:
        images: a folder, a list of paths / sample names / PIL images, ``labkit.images.sample_images()``,
            or a preprocessed ``[N,3,H,W]`` tensor.
        channel: channel index (checked against the layer's channel count).
        k: how many to keep (at most the number of images).
        batch_size: images per forward pass (the pass stops at ``layer``).
        relu: None, "before" or "after" the layer's non-linearity.
        size: input side in px (default: the model's input size); images are squashed, not cropped.

    Returns:
        :class:`DatasetExamples`, best first.
    """
    from tqdm.auto import tqdm

    from labkit.images import denormalize, preprocess

    name, _ = L.resolve_layer(model, layer)
    (chan,) = L.check_channels(model, name, [channel])
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be >= 1, got {k} and {batch_size}.")
    rf = L.layer_info(model, name).receptive_field
    is_tensor = torch.is_tensor(images)
    items = None if is_tensor else _collect(images)
    count = images.shape[0] if is_tensor else len(items)
    scores, positions, fmap_hw = [], [], None
    with torch.no_grad():
        for start in tqdm(range(0, count, batch_size), disable=not progress, desc=f"dataset examples {name}",
                          leave=False):
            if is_tensor:
                x = images[start:start + batch_size]
            else:
                x = preprocess(items[start:start + batch_size], model, size=size)
            maps = L.activations(model, x, name, relu=relu)[:, chan]
            if maps.dim() == 1:  # a linear layer: one value per image, no positions
                maps = maps[:, None, None]
            fmap_hw = tuple(maps.shape[-2:])
            best, where = maps.flatten(1).max(dim=1)
            scores.append(best.float().cpu())
            positions += [divmod(int(i), fmap_hw[1]) for i in where]
    all_scores = torch.cat(scores)
    order = torch.argsort(all_scores, descending=True)[:min(k, count)].tolist()
    if is_tensor:
        chosen = denormalize(images[order].detach(), model).clamp(0, 1).cpu().float()
    else:
        chosen = denormalize(preprocess([items[i] for i in order], model, size=size), model).clamp(0, 1).cpu().float()
    image_hw = tuple(chosen.shape[-2:])
    boxes = [receptive_box(positions[i], fmap_hw, image_hw, rf) for i in order]
    crops = [chosen[j, :, t:b, l:r].clone() for j, (t, l, b, r) in enumerate(boxes)]
    sources = [str(i) if is_tensor else (str(items[i]) if isinstance(items[i], (str, os.PathLike)) else f"#{i}")
               for i in order]
    return DatasetExamples(images=chosen, crops=crops, boxes=boxes, positions=[positions[i] for i in order],
                           scores=all_scores[order], sources=sources, indices=order, all_scores=all_scores,
                           layer=name, channel=chan, relu=relu, receptive_field=rf)
