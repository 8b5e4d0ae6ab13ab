"""Train the project's small CLIP on generated images (:mod:`kit.models.synth`) and evaluate it.

:func:`train` runs contrastive training of an open_clip architecture from scratch on an endless
stream of generated scenes, on CPU or GPU, within a time or step budget, then evaluates on the
held-out set (:func:`kit.models.synth.make_eval_set`) and writes::

    OUT/oskit-clip-tiny.pt          fp16 state dict, loadable with open_clip's normal API
    OUT/oskit-clip-tiny.train.json  training config, data seed, device, time, held-out metrics

Each batch carries two views of every image: the clean picture (or, sometimes, a phone photo of
it) and a simulated phone photo (:func:`kit.models.synth.phone_photo`). The loss is CLIP's
image↔text loss on both views plus an image↔image loss between the views, which makes the image
tower robust to phone photos (identical-image search). A text may describe several images of a
batch ("red circle"), so targets are multi-positive, from :func:`kit.models.synth.matches`.

:func:`evaluate` reports text→image and image→text recall@1/5/10 on the canonical captions,
phone-photo image→image recall@1/5/10, and mean average precision of the attribute queries.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from kit.errors import ModelError
from kit.models import synth

if TYPE_CHECKING:
    import torch

__all__ = ["Progress", "TrainConfig", "TrainResult", "evaluate", "load_model", "train"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

# training scenes come from seeds below the eval offset, so held-out scenes are never trained on
_TRAIN_SEED_SPACE = synth.EVAL_SEED_OFFSET


@dataclass
class TrainConfig:
    """Everything that decides a training run (recorded in the ``.train.json``)."""

    model: str = "oskit-clip-tiny"
    seed: int = 0
    minutes: float | None = 13.0  # training time budget (evaluation comes after)
    steps: int | None = None  # or a fixed number of steps (whichever ends first)
    batch_size: int = 128
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.1
    warmup_steps: int = 30
    render_size: int = 128  # scenes are drawn at this size, then resized to the model's input
    clean_view_photo_p: float = 0.25  # share of "clean" views replaced by a phone photo too
    image_loss_weight: float = 1.0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch CPU threads (default: all cores)
    workers: int | None = None  # data-generation processes (default: 0 on ≤ 2 cores)
    eval_images: int = 500
    eval_seed: int = 1
    init_weights: str | None = None  # continue from these weights instead of a random start
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    weights: Path
    report: Path
    metrics: dict[str, Any]
    steps: int
    samples: int
    seconds: float


# --------------------------------------------------------------------------------------------
# data


class _Batches:
    """An endless iterator of training batches (numpy arrays), deterministic per (seed, worker)."""

    def __init__(self, cfg: TrainConfig, image_size: int, worker: int, n_workers: int) -> None:
        self.cfg = cfg
        self.size = image_size
        self.rng = random.Random((cfg.seed + 1) * 1_000_003 + worker)
        self.next_seed = (cfg.seed * 7_919_003 + worker * 104_729) % _TRAIN_SEED_SPACE

    def _pixels(self, img: Any) -> np.ndarray:
        from PIL import Image

        img = img.resize((self.size, self.size), Image.Resampling.BICUBIC)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        B = self.cfg.batch_size
        scenes, texts, specs, view_a, view_b = [], [], [], [], []
        for _ in range(B):
            seed = self.next_seed
            self.next_seed = (self.next_seed + 1) % _TRAIN_SEED_SPACE
            scene = synth.make_scene(seed)
            img = synth.render(scene, self.cfg.render_size)
            text, spec = synth.caption_variants(scene, self.rng)
            photo = synth.phone_photo(img, self.rng.randrange(2**31))
            if self.rng.random() < self.cfg.clean_view_photo_p:
                clean = synth.phone_photo(img, self.rng.randrange(2**31))
            else:
                clean = img
            scenes.append(scene)
            texts.append(text)
            specs.append(spec)
            view_a.append(self._pixels(clean))
            view_b.append(self._pixels(photo))
        match = np.array([[synth.matches(specs[i], scenes[j]) for j in range(B)] for i in range(B)], dtype=bool)
        return {"a": np.stack(view_a), "b": np.stack(view_b), "texts": texts, "match": match}


def _batch_stream(cfg: TrainConfig, image_size: int, workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 0:
        return iter(_Batches(cfg, image_size, 0, 1))
    import torch.utils.data as tud

    class _DS(tud.IterableDataset):  # type: ignore[type-arg,misc]
        def __iter__(self) -> Iterator[dict[str, Any]]:
            info = tud.get_worker_info()
            wid = info.id if info is not None else 0
            return iter(_Batches(cfg, image_size, wid, workers))

    loader = tud.DataLoader(_DS(), batch_size=None, num_workers=workers, prefetch_factor=4,
                            persistent_workers=False, collate_fn=lambda x: x)
    return iter(loader)


# --------------------------------------------------------------------------------------------
# model helpers


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but torch sees no CUDA device",
                         hint="use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ModelError(f"unknown device {name!r} (known: auto, cpu, cuda)")
    return name


def _encode_text(model: Any, tokens: "torch.Tensor") -> "torch.Tensor":
    """CLIP.encode_text on tokens trimmed after the longest text of the batch.

    The text tower is causal, so positions after a text's end-of-text token never change it:
    trimming gives the same features for a fraction of the cost (captions use ~20 of 77 tokens).
    """
    import torch
    from open_clip.transformer import text_global_pool

    eot = tokens.argmax(dim=-1)
    L = int(eot.max().item()) + 1
    t = tokens[:, :L]
    x = model.token_embedding(t) + model.positional_embedding[:L]
    x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
    x = model.ln_final(x)
    x = text_global_pool(x, t, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


def _soft_ce(logits: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
    import torch

    target = target / target.sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def load_model(model_name: str, weights: str | Path | None, device: str = "cpu") -> tuple[Any, Any, Any]:
    """``(model, preprocess, tokenizer)`` through open_clip's normal API (eval mode)."""
    import open_clip

    from kit.models.clip_arch import register_oskit_configs

    register_oskit_configs()
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=str(weights) if weights else None, device=device)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        raise ModelError(f"could not load open_clip model {model_name!r} with weights {weights}: {exc}") from exc
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)


