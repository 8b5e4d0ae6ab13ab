"""``oskit models train-clip``: train the project's small CLIP on generated images.

A thin layer over :func:`kit.models.train_clip.train`; registered under ``oskit models`` by
:mod:`kit.cli.models`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kit.cli.common import json_option, verbose_option

__all__ = ["train_clip"]


@click.command(name="train-clip")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for MODEL.pt (fp16 weights) and MODEL.train.json (config + held-out metrics).")
@click.option("--minutes", type=click.FloatRange(min=0.05), default=13.0, show_default=True,
              help="Training time budget in minutes (held-out evaluation runs after it).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Stop after this many steps (whichever of --minutes/--steps ends first).")
@click.option("--seed", type=int, default=0, show_default=True, help="Data and initialisation seed.")
@click.option("--model", "model_name", default="oskit-clip-tiny", show_default=True,
              help="open_clip architecture (kit/models/clip_configs/*.json or a built-in one).")
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: all cores).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-generation processes (default: 0 on ≤ 2 cores, else cores - 1).")
@click.option("--eval-images", type=click.IntRange(min=10), default=500, show_default=True,
              help="Held-out images for the recall metrics.")
@click.option("--init-weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Continue from these weights instead of a random start.")
@json_option
@verbose_option
def train_clip(out_dir: Path, minutes: float, steps: int | None, seed: int, model_name: str, batch_size: int,
               lr: float, device: str, threads: int | None, workers: int | None, eval_images: int,
               init_weights: str | None, as_json: bool) -> None:
    """Train a small CLIP from scratch on generated images and captions, then report held-out
    text→image, image→text and phone-photo image→image recall@1/5/10.

    \b
    Example:
      oskit models train-clip --out models/weights --minutes 13 --seed 0
    """
    from kit.models.train_clip import TrainConfig, train

    cfg = TrainConfig(model=model_name, seed=seed, minutes=minutes, steps=steps, batch_size=batch_size, lr=lr,
                      device=device, threads=threads, workers=workers, eval_images=eval_images,
                      init_weights=init_weights)

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "step" and (event["step"] % 20 == 0 or event["step"] == 1):
            click.echo(f"step {event['step']:>6}  samples {event['samples']:>8}  loss {event['loss']:.3f}  "
                       f"lr {event['lr']:.2e}  {event['elapsed_s']:.0f}s", err=True)
        elif event["event"] == "evaluate":
            click.echo(f"evaluating on {event['n_images']} held-out images…", err=True)

    result = train(cfg, out_dir, progress=progress)
    if as_json:
        json.dump({"weights": str(result.weights), "report": str(result.report), "steps": result.steps,
                   "samples": result.samples, "train_seconds": round(result.seconds, 1),
                   "held_out": result.metrics}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    m = result.metrics
    click.echo(f"weights  {result.weights}")
    click.echo(f"report   {result.report}")
    click.echo(f"trained  {result.steps} steps, {result.samples} samples in {result.seconds:.0f}s")
    for key, label in (("text_to_image", "text→image"), ("image_to_text", "image→text"),
                       ("phone_photo_image_to_image", "photo→image")):
        if key in m:
            r = m[key]
            click.echo(f"{label:<12} R@1 {r['recall@1']:.3f}  R@5 {r['recall@5']:.3f}  R@10 {r['recall@10']:.3f}"
                       f"  ({m['n_images']} held-out images)")
