"""`gimsfm train`: train a matcher from a preset (resumable), or export its weights."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app


@app.command("train")
def train_cmd(
    preset: Path = typer.Option(..., "--preset", "-p", help="Training preset YAML (pipelines/train_*.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over, deleting the run's checkpoint and logs."),
    settings: list[str] = typer.Option([], "--set", help="KEY.PATH=VALUE (YAML value) on top of the preset, "
                                       "repeatable, e.g. --set name=short --set optim.decay_start=300."),
    max_iters: Optional[int] = typer.Option(None, "--max-iters", help="Override train.max_iters."),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Stop (with a checkpoint) after N seconds "
                                             "of this invocation (a resumed run trains N seconds more)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Only export the checkpoint's weights to this "
                                          "file (fp16 state dict + config) and exit."),
    speed_json: Optional[Path] = typer.Option(None, "--speed-json", help="With --export: a `gimsfm bench speed` "
                                              "results.json to include in the model card."),
    card_only: Optional[Path] = typer.Option(None, "--card", help="Only (re)write the model card of an exported "
                                             "weights file (next to it, .md)."),
    notes: str = typer.Option("", "--notes", help="With --export: a notes paragraph for the model card."),
    export_val: Optional[Path] = typer.Option(None, "--export-val", help="Only write the homography validation "
                                              "pairs as HPatches-layout folders under this directory and exit."),
    prepare: bool = typer.Option(False, "--prepare", help="Only compute the cached training/validation records "
                                 "(SIFT features + projections) and exit; `--workers` processes."),
    workers: int = typer.Option(1, "--workers", help="With --prepare: processes."),
    tune_ratio: Optional[str] = typer.Option(None, "--tune-ratio", help="Patch descriptors: score these Lowe ratios "
                                             "(comma-separated) on the validation pairs with the checkpoint's "
                                             "weights and print the best; ship it with --set model.conf.ratio=R "
                                             "--export FILE."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda. Under torchrun (e.g. `torchrun "
                               "--standalone --nproc-per-node 2 -m gimsfm train ...`) each process takes one "
                               "GPU, or one CPU share with the gloo backend."),
) -> None:
    """Train a matcher (model, data, schedule from the preset); checkpoints to OUT_DIR/checkpoint.pt."""
    from ..train.trainer import Trainer, export_weights, load_preset, prepare_cache, write_model_card

    p = load_preset(preset, settings)
    if max_time is not None:
        p["train"]["max_time_s"] = max_time
    if prepare:
        typer.echo(f"{prepare_cache(p, workers)} records cached under {p['data']['cache_dir']}")
        return
    trainer = Trainer(p, device=device)
    if not resume:
        from ..utils import interrupt

        interrupt.message = "interrupted; rerun with --resume to continue from the last checkpoint"
    if export_val is not None:
        from ..train.datasets import export_homography_val

        srcs, _ = trainer._sources("val")
        dirs = [d for s in srcs if s.kind == "homography" for d in export_homography_val(s, export_val)]
        others = [str(s.root) for s in srcs if s.kind == "depth"]
        typer.echo(f"wrote {len(dirs)} homography validation pairs under {export_val}"
                   + (f"; depth/pose validation sets (ZEB layout): {', '.join(others)}" if others else ""))
        return
    if tune_ratio is not None:
        _tune_ratio(trainer, p, tune_ratio)
        return
    if card_only is not None:
        card = write_model_card(card_only, Path(card_only).with_suffix(".md"), f"Model card: {Path(card_only).stem}",
                                speed_json, notes)
        typer.echo(f"model card: {card}")
        return
    if export is not None:
        info = export_weights(trainer.saved_checkpoint or trainer.ckpt_path, export, preset=p)
        card = write_model_card(export, Path(export).with_suffix(".md"), f"Model card: {Path(export).stem}",
                                speed_json, notes)
        typer.echo(f"model card: {card}")
        typer.echo(f"exported iteration {info['iteration']} ({info['elapsed_s'] / 60:.1f} min trained) to {export}")
        return
    summary = trainer.run(resume=resume, overwrite=overwrite, max_iters=max_iters, progress=not no_progress)
    typer.echo(f"stopped at iteration {summary['iteration']}; checkpoint {summary['checkpoint']}")
    if summary.get("sigterm"):  # the trainer finished its iteration and wrote the checkpoint first
        import signal

        from ..utils.interrupt import Interrupted

        raise Interrupted(signal.SIGTERM)


def _tune_ratio(trainer, preset: dict, text: str) -> None:
    from ..errors import InputError
    from ..train.arch.patch_descriptor import tune_ratio

    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise InputError(f"--tune-ratio: not a list of numbers: {text!r}") from None
    if trainer.saved_checkpoint is None:
        raise InputError(f"--tune-ratio: no checkpoint of {preset['name']} to tune")
    trainer.build()
    if getattr(trainer.model, "input_kind", "") != "patches":
        raise InputError("--tune-ratio applies to patch descriptors only")
    trainer.load()  # the trainer's own reader: the run's checkpoint, else the committed compact one
    scores = tune_ratio(trainer.model, trainer.val_sources, preset, ratios)
    for r, s in scores.items():
        typer.echo(f"ratio {r:.3f}: mean validation AUC@5 {100 * s:.2f}")
    best = max(scores, key=scores.get)
    typer.echo(f"best ratio {best} (ship: --set model.conf.ratio={best} --export FILE)")


@app.command("average")
def average_cmd(
    weights: list[Path] = typer.Argument(..., help="Exported weights files (.pt) of one architecture, e.g. runs "
                                         "fine-tuned from the same base model."),
    out: Path = typer.Option(..., "--out", "-o", help="Averaged weights file to write (+ its model card, .md)."),
    weight: list[float] = typer.Option([], "--weight", help="One mixing weight per file, in order (default: "
                                       "uniform)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    notes: str = typer.Option("", "--notes", help="A notes paragraph for the model card."),
) -> None:
    """Average the weights of fine-tuned matchers (a "model soup"); use it as `--matcher NAME:OUT`."""
    from ..train.soup import average_weights, write_soup_card

    average_weights(weights, out, weights=weight or None, overwrite=overwrite)
    card = write_soup_card(out, notes=notes)
    typer.echo(f"averaged {len(weights)} weights files into {out}; model card: {card}")