# --------------------------------------------------------------------------------------------
# evaluation


def _recall(sim: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k where query i's one right answer is item i."""
    right = sim[np.arange(len(sim)), np.arange(len(sim))][:, None]
    rank = (sim > right).sum(axis=1)  # items strictly better than the right one
    return {f"recall@{k}": round(float((rank < k).mean()), 4) for k in ks}


def _average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    rel = relevant[order]
    if rel.sum() == 0:
        return 0.0
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.nonzero(rel)[0] + 1)).mean())


def evaluate(model: Any, preprocess: Any, tokenizer: Any, eval_set: synth.EvalSet, *,
             device: str = "cpu", batch_size: int = 256) -> dict[str, Any]:
    """Held-out metrics of ``model`` on ``eval_set`` (see the module docstring)."""
    import torch

    def embed_images(images: list[Any]) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([preprocess(im) for im in images[i:i + batch_size]]).to(device)
            with torch.no_grad():
                out.append(model.encode_image(x, normalize=True).float().cpu().numpy())
        return np.concatenate(out)

    def embed_texts(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch_size):
            with torch.no_grad():
                out.append(model.encode_text(tokenizer(texts[i:i + batch_size]).to(device),
                                             normalize=True).float().cpu().numpy())
        return np.concatenate(out)

    scenes = eval_set.scenes
    ids = [s.id for s in scenes]
    clean = [synth.render(s, eval_set.image_size) for s in scenes]
    img = embed_images(clean)
    cap = embed_texts([synth.caption(s) for s in scenes])
    sim_ti = cap @ img.T
    metrics: dict[str, Any] = {
        "n_images": len(scenes),
        "text_to_image": _recall(sim_ti),
        "image_to_text": _recall(sim_ti.T),
    }
    image_queries = [q for q in eval_set.queries if q["type"] == "image"]
    if image_queries:
        photos = [eval_set.query_image(q) for q in image_queries]
        qv = embed_images(photos)
        pos = {sid: i for i, sid in enumerate(ids)}
        sim = qv @ img.T
        right = np.array([pos[q["source_id"]] for q in image_queries])
        right_s = sim[np.arange(len(sim)), right][:, None]
        rank = (sim > right_s).sum(axis=1)
        metrics["phone_photo_image_to_image"] = {
            "n_queries": len(image_queries),
            **{f"recall@{k}": round(float((rank < k).mean()), 4) for k in (1, 5, 10)},
        }
    text_queries = [q for q in eval_set.queries if q["type"] == "text" and q["kind"] != "caption"]
    if text_queries:
        tv = embed_texts([q["text"] for q in text_queries])
        scores = tv @ img.T
        pos = {sid: i for i, sid in enumerate(ids)}
        by_kind: dict[str, list[float]] = {}
        for q, row in zip(text_queries, scores):
            rel = np.zeros(len(ids), dtype=bool)
            rel[[pos[r] for r in q["relevant"]]] = True
            by_kind.setdefault(q["kind"], []).append(_average_precision(row, rel))
        metrics["attribute_query_map"] = {k: round(float(np.mean(v)), 4) for k, v in sorted(by_kind.items())}
        metrics["attribute_query_map"]["all"] = round(float(np.mean([x for v in by_kind.values() for x in v])), 4)
    return metrics


# --------------------------------------------------------------------------------------------
# training


def _progress_fraction(cfg: TrainConfig, step: int, elapsed: float) -> float:
    fr = 0.0
    if cfg.steps:
        fr = max(fr, step / cfg.steps)
    if cfg.minutes:
        fr = max(fr, elapsed / (cfg.minutes * 60))
    return min(1.0, fr)


