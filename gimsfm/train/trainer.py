"""The trainer: preset -> data + model -> iterations, validation, checkpoints, CSV logs, curves, export.

It knows only the model interface of `gimsfm.models` (forward / loss / predict) and the batches of the data
pipeline, so another registered architecture trains with the same code.

Reproducibility: the model is initialised from `seed`, batch `it` is a pure function of (seed, it) and the
checkpoint holds the optimizer state, so an interrupted run resumed with --resume continues exactly (up to
float non-determinism of multi-threaded kernels; the default of one thread is deterministic).

Devices and scale-out: `device` (auto | cpu | cuda) places model and batches; under torchrun (WORLD_SIZE > 1)
each process draws batch `it * world + rank`, gradients are averaged by DDP (gloo on CPU, NCCL on GPUs),
the ranks share validation (each evaluates every world-th pair; the result equals one process's), and rank 0
alone logs and writes checkpoints (which are the same files as a one-process run's).
"""
from __future__ import annotations

import copy
import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import yaml

from .. import logger
from ..errors import InputError, OutputExistsError
from ..models import build_model, load_exported  # noqa: F401  (load_exported: re-exported for callers)
from ..utils.config import deep_merge as _merge, read_yaml_extends
from ..utils.checkpoint import read_torch_file
from ..utils.device import resolve_device, torchrun_world
from ..utils.fault import point
from ..utils.runlock import RunLock, pid_alive
from .arch import arch_for
from .arch.lightglue import evaluate  # noqa: F401  (public name, used by tests and tools)
from .datasets import resolve_path
from .sources import build_source

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "out_dir": "runs/train/{name}",
    "model": {"name": "lightglue", "conf": {}},
    "data": {
        "cache_dir": "runs/cache/train_pairs",
        "n_kpts": 512,
        "batch_size": 2,
        "pos_th": 3.0,
        "neg_th": 5.0,
        "sift": {"max_keypoints": 1024},
        # Which records each batch draws (and their keypoint subsets); None = `seed`. Changing it alone repeats
        # a run on the same sources and caches: the run-to-run noise of a recipe, without rebuilding caches.
        "sample_seed": None,
        "sources": [{"type": "homography", "name": "textures", "weight": 1.0, "n_train": 2000, "n_val": 100}],
    },
    "optim": {"lr": 2e-4, "warmup": 200, "decay_start": 10**9, "decay_every": 20000, "decay": 0.5,
              "weight_decay": 0.0, "grad_clip": 1.0},
    "train": {"max_iters": 100000, "threads": 1, "log_every": 25, "val_every": 2000, "ckpt_every_s": 240,
              "max_time_s": None, "init_from": None, "loader_workers": 0},
    "val": {"n_kpts": 1024, "max_pairs": 100, "ransac_px": 3.0},
    "export": {"path": None},
}


