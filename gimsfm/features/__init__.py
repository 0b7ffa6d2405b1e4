from .sift import SiftExtractor

__all__ = ["SiftExtractor"]
