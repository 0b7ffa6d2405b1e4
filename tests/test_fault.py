"""Crash safety (issue 26): SIGKILL at every stage boundary and inside long stages, rerun, same result.

Each case runs a real `gimsfm` command with GIMSFM_FAULT=POINT:N[@SECONDS] (gimsfm/utils/fault.py), which
SIGKILLs it at the N-th pass of POINT (or SECONDS later, inside C++ calls), then reruns the same command and
compares the result with an uninterrupted run: reconstruct (same registered images, same 3D points: fixed
seed, one mapping thread), label (same label files), train (resumes from the last checkpoint written and
ends with the same weights). Files a user keeps in the folders must be untouched.

The default suite runs a short set (11 tests, about 20 gimsfm processes: about 2-2.5 min on 2 idle cores). The full matrix, every kill point with N and
SECONDS drawn from 3 seeds:  python scripts/fault_matrix.py   (= GIMSFM_FAULT_FULL=1 pytest -m fault).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scenes" / "sacre_coeur" / "images"
# Six demo photos that all see each other: sift-nn maps them (with one retry) in a few seconds.
SCENE = ["71295362", "93341989", "17295357", "51091044", "44120379", "02928139"]
FULL = bool(os.environ.get("GIMSFM_FAULT_FULL"))
SEEDS = [int(s) for s in os.environ.get("GIMSFM_FAULT_SEEDS", "0,1,2").split(",")]
pytestmark = pytest.mark.fault

# (kill point, passes it has in one run, delay range in s for a kill inside the C++ call that follows)
RECONSTRUCT_POINTS = [
    ("features.write", 36, None), ("features.image", 6, None), ("stage.features", 1, None),
    ("stage.pairs", 1, None), ("matches.write", 15, None), ("matches.pair", 15, None),
    ("stage.matching", 1, None), ("database.import", 15, None), ("verify.start", 1, (0.0, 0.3)),
    ("stage.verification", 1, None), ("mapping.start", 3, (0.0, 0.3)), ("mapping.attempt", 3, None),
    ("model.write", 1, None), ("stage.mapping", 1, None), ("export.ply", 1, None), ("stage.export", 1, None),
]
LABEL_POINTS = [("label.frame", 9, None), ("label.write", 2, None), ("label.video", 2, None)]
TRAIN_ITERS = 5
TRAIN_POINTS = [("train.iteration", TRAIN_ITERS, None), ("train.checkpoint", TRAIN_ITERS, None)]
SHORT = {"reconstruct": ["features.write:20", "mapping.start:2@0.1"],
         "label": ["label.write:1"], "train": ["train.checkpoint:3"]}


def _cases(command: str, points: list) -> list[str]:
    if not FULL:
        return SHORT[command]
    out = []
    for seed in SEEDS:  # seed-major: a partial run has covered every point once before repeating any
        for name, passes, delay in points:
            rng = random.Random(f"{name}/{seed}")
            spec = f"{name}:{rng.randint(1, passes)}"
            if delay:
                spec += f"@{rng.uniform(*delay):.2f}"
            out.append(spec)
    return list(dict.fromkeys(out))  # one-pass points draw the same spec for every seed


def _run(args: list, env: dict | None = None, preexec=None, timeout: int = 1200) -> subprocess.CompletedProcess:
    full_env = {**{k: v for k, v in os.environ.items() if k != "GIMSFM_FAULT"}, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gimsfm", *map(str, args)], capture_output=True, text=True,
                          env=full_env, preexec_fn=preexec, timeout=timeout, cwd=REPO)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _killed(proc: subprocess.CompletedProcess, spec: str) -> None:
    """A timed kill may come after the command finished; a kill at a pass must have happened."""
    if "@" in spec:
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-1500:]
    else:
        assert proc.returncode == -signal.SIGKILL, f"{spec} not reached: rc {proc.returncode} {proc.stderr[-800:]}"


# ------------------------------------------------------------------------------------------ reconstruct
@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    images = tmp_path_factory.mktemp("scene") / "images"
    images.mkdir()
    for prefix in SCENE:
        shutil.copy(next(DEMO.glob(f"{prefix}_*.jpg")), images)
    return images


def _reconstruct_args(images: Path, out: Path) -> list:
    return ["reconstruct", images, "--out", out, "--matcher", "sift-nn", "--max-keypoints", "1024",
            "--resize-max", "640"]


def _model(out: Path) -> tuple[list[str], np.ndarray]:
    import pycolmap

    rec = pycolmap.Reconstruction(str(out / "sparse"))
    names = sorted(rec.image(i).name for i in rec.reg_image_ids())
    xyz = np.array(sorted(tuple(p.xyz) for p in rec.points3D.values()))
    return names, xyz


@pytest.fixture(scope="module")
def reference(scene, tmp_path_factory) -> tuple[list[str], np.ndarray]:
    out = tmp_path_factory.mktemp("reference") / "out"
    r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 0, r.stderr[-2000:]
    names, xyz = _model(out)
    assert len(names) >= 5 and len(xyz) > 80
    return names, xyz


def _assert_same_model(out: Path, reference) -> None:
    names, xyz = _model(out)
    assert names == reference[0]
    assert xyz.shape == reference[1].shape and np.allclose(xyz, reference[1], rtol=0, atol=1e-9)
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("spec", _cases("reconstruct", RECONSTRUCT_POINTS))
def test_reconstruct_killed_and_rerun(spec, scene, reference, tmp_path):
    out = tmp_path / "out"
    images_before = _snapshot(scene)
    killed = _run(_reconstruct_args(scene, out), {"GIMSFM_FAULT": spec})
    _killed(killed, spec)
    (out / "my_notes.txt").write_text("mine\n")  # a user's file, dropped in while the run was down
    r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 0, r.stderr[-2000:]
    if killed.returncode == -signal.SIGKILL:  # the dead run's lock file names it
        assert "taking over the lock of an earlier gimsfm run" in r.stderr
    _assert_same_model(out, reference)
    assert (out / "my_notes.txt").read_text() == "mine\n"
    assert _snapshot(scene) == images_before


def test_second_run_on_the_same_folder_stops_at_once(scene, tmp_path):
    from gimsfm.utils.runlock import RunLock

    out = tmp_path / "out"
    with RunLock(out, "reconstruct (test)"):
        r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"another gimsfm run (pid {os.getpid()}, started " in lines[0], r.stderr
    assert str(out) in lines[0] and "--overwrite" not in lines[0]
    assert not out.exists()  # the second run wrote nothing; the holder, done, removed its empty folder


def test_hdf5_held_by_another_process_is_not_called_corrupt(scene, reference, tmp_path):
    """An HDF5 file another process holds open is busy, not broken: no '--overwrite' advice, nothing set aside."""
    out = tmp_path / "out"
    r = _run(_reconstruct_args(scene, out), {"GIMSFM_FAULT": "stage.matching:1"})
    assert r.returncode == -signal.SIGKILL
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); "
                               "print('open', flush=True); time.sleep(60)", str(out / "matches.h5")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        r = _run(_reconstruct_args(scene, out))
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 3, r.stderr[-1500:]
    last = r.stderr.strip().splitlines()[-1]
    assert "matches.h5 open" in last and "--overwrite" not in last and "corrupt" not in last
    assert not list(out.glob("*.corrupt-*"))
    r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 0, r.stderr[-1500:]
    _assert_same_model(out, reference)


@pytest.mark.parametrize("sig", [signal.SIGTERM] + ([signal.SIGINT] if FULL else []))
def test_signal_during_mapping_is_one_line(sig, scene, reference, tmp_path):
    """SIGTERM / Ctrl-C inside COLMAP: one line, exit 143 / 130, no glog stack trace; the rerun resumes."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gimsfm", *map(str, _reconstruct_args(scene, out))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    log, t0 = out / "gimsfm.log", time.time()
    while not (log.exists() and "database:" in log.read_text()):  # the C++ stages start right after
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (128 + sig, 0), err[-2000:]  # 0: the run ended before the signal landed
    assert "stack trace" not in err and "Aborted at" not in err and "Traceback" not in err
    if proc.returncode:
        assert err.strip().splitlines()[-1] == "interrupted; rerun the same command to resume", err[-3000:]
    r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 0, r.stderr[-1500:]
    _assert_same_model(out, reference)


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("limit", [1_000_000] + ([100_000, 20_000] if FULL else []))
def test_full_disk_is_one_line_and_the_rerun_resumes(limit, scene, reference, tmp_path):
    out = tmp_path / "out"
    if limit < 1_000_000:  # a late stage fails: features and matches exist already
        r = _run(_reconstruct_args(scene, out), {"GIMSFM_FAULT": "stage.matching:1"})
        assert r.returncode == -signal.SIGKILL
    r = _run(_reconstruct_args(scene, out), preexec=_file_size_limit(limit))
    assert r.returncode == 5, r.stderr[-1500:]
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}") and "file too large" in lines[0], r.stderr
    r = _run(_reconstruct_args(scene, out))
    assert r.returncode == 0, r.stderr[-1500:]
    _assert_same_model(out, reference)