def _apply_source_overrides(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """`source_overrides` (`{name or glob: {key: value}}`) merged into the matching data sources: variants of
    a preset, e.g. the GIM ablations, state only what they change."""
    import fnmatch

    overrides = raw.pop("source_overrides", None) or {}
    if overrides:
        sources = raw.get("data", {}).get("sources")
        if not sources:
            raise InputError(f"preset {path}: source_overrides but no data sources")
        for pattern, over in overrides.items():
            hits = [s for s in sources if fnmatch.fnmatch(str(s.get("name", s.get("type"))), pattern)]
            if not hits:
                raise InputError(f"preset {path}: source_overrides {pattern!r} matches no source")
            for s in hits:
                s.update(_merge(s, over))
    return raw


def apply_overrides(preset: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`KEY.PATH=VALUE` settings (VALUE parsed as YAML) on top of a merged preset, e.g. a shorter schedule
    for an ablation protocol, without copying the preset. Only existing keys: a typo is an error, not a new
    setting that nothing reads."""
    out = copy.deepcopy(preset)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY.PATH=VALUE")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"--set {item!r}: no setting {'.'.join(parts[:i + 1])!r} in the preset")
            if i < len(parts) - 1:
                node = node[part]
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"--set {item!r}: value is not valid YAML ({e.problem})") from None
        if isinstance(value, str) and isinstance(node[parts[-1]], (int, float)):
            try:  # YAML 1.1 reads `5e-4` (no dot) as a string
                value = float(value) if isinstance(node[parts[-1]], float) or "." in value or "e" in value.lower() \
                    else int(value)
            except ValueError:
                raise InputError(f"--set {item!r}: {'.'.join(parts)} takes a number") from None
        node[parts[-1]] = value
    return out


def load_preset(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    raw = read_yaml_extends(path, _apply_source_overrides)
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise InputError(f"preset {path}: unknown key(s) {', '.join(sorted(unknown))}")
    preset = apply_overrides(_merge(DEFAULTS, raw), overrides)
    if overrides:
        preset["_overrides"] = list(overrides)
    preset["out_dir"] = str(preset["out_dir"]).replace("{name}", str(preset["name"]))
    preset["_path"] = str(path)
    preset["_source"] = str(path)  # kept in checkpoints (unlike _path): the model card's reproduce command
    return preset


def lr_at(it: int, o: dict) -> float:
    lr = o["lr"] * min(1.0, (it + 1) / max(1, o["warmup"]))
    if it > o["decay_start"]:
        lr *= o["decay"] ** ((it - o["decay_start"]) / o["decay_every"])
    return lr


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    for old in path.parent.glob(path.name + ".tmp*"):  # left by a killed run
        if old.name[len(path.name) + 4:].isdigit() and not pid_alive(int(old.name[len(path.name) + 4:])):
            old.unlink(missing_ok=True)
    torch.save(obj, tmp)
    point("train.checkpoint")  # killed between the new checkpoint's write and its rename
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------

class BatchStream(torch.utils.data.Dataset):
    """Batches `first..end-1` of this rank, in order. Batch i is a pure function of i (MixedPairs), so
    DataLoader workers can build them ahead in parallel (SIFT, warps) while the model trains on a GPU,
    and the stream is the same as the one computed in the main process."""

    def __init__(self, data: Any, first: int, end: int, world: int, rank: int, batch_size: int):
        self.data, self.first, self.end = data, first, end
        self.world, self.rank, self.batch_size = world, rank, batch_size

    def __len__(self) -> int:
        return max(0, self.end - self.first)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        return self.data.batch((self.first + k) * self.world + self.rank, self.batch_size)


def _loader_worker_init(_: int) -> None:
    import signal

    torch.set_num_threads(1)  # one worker per core: no nested thread pools
    cv2.setNumThreads(1)
    # Own process group: a SIGTERM to the trainer's group (timeout, a scheduler) reaches the trainer alone,
    # which finishes the iteration, writes the checkpoint and shuts the workers down (they also exit on
    # their own when it dies).
    os.setpgrp()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def batch_iterator(data: Any, first: int, end: int, world: int, rank: int, batch_size: int,
                   workers: int, pin: bool = False):
    """Training batches first..end-1: in this process (workers = 0, CPU training) or from `workers`
    DataLoader processes (GPU training, where data preparation on one core would starve the device)."""
    if workers <= 0:
        return (data.batch(i * world + rank, batch_size) for i in range(first, end))
    stream = BatchStream(data, first, end, world, rank, batch_size)
    return iter(torch.utils.data.DataLoader(stream, batch_size=None, shuffle=False, num_workers=workers,
                                            prefetch_factor=4, pin_memory=pin,
                                            worker_init_fn=_loader_worker_init))


class Trainer:
    def __init__(self, preset: dict[str, Any], repo_root: Path | None = None, device: str = "auto"):
        self.p = preset
        self.root = repo_root or Path(__file__).resolve().parents[2]
        self.out = resolve_path(preset["out_dir"], self.root)
        self.ckpt_path = self.out / "checkpoint.pt"
        self.rank, self.local_rank, self.world = torchrun_world()
        self.device = resolve_device(device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.local_rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data
    def _sources(self, split: str):
        d = self.p["data"]
        cache = resolve_path(d["cache_dir"], self.root)
        srcs, weights = [], []
        for spec in d["sources"]:
            if not int(spec.get(f"n_{split}", 0) or 0) and not (spec.get("type") == "depth" and spec.get(f"{split}_root")):
                continue
            s = build_source(spec, split, cache, int(self.p["seed"]), d.get("sift", {}))
            if s is not None:
                srcs.append(s)
                weights.append(float(spec.get("weight", 1.0)))
        return srcs, weights

    def build(self):
        torch.manual_seed(int(self.p["seed"]))
        mc = self.p["model"]
        self.model = build_model(mc["name"], mc.get("conf", {})).to(self.device)
        o = self.p["optim"]
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
        self.arch = arch_for(self.model)
        tr, w = self._sources("train")
        d = self.p["data"]
        sample_seed = self.p["seed"] if d.get("sample_seed") is None else d["sample_seed"]
        self.train_data = self.arch.train_data(tr, w, int(sample_seed), self.p)
        self.val_sources, _ = self._sources("val")

    def init_weights(self) -> Path | None:
        """Start a NEW run from exported weights (`train.init_from`, e.g. the base model for GIM training).
        The architecture must match the preset's model; the optimizer starts fresh."""
        src = self.p["train"].get("init_from")
        if not src:
            return None
        path = resolve_path(src, self.root)
        if not path.is_file():
            raise InputError(f"train.init_from: weights not found: {path}")
        obj = read_torch_file(path, "train.init_from weights")
        sd = obj.get("state_dict", obj.get("model")) if isinstance(obj, dict) else None  # exported or a checkpoint
        if sd is None:
            raise InputError(f"train.init_from: {path} holds no state_dict / model")
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        try:
            self.model.load_state_dict(sd)
        except RuntimeError as exc:
            raise InputError(f"train.init_from: {path} does not fit the preset's model "
                             f"({str(exc).splitlines()[0]}); use the same model.conf as that run") from None
        logger.info("initialised from %s", path)
        return path

    # -- checkpoints
    def state(self, it: int, elapsed: float, history: dict) -> dict[str, Any]:
        return {"iteration": it, "elapsed_s": elapsed,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(), "preset": {k: v for k, v in self.p.items() if k != "_path"},
                "model_name": self.p["model"]["name"], "model_conf": self.model.conf, "history": history,
                "torch_rng": torch.get_rng_state(),
                "hardware": {**hardware(), "device": str(self.device), "world_size": self.world}}

    @property
    def compact_path(self) -> Path | None:
        """The committed, resumable checkpoint (one file in the repo, overwritten), if the preset names one."""
        c = self.p["train"].get("compact_checkpoint")
        return resolve_path(c, self.root) if c else None

    def save(self, it: int, elapsed: float, history: dict) -> None:
        state = self.state(it, elapsed, history)
        atomic_torch_save(state, self.ckpt_path)
        if self.compact_path is not None:
            atomic_torch_save(compact_state(state), self.compact_path)

    @property
    def saved_checkpoint(self) -> Path | None:
        """The checkpoint a resume or an export reads: the run's own, else the committed compact one (a fresh
        checkout, or a run trained on another machine); None if neither exists."""
        if self.ckpt_path.is_file():
            return self.ckpt_path
        if self.compact_path is not None and self.compact_path.is_file():
            return self.compact_path
        return None

    def load(self) -> tuple[int, float, dict]:
        path = self.saved_checkpoint
        if path != self.ckpt_path:
            logger.info("no local checkpoint: resuming from the committed one, %s", path)
        ck = expand_state(read_torch_file(path, "training checkpoint"))
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        return int(ck["iteration"]), float(ck["elapsed_s"]), ck.get("history", {"val": []})

    # -- logs
    def _csv(self, name: str, row: dict, truncate_after: int | None = None) -> None:
        path = self.out / name
        rows = []
        if path.exists():
            with open(path) as f:
                rows = list(csv.DictReader(f))
        if truncate_after is not None:
            rows = [r for r in rows if int(float(r["iteration"])) <= truncate_after]
        if row:
            rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)

    def plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except Exception:  # plotting is optional
            return
        tr = self.out / "train_log.csv"
        va = self.out / "val_log.csv"
        if not tr.exists():
            return
        with open(tr) as f:
            rows = list(csv.DictReader(f))
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        its = [int(float(r["iteration"])) for r in rows]
        for k in ("loss", "nll_last"):
            if rows and k in rows[0]:
                v = np.array([float(r[k]) for r in rows])
                kern = max(1, len(v) // 50)
                vs = np.convolve(v, np.ones(kern) / kern, mode="valid")
                ax[0].plot(its[kern - 1:], vs, label=k)
        ax[0].set_xlabel("iteration"); ax[0].set_ylabel("loss"); ax[0].legend(); ax[0].grid(alpha=.3)
        ax[0].set_yscale("log")
        if va.exists():
            with open(va) as f:
                vr = list(csv.DictReader(f))
            if vr:
                vits = [int(float(r["iteration"])) for r in vr]
                for k in vr[0]:
                    if k.endswith(("precision", "recall", "auc@5")) and not k.startswith("sift-nn"):
                        ax[1].plot(vits, [float(r[k]) for r in vr], marker="o", label=k)
                        base = "sift-nn:" + k
                        if base in vr[0]:
                            ax[1].axhline(float(vr[0][base]), ls="--", lw=0.8, color=ax[1].lines[-1].get_color())
        ax[1].set_xlabel("iteration"); ax[1].set_title("validation (dashed: sift-nn)"); ax[1].grid(alpha=.3)
        if ax[1].lines:
            ax[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=90)
        plt.close(fig)

    # -- main loop
    def _sift_nn_baseline(self, sources: list) -> dict[str, float]:
        """sift-nn's validation numbers, shared by every run on the same validation data and settings through
        a JSON file in the data cache (runs of a preset's variants, e.g. ablations, skip recomputing it)."""
        import hashlib

        d = self.p["data"]
        store = Path(d["cache_dir"]) / "sift_nn_val_baseline.json"
        known = json.loads(store.read_text()) if store.exists() else {}
        res: dict[str, float] = {}
        for src in sources:
            conf = {"val": self.p["val"], "sift": d["sift"], "pos_th": d["pos_th"], "neg_th": d["neg_th"],
                    "source": src.name, "data": src.cache_dir.name}
            if getattr(self.model, "input_kind", "sparse") != "sparse":  # other adapters score differently
                conf["input_kind"] = self.model.input_kind
            key = hashlib.sha1(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:16]
            if key not in known:
                logger.info("validation baseline (sift-nn) on %s", src.name)
                known[key] = self.arch.evaluate(None, [src], self.p, baseline=True)
                store.parent.mkdir(parents=True, exist_ok=True)
                tmp = store.with_name(store.name + f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(known, indent=1))
                os.replace(tmp, store)
            res.update(known[key])
        return res

    def run(self, resume: bool = False, overwrite: bool = False, max_iters: int | None = None,
            progress: bool = True) -> dict[str, Any]:
        t = self.p["train"]
        torch.set_num_threads(int(t["threads"]))
        cv2.setNumThreads(1)
        if self.is_main:  # one training process per run folder (the other DDP ranks follow rank 0)
            with RunLock(self.out, "train"):
                return self._run_locked(resume, overwrite, max_iters, progress)
        return self._run_locked(resume, overwrite, max_iters, progress)

    def _run_locked(self, resume: bool, overwrite: bool, max_iters: int | None, progress: bool) -> dict[str, Any]:
        if self.ckpt_path.exists() and not (resume or overwrite):
            raise OutputExistsError(f"{self.ckpt_path} exists: use --resume to continue or --overwrite to restart")
        if self.world > 1:
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            logger.info("DDP: rank %d of %d on %s", self.rank, self.world, self.device)
        try:
            return self._run(resume, overwrite, max_iters, progress)
        finally:
            if self.world > 1 and dist.is_initialized():
                dist.destroy_process_group()

    def _run(self, resume: bool, overwrite: bool, max_iters: int | None, progress: bool) -> dict[str, Any]:
        from tqdm import tqdm

        t = self.p["train"]
        main = self.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            if overwrite and not resume:
                for f in ("checkpoint.pt", "train_log.csv", "val_log.csv", "curves.png"):
                    (self.out / f).unlink(missing_ok=True)
            # the resolved preset (overrides applied), loadable as a preset: no bookkeeping keys
            (self.out / "preset.yaml").write_text(yaml.safe_dump({k: v for k, v in self.p.items() if k[0] != "_"},
                                                                 sort_keys=False))
        if self.world > 1:
            dist.barrier()  # rank 0 has cleared / created the run folder
        self.build()
        start, elapsed, history = 0, 0.0, {"val": []}
        if resume and self.saved_checkpoint is not None:
            source = self.saved_checkpoint
            start, elapsed, history = self.load()
            if main:
                logger.info("resumed from %s at iteration %d (%.0f s trained)", source, start, elapsed)
                self._csv("train_log.csv", {}, truncate_after=start)
                if (self.out / "val_log.csv").exists():
                    self._csv("val_log.csv", {}, truncate_after=start)
        else:  # a new run (resuming keeps the checkpoint's weights, never re-initialises)
            self.init_weights()
        end = int(max_iters if max_iters is not None else t["max_iters"])
        d = self.p["data"]
        # [first iteration, pair samples per iteration] per stretch of training (the process count can change
        # between resumes), so the model card can state how many samples were seen.
        segs = history.setdefault("segments", [[0, int(d["batch_size"])]] if start > 0 else [])
        per_it = int(d["batch_size"]) * self.world
        if not segs or segs[-1][1] != per_it:
            segs.append([start, per_it])
        base = history.setdefault("baseline", {})
        # The cache folder name fingerprints a source's data (seed, files, mtime): regenerated validation data
        # gets a fresh sift-nn baseline instead of a stale one.
        seen = history.setdefault("baseline_data", {})
        missing = [s for s in self.val_sources if f"{s.name.rsplit('-', 1)[0]}/precision" not in base
                   or seen.get(s.name) != s.cache_dir.name]
        if missing and main:  # sift-nn on the same validation pairs, once per source
            base.update(self._sift_nn_baseline(missing))
        seen.update({s.name: s.cache_dir.name for s in self.val_sources})
        self.model.train()
        step_model = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            step_model = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                                 if self.device.type == "cuda" else None)
        t_last_ckpt = time.time()
        t0 = time.time() - elapsed
        bar = tqdm(total=end, initial=start, disable=not (progress and main), dynamic_ncols=True, mininterval=5,
                   desc=self.p["name"])
        it = start
        last = {}
        max_time = t.get("max_time_s")
        t_invocation = time.time()
        # SIGTERM (kill PID; torchrun forwards it): finish the iteration, write the checkpoint, exit cleanly.
        stop = {"flag": False}
        import signal

        def _on_term(signum, frame):
            stop["flag"] = True

        try:
            prev = signal.signal(signal.SIGTERM, _on_term)
        except ValueError:  # not the main thread
            prev = None
        batches = batch_iterator(self.train_data, start, end, self.world, self.rank, int(d["batch_size"]),
                                 int(t.get("loader_workers") or 0), pin=self.device.type == "cuda")
        while it < end:
            for g in self.opt.param_groups:
                g["lr"] = lr_at(it, self.p["optim"])
            batch = next(batches)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            out = step_model(batch)
            loss, metrics = self.model.loss(batch, out)
            # max_time_s counts this invocation only (a resumed run trains for the next N seconds)
            timeout = (max_time is not None and time.time() - t_invocation >= float(max_time)) or stop["flag"]
            bad_loss = not bool(torch.isfinite(loss))
            if self.world > 1:  # every rank must take the same branch (DDP collectives) and stop together
                flags = torch.tensor([float(bad_loss), float(timeout)], device=self.device)
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
                bad_loss, timeout = bool(flags[0]), bool(flags[1])
            self.opt.zero_grad(set_to_none=True)
            if not bad_loss:
                loss.backward()
                clip = float(self.p["optim"]["grad_clip"] or float("inf"))
                gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                if torch.isfinite(gnorm):  # grads are already averaged: the same on every rank
                    self.opt.step()
                else:
                    logger.warning("non-finite gradient at iteration %d: step skipped", it)
            else:
                logger.warning("non-finite loss at iteration %d: step skipped", it)
            it += 1
            bar.update(1)
            point("train.iteration")
            last = metrics
            if main and (it % int(t["log_every"]) == 0 or it == end):
                self._csv("train_log.csv", {"iteration": it, "time_s": time.time() - t0, "lr": lr_at(it - 1,
                          self.p["optim"]), **metrics})
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(metrics.items())[:3]})
            do_val = bool(self.val_sources) and (it % int(t["val_every"]) == 0 or it == end)
            if do_val:  # every rank takes part (evaluate shards the pairs); rank 0 logs
                res = self.arch.evaluate(self.model, self.val_sources, self.p, rank=self.rank, world=self.world)
                self.model.train()
            if do_val and main:
                row = {"iteration": it, "time_s": time.time() - t0, **res,
                       **{f"sift-nn:{k}": v for k, v in history["baseline"].items()}}
                history["val"].append(row)
                self._csv("val_log.csv", row)
                logger.info("val @%d: %s", it, " ".join(f"{k}={v:.3f}" for k, v in res.items()
                                                       if isinstance(v, float)))
            if main and (do_val or time.time() - t_last_ckpt >= float(t["ckpt_every_s"]) or it == end or timeout):
                self.save(it, time.time() - t0, history)
                self.plot()
                t_last_ckpt = time.time()
            if timeout:
                if main:
                    logger.info("%s at iteration %d: checkpoint written",
                                "SIGTERM" if stop["flag"] else "max_time_s", it)
                break
        bar.close()
        getattr(batches, "_shutdown_workers", lambda: None)()  # DataLoader workers: stop prefetching now
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
        summary = {"iteration": it, "elapsed_s": time.time() - t0, "last": last, "sigterm": stop["flag"],
                   "val": history["val"][-1] if history["val"] else None, "checkpoint": str(self.ckpt_path)}
        if main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        return summary


