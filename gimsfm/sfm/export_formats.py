"""`gimsfm export`: hand a model to the next tool.

- colmap-text: DEST/sparse/0/{cameras,images,points3D}.txt (pycolmap's writer); with --undistort also
  DEST/images/ undistorted by pycolmap and PINHOLE cameras: the layout 3D Gaussian splatting tools read.
- nerfstudio: DEST/transforms.json (nerfstudio's conventions: camera-to-world `transform_matrix` with OpenGL
  camera axes, x right / y up / z back; shared or per-frame intrinsics; the world turned so the scene's up is
  +Z, recorded as `applied_transform`), DEST/images/ and DEST/sparse_pc.ply (the points, same world).
- ply: DEST/points.ply, every 3D point with its colour.

DEST must be new or empty (or a previous export, with --overwrite); the result is built beside it and moved
into place only when complete, so an interrupted export leaves nothing half-written.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pycolmap
from PIL import Image

from .. import logger
from ..errors import InputError, OutputExistsError
from ..utils.io import read_image
from ..utils.progress import tqdm
from .export import write_ply
from .model_folder import Model
from .scene_view import model_cameras, points_and_colors, scene_up

FORMATS = ("colmap-text", "nerfstudio", "ply")
MANIFEST = ".gimsfm-export.json"
# COLMAP model -> nerfstudio camera_model and the parameter names of each (nerfstudio's OPENCV has k1 k2 p1 p2).
NERFSTUDIO_MODELS = {
    "SIMPLE_PINHOLE": ("PINHOLE", ["f", "cx", "cy"]),
    "PINHOLE": ("PINHOLE", ["fl_x", "fl_y", "cx", "cy"]),
    "SIMPLE_RADIAL": ("OPENCV", ["f", "cx", "cy", "k1"]),
    "RADIAL": ("OPENCV", ["f", "cx", "cy", "k1", "k2"]),
    "OPENCV": ("OPENCV", ["fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2"]),
    "SIMPLE_RADIAL_FISHEYE": ("OPENCV_FISHEYE", ["f", "cx", "cy", "k1"]),
    "RADIAL_FISHEYE": ("OPENCV_FISHEYE", ["f", "cx", "cy", "k1", "k2"]),
    "OPENCV_FISHEYE": ("OPENCV_FISHEYE", ["fl_x", "fl_y", "cx", "cy", "k1", "k2", "k3", "k4"]),
}
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: y down / z forward -> y up / z back


def _check_dest(dest: Path, overwrite: bool) -> list[str]:
    """Entries of an earlier export in DEST to replace (empty when DEST is new or empty)."""
    if dest.exists() and not dest.is_dir():
        raise OutputExistsError(f"--out {dest} exists and is not a folder")
    if not dest.exists() or not any(dest.iterdir()):
        return []
    manifest = dest / MANIFEST
    if not manifest.exists():
        raise OutputExistsError(f"--out {dest} already holds other files; choose an empty or new folder")
    ours = json.loads(manifest.read_text()).get("entries", []) + [MANIFEST]
    foreign = sorted(p.name for p in dest.iterdir() if p.name not in ours)
    if foreign:
        raise OutputExistsError(f"--out {dest} holds files that are not from gimsfm export ({', '.join(foreign[:3])})")
    if not overwrite:
        raise OutputExistsError(f"--out {dest} holds an earlier export; add --overwrite to replace it")
    return ours


def _oriented_images(image_dir: Path, names: list[str], scratch: Path) -> Path:
    """A folder where every image reads as the model saw it: the originals, linked, except files that
    gimsfm's reader turns (EXIF orientation) or converts (16-bit, palette, CMYK...), written out again."""
    linked = scratch / "source"
    for name in names:
        src, dst = image_dir / name, linked / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(src) as img:
                plain = img.mode in ("RGB", "L") and img.format in ("JPEG", "PNG") and \
                    img.getexif().get(0x0112, 1) == 1
        except OSError:
            raise InputError(f"cannot read image {src}") from None
        if plain:
            dst.symlink_to(src.resolve())
        else:
            Image.fromarray(read_image(src)).save(dst, quality=95)
    return linked


def _image_dir(model: Model, image_dir: Path | None) -> Path:
    image_dir = Path(image_dir) if image_dir else model.image_dir
    if image_dir is None:
        raise InputError("this model does not record its images; give the image folder with --images DIR")
    missing = [model.rec.image(i).name for i in model.rec.reg_image_ids()
               if not (image_dir / model.rec.image(i).name).is_file()]
    if missing:
        raise InputError(f"{len(missing)} image(s) of the model are not in {image_dir} (e.g. {missing[0]})")
    return image_dir


def undistort(model: Model, image_dir: Path, stage: Path) -> pycolmap.Reconstruction:
    """pycolmap's undistortion (COLMAP's image_undistorter, CPU): stage/images and the PINHOLE model."""
    names = sorted(model.rec.image(i).name for i in model.rec.reg_image_ids())
    scratch = Path(tempfile.mkdtemp(prefix="undistort-", dir=stage))
    source = _oriented_images(image_dir, names, scratch)
    logger.info("undistorting %d images", len(names))
    pycolmap.undistort_images(scratch / "out", model.model_dir, source, image_names=names, output_type="COLMAP")
    (scratch / "out" / "images").rename(stage / "images")
    rec = pycolmap.Reconstruction(str(scratch / "out" / "sparse"))
    shutil.rmtree(scratch)
    return rec