def train(cfg: TrainConfig, out_dir: str | Path, *, progress: Progress | None = None) -> TrainResult:
    """Train ``cfg.model`` from scratch, evaluate it and write weights + report into ``out_dir``."""
    if not cfg.minutes and not cfg.steps:
        raise ModelError("a training run needs a budget: minutes or steps")
    import open_clip
    import torch

    from kit.models.clip_arch import register_oskit_configs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = _resolve_device(cfg.device)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cfg.threads or cores)
    workers = cfg.workers if cfg.workers is not None else (0 if cores <= 2 else min(cores - 1, 15))
    torch.manual_seed(cfg.seed)
    register_oskit_configs()
    if cfg.model not in open_clip.list_models():
        raise ModelError(f"unknown open_clip architecture {cfg.model!r}")
    model = open_clip.create_model(cfg.model, device=device)
    if cfg.init_weights:
        if not Path(cfg.init_weights).is_file():
            raise ModelError(f"init weights not found: {cfg.init_weights}")
        open_clip.load_checkpoint(model, cfg.init_weights)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    mean = torch.tensor(model.visual.image_mean or open_clip.OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std or open_clip.OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    use_amp = device == "cuda"
    stream = _batch_stream(cfg, image_size, workers)
    log.info("training %s on %s (%d threads, %d data workers)", cfg.model, device, torch.get_num_threads(), workers)

    t0 = time.monotonic()
    step = samples = 0
    loss_ema = None
    model.train()
    while True:
        elapsed = time.monotonic() - t0
        frac = _progress_fraction(cfg, step, elapsed)
        if frac >= 1.0:
            break
        lr = cfg.lr * (step + 1) / cfg.warmup_steps if step < cfg.warmup_steps else \
            cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = next(stream)
        a = (torch.from_numpy(batch["a"]).to(device).float() / 255 - mean) / std
        b = (torch.from_numpy(batch["b"]).to(device).float() / 255 - mean) / std
        tokens = tokenizer(batch["texts"]).to(device)
        match = torch.from_numpy(batch["match"]).to(device).float()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            ia = model.encode_image(a)
            ib = model.encode_image(b)
            tt = _encode_text(model, tokens)
        ia, ib, tt = (torch.nn.functional.normalize(x.float(), dim=-1) for x in (ia, ib, tt))
        scale = model.logit_scale.exp().clamp(max=100)
        loss = 0.0
        for iv in (ia, ib):
            logits = scale * tt @ iv.T
            loss = loss + 0.5 * (_soft_ce(logits, match) + _soft_ce(logits.T, match.T))
        eye = torch.eye(len(ia), device=device)
        ii = scale * ia @ ib.T
        loss = loss + cfg.image_loss_weight * 0.5 * (_soft_ce(ii, eye) + _soft_ce(ii.T, eye))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        samples += len(ia)
        lv = float(loss.item())
        loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
        if progress and (step % 10 == 0 or step == 1):
            progress({"event": "step", "step": step, "samples": samples, "loss": round(loss_ema, 4),
                      "lr": lr, "elapsed_s": round(time.monotonic() - t0, 1), "fraction": round(frac, 4)})
    train_seconds = time.monotonic() - t0
    del stream

    model.eval()
    weights = out / f"{cfg.model}.pt"
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({k: v.cpu() for k, v in state.items()}, weights)
    if progress:
        progress({"event": "evaluate", "n_images": cfg.eval_images})
    # evaluate what was written, loaded the way users load it
    m2, preprocess, tok = load_model(cfg.model, weights, device=device)
    eval_set = synth.make_eval_set(cfg.eval_images, cfg.eval_seed)
    metrics = evaluate(m2, preprocess, tok, eval_set, device=device)
    report = out / f"{cfg.model}.train.json"
    doc = {
        "model": cfg.model,
        "weights": weights.name,
        "weights_bytes": weights.stat().st_size,
        "weights_dtype": "float16",
        "config": asdict(cfg),
        "data": {"generator": "kit.models.synth", "generator_version": synth.GENERATOR_VERSION,
                 "data_seed": cfg.seed, "train_seed_space": f"[0, {_TRAIN_SEED_SPACE})",
                 "eval_set": {"function": "kit.models.synth.make_eval_set", "n_images": cfg.eval_images,
                              "seed": cfg.eval_seed}},
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "data_workers": workers,
        "steps": step,
        "samples": samples,
        "train_seconds": round(train_seconds, 1),
        "final_loss_ema": round(loss_ema or 0.0, 4),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "held_out": metrics,
    }
    if cfg.init_weights:  # keep the lineage: the report of the run these weights continued
        prev = Path(cfg.init_weights).with_suffix(".train.json")
        doc["init_from"] = json.loads(prev.read_text(encoding="utf-8")) if prev.is_file() else cfg.init_weights
    report.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if progress:
        progress({"event": "done", "metrics": metrics, "weights": str(weights)})
    return TrainResult(weights=weights, report=report, metrics=metrics, steps=step, samples=samples,
                       seconds=train_seconds)