def _prepare_shard(args: tuple[dict, int, int]) -> int:
    preset, shard, n_shards = args
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    done = 0
    trainer = Trainer(preset, device="cpu")
    trainer.build()
    prepare = getattr(trainer.arch, "prepare", None)  # an adapter may cache more per record (e.g. patches)
    for split, src in _cacheable_sources(trainer):
        for i in range(shard, len(src), n_shards):
            if split == "train" and prepare is not None:
                prepare(trainer.train_data, src, i)
            else:
                src.get(i)
            done += 1
    return done


def _cacheable_sources(trainer: "Trainer") -> list[tuple[str, Any]]:
    """Sources whose records are cached and drawn many times: base data of both splits, video validation, and
    video training sources with `cache: true`. Uncached video training records are left to the run (a fresh
    augmentation per draw)."""
    out = []
    for split in ("train", "val"):
        for s in trainer._sources(split)[0]:
            if s.kind != "video_labels" or split == "val" or getattr(s, "cache", False):
                out.append((split, s))
    return out


def prepare_cache(preset: dict[str, Any], workers: int = 1) -> int:
    """Compute and cache every cacheable record of a preset (SIFT features + projections) in `workers` processes,
    so that a run (or each torchrun rank) starts on cached data. Returns the number of records."""
    from tqdm import tqdm

    n = max(1, int(workers))
    jobs = [(preset, k, n) for k in range(n)]
    if n == 1:
        return _prepare_shard(jobs[0])
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
        return sum(tqdm(pool.map(_prepare_shard, jobs), total=n, desc="cache shards"))


