"""Progress bars: tqdm on a terminal, silent in logs and pipes (no carriage-return noise in CI output)."""
from __future__ import annotations

from functools import partial

from tqdm import tqdm as _tqdm

tqdm = partial(_tqdm, disable=None, dynamic_ncols=True)
