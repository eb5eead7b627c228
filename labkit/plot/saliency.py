"""Figures for labkit.saliency."""
__all__: list = []
