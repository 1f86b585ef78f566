"""Train the bundled demo models, deterministically, on one CPU thread.

Usage::

    python -m maskscope.models.train shapes2d [--out PATH] [--steps N]
    python -m maskscope.models.train phantom3d [--out PATH] [--steps N]

Each training step draws a fresh batch from a fixed seed (the step number), so the data are the
same on every run; evaluation uses ``shapes2d(seed)`` / ``phantom3d(seed)`` samples, whose random
streams are disjoint from the training batches.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskscope.data import RIGHT_SHAPES, phantom3d, phantom3d_batch, shapes2d, shapes2d_batch
from maskscope.models.loading import build_bundled, bundled_models

__all__ = ["TrainConfig", "dice", "evaluate", "main", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one bundled model's training.

    Attributes
    ----------
    steps : int
        Optimiser steps.
    batch_size : int
        Samples per step.
    lr : float
        Peak learning rate of the one-cycle schedule.
    eval_seeds : range
        Seeds of the evaluation samples.
    context_weight : float
        Weight of the side loss that classifies the right-hand shape from the global-context
        features (shapes2d only; 0 disables it).
    pool_size : int
        phantom3d only: number of phantoms generated once, from which crops are drawn.
    crop : tuple of int
        phantom3d only: ``(D, H, W)`` of the training crops.
    """

    steps: int
    batch_size: int
    lr: float
    eval_seeds: range
    context_weight: float = 0.0
    pool_size: int = 0
    crop: tuple[int, ...] = ()


CONFIGS: dict[str, TrainConfig] = {
    "shapes2d": TrainConfig(
        steps=1200, batch_size=16, lr=4e-3, eval_seeds=range(10_000, 10_040), context_weight=0.5
    ),
    "phantom3d": TrainConfig(
        steps=3000,
        batch_size=4,
        lr=4e-3,
        eval_seeds=range(10_000, 10_010),
        pool_size=160,
        crop=(24, 48, 48),
    ),
}


class _ShapesBatches:
    """Fresh shapes2d batches; the right-hand shape of each sample is known."""

    def __init__(self, config: TrainConfig, seed: int):
        self.config = config
        self.seed = seed

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.config.batch_size
        images, labels = shapes2d_batch(n, self.seed * 1_000_003 + step)
        # shapes2d_batch puts a circle on the right of even samples, a square on odd ones.
        right = torch.arange(n) % len(RIGHT_SHAPES)
        return torch.from_numpy(images), torch.from_numpy(labels), right


class _PhantomCrops:
    """Random crops and flips from a fixed pool of phantoms, most of them around the lesion.

    The lesion is local, so crops teach the same task as whole volumes at a fraction of the cost.
    """

    def __init__(self, config: TrainConfig, seed: int):
        self.config = config
        self.seed = seed
        images, labels = phantom3d_batch(config.pool_size, seed)
        self.images = images
        self.labels = labels.astype(np.uint8)
        self.centres = [np.argwhere(lab).mean(axis=0) for lab in self.labels]

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        rng = np.random.default_rng([self.seed, step, 0xC209])
        crop = np.asarray(self.config.crop)
        shape = np.asarray(self.labels.shape[1:])
        images, labels = [], []
        for _ in range(self.config.batch_size):
            i = int(rng.integers(len(self.labels)))
            if rng.random() < 0.75:  # put the lesion somewhere inside the crop
                corner = self.centres[i] - rng.uniform(0.2, 0.8, 3) * crop
            else:
                corner = rng.uniform(0, 1, 3) * (shape - crop)
            lo = np.clip(np.round(corner).astype(int), 0, shape - crop)
            window = tuple(slice(a, a + c) for a, c in zip(lo, crop, strict=True))
            image = self.images[i][(slice(None), *window)]
            label = self.labels[i][window]
            for axis in (0, 2):  # flip head-feet and left-right, never front-back (the spine)
                if rng.random() < 0.5:
                    image, label = np.flip(image, axis + 1), np.flip(label, axis)
            images.append(np.ascontiguousarray(image))
            labels.append(np.ascontiguousarray(label))
        return (
            torch.from_numpy(np.stack(images)),
            torch.from_numpy(np.stack(labels).astype(np.int64)),
            None,
        )


def dice(prediction: np.ndarray, label: np.ndarray) -> float:
    """Dice coefficient of two binary masks (1.0 when both are empty).

    Parameters
    ----------
    prediction, label : numpy.ndarray
        Boolean or 0/1 arrays of the same shape.

    Returns
    -------
    float
        ``2 |P ∩ L| / (|P| + |L|)``.
    """
    p, t = np.asarray(prediction, dtype=bool), np.asarray(label, dtype=bool)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


