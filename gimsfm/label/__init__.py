"""GIM self-training labels from videos: sampling, multi-method matching, robust filtering, propagation."""
