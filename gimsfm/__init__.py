"""gimsfm: generalizable image matching for structure-from-motion and localization."""
# zlib must be loaded before pycolmap, else later PNG/zlib writes abort the process
# (pycolmap 4.2.1 bug, see ENVIRONMENT.md).
import zlib  # noqa: F401  isort: skip

import logging

__version__ = "0.1.0"

logger = logging.getLogger("gimsfm")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[%(asctime)s gimsfm %(levelname)s] %(message)s", "%H:%M:%S"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