class _ContextProbe:
    """Capture the pooled global-context vector of a UNet to train a side classifier on it.

    On the shapes set the segmentation depends on the right-hand shape, a signal that plain
    segmentation training finds slowly (the loss sits on a plateau where both left shapes are
    segmented). A linear classifier of the right-hand shape on the pooled bottleneck features
    gives the global path a direct gradient; it is used in training only and is not saved.
    """

    def __init__(self, model: nn.Module, n_classes: int):
        self.pooled: torch.Tensor | None = None
        mlp = model.context.mlp
        self.head = nn.Linear(mlp[0].in_features, n_classes)
        self._handle = mlp.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
        self.pooled = inputs[0]

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the side classifier on the last captured features."""
        if self.pooled is None:
            raise RuntimeError("run the model before asking for the probe loss")
        return F.cross_entropy(self.head(self.pooled), targets)

    def remove(self) -> None:
        """Detach the hook from the model."""
        self._handle.remove()


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the foreground class."""
    ce = F.cross_entropy(logits, labels)
    prob = logits.softmax(dim=1)[:, 1]
    target = (labels == 1).float()
    dims = tuple(range(1, prob.ndim))
    inter = (prob * target).sum(dims)
    soft_dice = (2 * inter + 1.0) / (prob.sum(dims) + target.sum(dims) + 1.0)
    return ce + (1.0 - soft_dice).mean()


@torch.inference_mode()
def evaluate(model: nn.Module, name: str, seeds: Sequence[int]) -> dict[str, float]:
    """Mean and minimum Dice of a bundled model's task on samples drawn from ``seeds``.

    Parameters
    ----------
    model : torch.nn.Module
        A model returning ``(B, 2, *spatial)`` logits.
    name : {"shapes2d", "phantom3d"}
        Task to evaluate.
    seeds : sequence of int
        Sample seeds. For shapes2d each seed is drawn once with a circle and once with a square.

    Returns
    -------
    dict of str to float
        ``dice`` and ``min_dice`` overall; for shapes2d also ``dice_circle``, ``dice_square``.
    """
    model.eval()
    scores: dict[str, list[float]] = {}
    for seed in seeds:
        if name == "shapes2d":
            samples = [(right, shapes2d(seed, right=right)) for right in RIGHT_SHAPES]
        else:
            samples = [("all", phantom3d(seed))]
        for kind, sample in samples:
            x = torch.from_numpy(sample.image)[None]
            prediction = model(x).argmax(dim=1)[0].numpy()
            scores.setdefault(kind, []).append(dice(prediction, sample.label))
    everything = [s for values in scores.values() for s in values]
    result = {"dice": float(np.mean(everything)), "min_dice": float(np.min(everything))}
    if name == "shapes2d":
        result.update({f"dice_{kind}": float(np.mean(v)) for kind, v in scores.items()})
    return result


def train(
    name: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Train a bundled model from scratch.

    Parameters
    ----------
    name : {"shapes2d", "phantom3d"}
        Bundled model to train.
    steps : int, optional
        Optimiser steps; the tuned default of the model when None.
    seed : int
        Seed of the weight initialisation and of the training batches.
    log : callable, optional
        Receives progress lines; they are printed when None.

    Returns
    -------
    torch.nn.Module
        The trained model, in eval mode.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(CONFIGS)}")
    config = CONFIGS[name]
    log = log or (lambda line: print(line, flush=True))
    steps = config.steps if steps is None else steps
    torch.manual_seed(seed)
    model = build_bundled(name)
    model.train()
    batches = _ShapesBatches(config, seed) if name == "shapes2d" else _PhantomCrops(config, seed)
    probe = _ContextProbe(model, len(RIGHT_SHAPES)) if config.context_weight else None
    parameters = list(model.parameters()) + (list(probe.head.parameters()) if probe else [])
    optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1
    )
    start = time.perf_counter()
    running = 0.0
    for step in range(steps):
        images, labels, right = batches(step)
        loss = _loss(model(images), labels)
        if probe is not None and right is not None:
            loss = loss + config.context_weight * probe.loss(right)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.95 * running + 0.05 * loss.item() if step else loss.item()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            log(f"{name} step {step + 1}/{steps}  loss {running:.4f}  {elapsed:.0f} s")
    if probe is not None:
        probe.remove()
    return model.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: train, evaluate and save a bundled model."""
    parser = argparse.ArgumentParser(
        prog="python -m maskscope.models.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name", choices=sorted(CONFIGS), help="bundled model to train")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the state_dict (default: the bundled weights file)",
    )
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = train(args.name, steps=args.steps, seed=args.seed)
    elapsed = time.perf_counter() - start
    metrics = evaluate(model, args.name, CONFIGS[args.name].eval_seeds)
    out = args.out or bundled_models()[args.name].weights_path
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"trained {args.name} in {elapsed:.0f} s; {n_params} parameters; "
        f"{out.stat().st_size / 1e6:.2f} MB at {out}"
    )
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
