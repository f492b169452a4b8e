"""contimg: continuum imaging pipeline of the DSA-110 radio telescope."""

__version__ = "0.1.0"
