"""Image reading on odd formats and bad files: always uint8 RGB with EXIF orientation, or InputError."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from gimsfm.errors import InputError
from gimsfm.utils.io import exif_focal_px, list_images, read_image, resize_max, resolve_dir


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()  # 512x512 RGB


def test_formats_become_uint8_rgb(tmp_path, astronaut):
    import cv2

    grey = astronaut.mean(2).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "rgb16.png"), (astronaut[..., ::-1].astype(np.uint16) * 257))
    cv2.imwrite(str(tmp_path / "grey16.png"), grey.astype(np.uint16) * 257)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(astronaut).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(astronaut).save(tmp_path / "img.tif")
    for name in ["rgb16.png", "grey16.png", "grey.png", "rgba.png", "palette.png", "img.tif"]:
        img = read_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == (512, 512, 3), name
    # 16-bit keeps the content (not truncated or clipped).
    assert np.abs(read_image(tmp_path / "rgb16.png").astype(int) - astronaut).max() <= 1
    assert np.abs(read_image(tmp_path / "grey16.png")[..., 0].astype(int) - grey).max() <= 1


def test_exif_rotation_applied(tmp_path, astronaut):
    crop = astronaut[:, :300]  # 512 rows x 300 columns: portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(crop).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    img = read_image(tmp_path / "rot.jpg")
    assert img.shape[:2] == (300, 512)
    expected = np.rot90(crop, k=-1)
    assert np.abs(img.astype(int) - expected).mean() < 4


def test_exif_focal(tmp_path, astronaut):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 36  # 36 mm equivalent -> focal = long side
    Image.fromarray(astronaut).save(tmp_path / "f.jpg", exif=exif.tobytes())
    assert exif_focal_px(tmp_path / "f.jpg", 512, 512) == pytest.approx(512)
    Image.fromarray(astronaut).save(tmp_path / "nof.jpg")
    assert exif_focal_px(tmp_path / "nof.jpg", 512, 512) is None


def test_bad_files_raise_input_error(tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    for name in ["corrupt.jpg", "empty.png", "text.png", "missing.png"]:
        with pytest.raises(InputError):
            read_image(tmp_path / name)


def test_list_images_and_links(tmp_path, astronaut):
    with pytest.raises(InputError):
        list_images(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    assert list_images(tmp_path) == ["a/x.png"]
    (tmp_path / "link").write_text("a")  # a symlink stored as text, as in shared/data/sfm
    assert resolve_dir(tmp_path / "link") == (tmp_path / "a").resolve()


def test_resize_max_scale(astronaut):
    small, s = resize_max(astronaut, 256)
    assert small.shape[:2] == (256, 256) and s == pytest.approx(2.0)
    same, s = resize_max(astronaut, 1024)
    assert same is astronaut and s == 1.0
