"""Visual localization against a gimsfm map: retrieval, matching, 2D-3D, absolute pose."""