def _copy_images(rec: pycolmap.Reconstruction, image_dir: Path, dest: Path) -> None:
    names = sorted(rec.image(i).name for i in rec.reg_image_ids())
    scratch = Path(tempfile.mkdtemp(prefix="images-", dir=dest))
    source = _oriented_images(image_dir, names, scratch)
    for name in tqdm(names, desc="images", unit="img", leave=False):
        out = dest / "images" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, out)  # follows the link: a real copy
    shutil.rmtree(scratch)


def up_to_z(rec: pycolmap.Reconstruction) -> np.ndarray:
    """A rotation (3x3) taking the scene's up direction to +Z (nerfstudio's world convention)."""
    up = scene_up(model_cameras(rec), points_and_colors(rec)[0])
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(up, z), float(np.dot(up, z))
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)  # Rodrigues: the shortest rotation from up to z


def nerfstudio_intrinsics(camera: pycolmap.Camera) -> dict:
    if camera.model_name not in NERFSTUDIO_MODELS:
        raise InputError(f"nerfstudio has no camera model for COLMAP {camera.model_name}; add --undistort")
    model, names = NERFSTUDIO_MODELS[camera.model_name]
    values = dict(zip(names, map(float, camera.params)))
    if "f" in values:
        values["fl_x"] = values["fl_y"] = values.pop("f")
    out = {"camera_model": model, "w": int(camera.width), "h": int(camera.height)}
    for key in ("fl_x", "fl_y", "cx", "cy"):
        out[key] = values[key]
    if model == "OPENCV":
        out.update({k: values.get(k, 0.0) for k in ("k1", "k2", "p1", "p2")})
    elif model == "OPENCV_FISHEYE":
        out.update({k: values.get(k, 0.0) for k in ("k1", "k2", "k3", "k4")})
    return out


def write_transforms(rec: pycolmap.Reconstruction, dest: Path) -> dict:
    """DEST/transforms.json and DEST/sparse_pc.ply for the images already in DEST/images."""
    world = np.eye(4)
    world[:3, :3] = up_to_z(rec)
    cams = {cid: nerfstudio_intrinsics(cam) for cid, cam in rec.cameras.items()}
    kinds = {c["camera_model"] for c in cams.values()}
    if len(kinds) > 1:
        if kinds == {"PINHOLE", "OPENCV"}:  # a pinhole is an OPENCV camera without distortion
            for c in cams.values():
                if c["camera_model"] == "PINHOLE":
                    c.update(camera_model="OPENCV", k1=0.0, k2=0.0, p1=0.0, p2=0.0)
        else:
            raise InputError(f"the model mixes camera models nerfstudio cannot share ({', '.join(sorted(kinds))}); "
                             "add --undistort")
    shared = len(cams) == 1
    frames = []
    for image_id in sorted(rec.reg_image_ids(), key=lambda i: rec.image(i).name):
        image = rec.image(image_id)
        c2w = np.eye(4)
        c2w[:3] = image.cam_from_world().inverse().matrix()
        frame = {"file_path": f"images/{image.name}", "transform_matrix": (world @ c2w @ OPENGL_FROM_OPENCV).tolist(),
                 "colmap_im_id": int(image_id)}
        if not shared:
            frame.update({k: v for k, v in cams[image.camera_id].items() if k != "camera_model"})
        frames.append(frame)
    meta = {"camera_model": next(iter(cams.values()))["camera_model"]}
    if shared:
        meta.update(next(iter(cams.values())))
    xyz, rgb = points_and_colors(rec)
    write_ply(xyz @ world[:3, :3].T, rgb, dest / "sparse_pc.ply")
    meta.update(frames=frames, applied_transform=world[:3].tolist(), ply_file_path="sparse_pc.ply")
    (dest / "transforms.json").write_text(json.dumps(meta, indent=2))
    return meta


def check_request(fmt: str, undistort_images: bool) -> None:
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if undistort_images and fmt == "ply":
        raise InputError("--undistort applies to colmap-text and nerfstudio, not ply")


def export(model: Model, fmt: str, dest: Path, undistort_images: bool = False, image_dir: Path | None = None,
           overwrite: bool = False) -> list[str]:
    """Write `model` as `fmt` into DEST; returns DEST's new top-level entries."""
    check_request(fmt, undistort_images)
    dest = Path(dest).absolute()
    if model.out_dir and (dest == model.out_dir.absolute() or model.out_dir.absolute() in dest.parents):
        raise InputError("--out must not be inside the model's folder")
    replace = _check_dest(dest, overwrite)
    need_images = fmt == "nerfstudio" or undistort_images
    images = _image_dir(model, image_dir) if need_images else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        rec = undistort(model, images, stage) if undistort_images else model.rec
        if fmt == "colmap-text":
            (stage / "sparse" / "0").mkdir(parents=True)
            rec.write_text(str(stage / "sparse" / "0"))
        elif fmt == "nerfstudio":
            if not undistort_images:
                _copy_images(rec, images, stage)
            write_transforms(rec, stage)
        else:
            write_ply(*points_and_colors(rec), stage / "points.ply")
        entries = sorted(p.name for p in stage.iterdir())
        (stage / MANIFEST).write_text(json.dumps({"format": fmt, "undistorted": undistort_images,
                                                  "model": str(model.model_dir), "entries": entries}, indent=2))
        # Complete: now (and only now) replace the earlier export and move the new one in.
        for name in replace:
            p = dest / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        if dest.exists():
            for p in stage.iterdir():
                p.rename(dest / p.name)
            stage.rmdir()
        else:
            stage.rename(dest)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    logger.info("exported %s to %s", fmt, dest)
    return entries
