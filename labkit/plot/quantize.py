"""Figures for labkit.quantize."""
__all__: list = []
