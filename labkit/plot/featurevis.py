"""Figures for labkit.featurevis."""
__all__: list = []