def compact_state(state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint with Adam's moments in bfloat16 (weights stay fp32): about 2/3 of the size, small
    enough to commit; resuming from it continues training (moments approximate to 3 digits)."""
    opt = state["optimizer"]
    slim = {k: {n: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 else v)
                for n, v in st.items()} for k, st in opt["state"].items()}
    return {**state, "optimizer": {**opt, "state": slim}, "compact": True}


def expand_state(state: dict[str, Any]) -> dict[str, Any]:
    if not state.get("compact"):
        return state
    opt = state["optimizer"]
    full = {k: {n: (v.float() if torch.is_tensor(v) and v.dtype == torch.bfloat16 else v) for n, v in st.items()}
            for k, st in opt["state"].items()}
    return {**state, "optimizer": {**opt, "state": full}}


def hardware() -> dict[str, Any]:
    return {"machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def export_weights(ckpt_path: Path, out_path: Path, half: bool = True, extra: dict | None = None,
                   preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checkpoint -> shipped weights: {model_name, conf, state_dict (fp16), training info}. Inference-only
    settings a model declares (`inference_keys`, e.g. the descriptor's ratio test) are taken from `preset`'s
    model.conf when given, so a setting tuned after training ships without retraining."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise InputError(f"checkpoint not found: {ckpt_path}")
    ck = read_torch_file(ckpt_path, "training checkpoint")
    if not isinstance(ck, dict) or "model" not in ck:
        raise InputError(f"not a gimsfm training checkpoint (no 'model'): {ckpt_path}")
    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ck["model"].items()}
    hist = ck.get("history", {})
    info = {"iteration": ck["iteration"], "elapsed_s": ck["elapsed_s"], "hardware": ck.get("hardware"),
            "preset": ck["preset"], "val_history": hist.get("val", []), "val_baseline_sift_nn": hist.get("baseline"),
            "segments": hist.get("segments", []), **(extra or {})}
    conf = dict(ck["model_conf"])
    if preset is not None:
        from ..models import model_class

        keys = getattr(model_class(ck["model_name"]), "inference_keys", ())
        conf.update({k: v for k, v in preset["model"].get("conf", {}).items() if k in keys})
        info["inference_conf"] = {k: conf[k] for k in keys if k in conf}
    obj = {"model_name": ck["model_name"], "conf": conf, "state_dict": sd, "info": info}
    atomic_torch_save(obj, Path(out_path))
    return info


def samples_seen(iteration: int, segments: list, batch_size: int) -> int:
    """Pair samples seen in `iteration` iterations given [start, samples per iteration] segments."""
    segs = sorted((int(a), int(b)) for a, b in (segments or [[0, batch_size]]) if int(a) < iteration)
    bounds = [a for a, _ in segs[1:]] + [iteration]
    return sum((e - a) * n for (a, n), e in zip(segs, bounds))


def write_model_card(ckpt_path: Path, card_path: Path, title: str, speed_json: Path | None = None,
                     notes: str = "") -> Path:
    """Model card from what the checkpoint measured: data, steps, wall time, hardware, validation history
    (model vs sift-nn on the same pairs) and, if given, a `gimsfm bench speed` results.json."""
    ck = read_torch_file(Path(ckpt_path), "checkpoint")
    if "state_dict" in ck:  # an exported weights file: describe exactly these weights
        info = ck["info"]
        ck = {"preset": info["preset"], "model": ck["state_dict"], "model_name": ck["model_name"],
              "model_conf": ck["conf"], "iteration": info["iteration"], "elapsed_s": info["elapsed_s"],
              "hardware": info.get("hardware"),
              "history": {"val": info.get("val_history", info.get("val", [])),
                          "baseline": info.get("val_baseline_sift_nn", {}),
                          "segments": info.get("segments", [])}}
    p, hist = ck["preset"], ck.get("history", {})
    n_params = sum(v.numel() for k, v in ck["model"].items() if "confidence_thresholds" not in k)
    d = p["data"]
    lines = [f"# {title}", "", "Trained by gimsfm's own code (no pretrained weights): "
             f"`gimsfm train --preset {p.get('_source', 'pipelines/train_' + p['name'] + '.yaml')}"
             + "".join(f" --set {o}" for o in p.get("_overrides", [])) + "`.", "",
             "## Model", "",
             f"- architecture: `{ck['model_name']}` {json.dumps(ck['model_conf'])}",
             f"- parameters: {n_params:,}; shipped as an fp16 state dict + config", "",
             "## Training data" + (" (GIM: labelled videos + the base data)" if any(
                 s.get("type") == "video_labels" for s in d["sources"]) else " (domain-specific, as the GIM base model)"),
             ""]
    if p["train"].get("init_from"):
        lines += [f"- initialised from `{p['train']['init_from']}`", ""]
    for src in d["sources"]:
        desc = {k: v for k, v in src.items() if k not in ("warp", "augment")}
        lines.append(f"- {json.dumps(desc)}")
        index = resolve_path(src["root"]) / "index.json" if src.get("type") == "video_labels" else None
        if index is not None and index.is_file():  # what the label store held (the run read this store)
            t = json.loads(index.read_text()).get("total", {})
            lines.append(f"  - label store: {t.get('videos')} videos, {t.get('pairs')} labelled pairs, "
                         f"{t.get('labels')} labels; augmentation {json.dumps(src.get('augment', True))}")
    if ck["model_name"] == "patch_descriptor":
        pp = d.get("patches", {})
        lines += ["", f"- patch pairs: DoG keypoints ({d['sift'].get('max_keypoints')} per image) whose GT projections "
                  f"are mutual nearest within {d['pos_th']} px and whose sizes agree with the pair's median scale "
                  f"change; each patch cut at its own image's keypoint; batch {d['batch_size']} pairs "
                  f"({pp.get('pairs_per_record', 32)} per image pair), hardest-in-batch triplet loss (HardNet)",
                  "- validation: precision / recall of mutual nearest neighbours (no ratio) against the GT labels, "
                  "AUC with the model's ratio test; the sift-nn row is RootSIFT on the very same keypoints", ""]
    else:
        lines += ["", f"- {d['n_kpts']} SIFT keypoints per image in training (of {d['sift'].get('max_keypoints')} "
                  f"cached), batch {d['batch_size']}, GT: mutual nearest within {d['pos_th']} px = match, farther "
                  f"than {d['neg_th']} px from every keypoint = unmatched, occluded/outside = unmatched", ""]
    lines += ["## Training cost (measured)", "",
              f"- iterations: {ck['iteration']}, {samples_seen(ck['iteration'], hist.get('segments'), d['batch_size'])}"
              f" pair samples (batch {d['batch_size']} per process; [first iteration, samples per iteration]: "
              f"{json.dumps(hist.get('segments') or [[0, d['batch_size']]])})",
              f"- wall time: {ck['elapsed_s'] / 3600:.2f} h", f"- hardware: {json.dumps(ck.get('hardware'))}, "
              f"torch threads {p['train']['threads']}, machine shared with other jobs", "",
              "## Validation (held-out photos / held-out synthetic worlds; inference settings, "
              f"{p['val']['n_kpts']} keypoints)", ""]
    val = hist.get("val", [])
    base = hist.get("baseline", {})
    if val:
        keys = [k for k in val[-1] if "/" in k and not k.startswith("sift-nn:") and not k.endswith("/pairs")]
        lines.append("| iteration | hours | " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * (len(keys) + 2))
        for row in val:
            lines.append(f"| {row['iteration']} | {row['time_s'] / 3600:.2f} | " +
                         " | ".join(f"{row.get(k, float('nan')):.3f}" for k in keys) + " |")
        lines.append("| **sift-nn** (same pairs, same keypoints) | | " +
                     " | ".join(f"{base.get(k, float('nan')):.3f}" for k in keys) + " |")
        lines += ["", "precision: fraction of predicted matches within the GT threshold; recall: fraction of GT "
                  "matches found; auc@t: homography corner error AUC (px) or relative pose AUC (deg)."]
    else:
        lines.append("(no validation run yet)")
    if speed_json and Path(speed_json).is_file():
        sp = json.loads(Path(speed_json).read_text())
        lines += ["", "## Speed (`gimsfm bench speed`, matching only)", "",
                  "| matcher | keypoints/image | ms/pair (median) | matches | peak RSS MB |", "|---|---|---|---|---|"]
        for r in sp["runs"]:
            lines.append(f"| {r['matcher']} | {r['kpts']} | {r['ms_median']:.1f} | {r['matches']} | "
                         f"{r['peak_rss_mb']:.0f} |")
        env = sp.get("environment", {})
        lines.append(f"\nMeasured {env.get('date')} on {env.get('cpu_count')} CPU cores, torch threads "
                     f"{env.get('torch_threads')}; {sp.get('pair')}.")
    if notes:
        lines += ["", "## Notes", "", notes]
    Path(card_path).write_text("\n".join(lines) + "\n")
    return Path(card_path)
