"""labkit: a lab-course kit for teaching how convolutional networks see."""
__version__ = "0.1.0"
