"""Figures for labkit.circuits."""
__all__: list = []
