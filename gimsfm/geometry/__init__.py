"""Two-view geometry used by every pipeline: robust E / F / H estimation, pose from E, and pose /
homography errors. Keypoints are pixel coordinates with OpenCV pixel centres throughout."""
from .estimation import (
    ESTIMATORS,
    GEOMETRIES,
    TwoViewModel,
    estimate_essential,
    estimate_fundamental,
    estimate_homography,
    estimate_two_view,
    normalize_keypoints,
    pose_from_essential,
)
from .evaluation import (
    angle_error_mat,
    angle_error_vec,
    homography_corner_error,
    pose_error,
    rotation_angle,
)

__all__ = [
    "ESTIMATORS", "GEOMETRIES", "TwoViewModel", "estimate_essential", "estimate_fundamental",
    "estimate_homography", "estimate_two_view", "normalize_keypoints", "pose_from_essential",
    "angle_error_mat", "angle_error_vec", "homography_corner_error", "pose_error", "rotation_angle",
]