@contextmanager
def _tmpfs(path: Path, options: str):
    """A small or read-only filesystem (needs root); yields False where mounting is not allowed."""
    path.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.skipif(not FULL, reason="full matrix only (the file-size limit test covers the short set)")
def test_disk_full_on_a_tiny_filesystem(scene, reference, tmp_path):
    """A real ENOSPC (a 2 MB tmpfs): one line naming the file; after the space grows, the rerun resumes."""
    mnt = tmp_path / "disk"
    with _tmpfs(mnt, "size=2m") as ok:
        if not ok:
            pytest.skip("mounting a tmpfs needs root")
        out = mnt / "out"
        r = _run(_reconstruct_args(scene, out))
        assert r.returncode == 5, r.stderr[-1500:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {out}") and "no space left on device" in last, r.stderr
        assert subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)]).returncode == 0
        r = _run(_reconstruct_args(scene, out))
        assert r.returncode == 0, r.stderr[-1500:]
        _assert_same_model(out, reference)


def test_unwritable_output_folder_is_one_line(scene, tmp_path):
    """A read-only folder: a read-only tmpfs as root (root ignores permission bits), else a chmod 555 folder."""
    ro = tmp_path / "ro"
    with _tmpfs(ro, "ro,size=1m") if os.geteuid() == 0 else nullcontext(False) as mounted:
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("root ignores permission bits and cannot mount a read-only folder here")
            ro.mkdir(exist_ok=True)
            ro.chmod(0o555)
        out = ro / "out"
        r = _run(_reconstruct_args(scene, out))
        assert r.returncode == 5, r.stderr[-1500:]
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(out) in lines[0], r.stderr
        assert "read-only file system" in lines[0] or "permission denied" in lines[0], lines[0]
        assert not out.exists()


