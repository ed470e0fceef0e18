"""Make the stored runs of ``tests/data/stored_runs`` (one finished run of each task).

They were made once, with the coldflow of commit 41f5ec5 (before the package was
reshaped around its studies), and are kept so that the tests can check that run
directories written by an earlier version still load, resume and evaluate to the same
numbers. Rerunning this script with a later version makes runs of that version; do so
only on purpose (a change of the run format), and say why in the commit.

    cd tests/data && python make_stored_runs.py stored_runs

The fluid runs name their data set by a path relative to ``tests/data``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from coldflow.experiment import evaluate, load_config_file, train
from coldflow.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
TINY_DDPM = [
    "data.train_subset=96",
    "degradation.n_T=20",
    "model.hidden=[4, 8, 4]",
    "model.time_embeddings=4",
    "training.epochs=2",
    "training.batch_size=16",
    "training.ema=0.9",
    "training.progress=false",
    "training.device=cpu",
    "sampling.snapshot_timesteps=[20, 10, 1]",
    "sampling.n_grid=4",
    "evaluation.interval=2",
    "evaluation.fid.enabled=false",
]
TINY_COLD = [
    "data.train_subset=300",
    "degradation.n_T=10",
    "model.hidden=[4, 4]",
    "training.epochs=1",
    "training.progress=false",
    "training.device=cpu",
    "sampling.snapshot_timesteps=[10, 5, 1]",
    "sampling.n_grid=4",
    "evaluation.fid.enabled=false",
    "method.conditional_images=20",
    "method.prior_fit_images=100",
]
FLUID = {
    "sol": "method: {kind: sol, m: 2, loss: {name: mse}}\n"
    "model: {kind: sol_resnet_small, width: 4, blocks: 1, kernel_size: 3}\n"
    "evaluation: {steps: 4, metrics: [mse, rel_l1], timing_steps: 1}\n",
    "autoencoder": "method: {kind: autoencoder}\nmodel: {kind: field_autoencoder, width: 4}\n"
    "evaluation: {metrics: [mse, rel_l1], figure_frames: 1}\n",
    "superres": "method: {kind: superres}\nmodel: {width: 4, blocks: 1}\n"
    "evaluation: {metrics: [mse, rel_l1], figure_frames: 1}\n",
}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    h5 = out / "karman_tiny.h5"
    simulate(ROOT / "configs/fluids/karman_tiny.yaml", h5, progress=False)
    mnist = ROOT / "configs/mnist"
    train(load_config_file(mnist / "quick.yaml", TINY_DDPM), out / "ddpm")
    evaluate(out / "ddpm", device="cpu", n=20, steps=5, sampler="ddim")
    train(load_config_file(mnist / "quick_blur.yaml", TINY_COLD), out / "cold")
    evaluate(out / "cold", device="cpu", n=20)
    for kind, sections in FLUID.items():
        cfg = out / f"{kind}.yaml"
        cfg.write_text(
            f"name: stored_{kind}\ndata: {{path: {h5}, stride: 2}}\n{sections}"
            "training: {epochs: 1, batch_size: 4, progress: false, device: cpu}\n"
        )
        train(load_config_file(cfg), out / kind)
        evaluate(out / kind, device="cpu", data=h5)
        cfg.unlink()
    for run in out.iterdir():  # keep what loading and evaluating need, not the pictures
        for old in sorted(run.glob("checkpoints/epoch_*.safetensors"))[:-1]:
            old.unlink()
            old.with_suffix(".json").unlink()
        for name in ("figures", "report.html"):
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.is_file():
                target.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