# ------------------------------------------------------------------------------------------------ label
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Two frame folders (label treats a folder of frames like a video): a camera gliding over a demo photo."""
    import cv2

    root = tmp_path_factory.mktemp("clips")
    out = []
    for name, prefix, frames in (("clip_a", SCENE[0], 5), ("clip_b", SCENE[1], 4)):
        d = root / name
        d.mkdir()
        photo = cv2.imread(str(next(DEMO.glob(f"{prefix}_*.jpg"))))
        for i in range(frames):
            s = 1.0 + 0.03 * i
            warp = np.float32([[s, 0, -8.0 * i], [0, s, -4.0 * i]])
            cv2.imwrite(str(d / f"{i:06d}.jpg"), cv2.warpAffine(photo, warp, (480, 360)))
        out.append(d)
    return out


def _label_args(clips: list[Path], out: Path) -> list:
    return ["label", *clips, "--out", out, "--methods", "sift-nn", "--step", "1", "--max-keypoints", "512",
            "--min-propagate", "64"]


def _label_store(out: Path) -> dict:
    """Everything a label store holds, but the run time."""
    content = {}
    for h5 in sorted(out.glob("*/labels.h5")):
        with h5py.File(h5) as f:
            f.visititems(lambda n, o: content.__setitem__(f"{h5.parent.name}/{n}", o[()].tobytes())
                         if isinstance(o, h5py.Dataset) else None)
        stats = json.loads((h5.parent / "stats.json").read_text())
        stats.pop("seconds")
        content[f"{h5.parent.name}/stats"] = stats
        content[f"{h5.parent.name}/frames"] = sorted(p.name for p in (h5.parent / "frames").iterdir())
    content["total"] = json.loads((out / "index.json").read_text())["total"]
    return content


@pytest.fixture(scope="module")
def label_reference(clips, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("label_ref") / "labels"
    r = _run(_label_args(clips, out))
    assert r.returncode == 0, r.stderr[-2000:]
    store = _label_store(out)
    assert store["total"]["videos"] == 2 and store["total"]["pairs"] > 0
    return store


@pytest.mark.parametrize("spec", _cases("label", LABEL_POINTS))
def test_label_killed_and_rerun(spec, clips, label_reference, tmp_path):
    out = tmp_path / "labels"
    out.mkdir()
    (out / "README.txt").write_text("my label store\n")
    killed = _run(_label_args(clips, out), {"GIMSFM_FAULT": spec})
    _killed(killed, spec)
    r = _run(_label_args(clips, out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert _label_store(out) == label_reference
    assert not list(out.glob("*.partial")) and (out / "README.txt").read_text() == "my label store\n"


# ------------------------------------------------------------------------------------------------ train
def _train_preset(tmp_path: Path, cache: Path) -> Path:
    p = yaml.safe_load((REPO / "tests" / "data" / "train_tiny.yaml").read_text())
    p["out_dir"] = str(tmp_path / "run")
    p["data"]["cache_dir"] = str(cache)
    p["train"].update(max_iters=TRAIN_ITERS, val_every=1000, ckpt_every_s=0)  # a checkpoint every iteration
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory) -> tuple[Path, dict]:
    import torch

    root = tmp_path_factory.mktemp("train_ref")
    cache = root / "cache"
    r = _run(["train", "--preset", _train_preset(root, cache), "--no-progress"])
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(root / "run" / "checkpoint.pt", weights_only=False)
    assert ck["iteration"] == TRAIN_ITERS
    return cache, ck["model"]


@pytest.mark.parametrize("spec", _cases("train", TRAIN_POINTS))
def test_train_killed_and_resumed(spec, train_reference, tmp_path):
    import torch

    cache, weights = train_reference
    preset = _train_preset(tmp_path, cache)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.md").write_text("my notes\n")
    killed = _run(["train", "--preset", preset, "--no-progress"], {"GIMSFM_FAULT": spec})
    _killed(killed, spec)
    # Both points kill after iteration N ran and before its checkpoint landed: the last one is N - 1.
    last = int(spec.split(":")[1].split("@")[0]) - 1
    if last:
        assert torch.load(run / "checkpoint.pt", weights_only=False)["iteration"] == last
    r = _run(["train", "--preset", preset, "--resume", "--no-progress"])
    assert r.returncode == 0, r.stderr[-2000:]
    if last:
        assert f"at iteration {last} " in r.stderr
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ck["iteration"] == TRAIN_ITERS
    for k, v in weights.items():
        assert torch.equal(v, ck["model"][k]), k
    assert (run / "notes.md").read_text() == "my notes\n"
    assert not list(run.glob("checkpoint.pt.tmp*"))


def test_label_workers_ctrl_c_one_line(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group: `label --workers 2` must stop with the one-line
    message, no KeyboardInterrupt traces from its workers, and no worker left running."""
    import time

    import cv2

    clips = []  # long enough (4 x 24 frames) to be interrupted while the workers label
    for c, name in enumerate(SCENE[:4]):
        d = tmp_path / f"clip_{c}"
        d.mkdir()
        photo = cv2.imread(str(next(DEMO.glob(f"{name}_*.jpg"))))
        for i in range(24):
            s = 1.0 + 0.01 * i
            cv2.imwrite(str(d / f"{i:06d}.jpg"), cv2.warpAffine(photo, np.float32([[s, 0, -3.0 * i], [0, s, -2.0 * i]]),
                                                               (480, 360)))
        clips.append(d)
    out = tmp_path / "labels"
    proc = subprocess.Popen([sys.executable, "-m", "gimsfm", *map(str, _label_args(clips, out)), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(out.glob("*/")):  # the workers have started on their videos
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode in (0, -signal.SIGINT) and (out / "index.json").is_file():
        pytest.skip("labelling finished before the interrupt")  # (-SIGINT: it came during interpreter exit)
    assert proc.returncode == 130, err[-1500:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-1500:]
    assert err.strip().splitlines()[-1] == "interrupted; rerun the same command to resume", err[-3000:]
    deadline = time.time() + 10  # nothing of the group is left (multiprocessing's resource tracker goes last)
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the interrupted label run are still running")
