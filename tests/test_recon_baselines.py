"""Baselines of the autoencoder and super-resolution evaluations: PCA and DCT codecs at a
given number of stored values, the nearest training frame with its mirror images, and
scoring that leaves obstacle cells out for every metric alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coldflow import hub
from coldflow.config.fluids import KarmanSceneConfig, PlumeSceneConfig
from coldflow.metrics import evaluate_pairs, metric_functions, score_fields
from coldflow.metrics.field import FieldsInputError
from coldflow.physics import faces_to_centered
from coldflow.tasks.recon.baselines import (
    DCTCodec,
    PCACodec,
    dct2,
    dct_matrix,
    idct2,
    low_pass_mask,
    mirror_centered,
    mirror_maps,
    nearest_frames,
    scored_cells,
)

torch.set_num_threads(1)

STORED = Path(__file__).resolve().parent / "data" / "stored_runs"
HAS_LSIM = hub.locate("lsim") is not None
POINTWISE = ["mse", "mae", "rel_l1", "psnr"]
lowrank = torch.svd_lowrank


def frames(n: int, C: int = 2, H: int = 8, W: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(
        n, C, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


# ------------------------------------------------------------------------------ PCA


def test_pca_of_full_rank_reconstructs_the_training_frames_exactly():
    train = frames(12).float()
    scale = [0.5, 3.0]
    pca = PCACodec.fit(train * torch.tensor(scale).view(2, 1, 1), 11, scale)
    # 12 centred frames span 11 dimensions: every training frame is mean + 11 components
    assert pca.numbers == 11 and pca.encode(train).shape == (12, 11)
    x = train * torch.tensor(scale).view(2, 1, 1)
    torch.testing.assert_close(pca.reconstruct(x), x, rtol=0, atol=1e-5)
    torch.testing.assert_close(pca.basis @ pca.basis.T, torch.eye(11), rtol=0, atol=1e-5)
    # asking for more than the training frames span stores only what they span
    assert PCACodec.fit(train, 30).numbers == 11


@pytest.mark.parametrize("n", [1, 3, 5])
def test_pca_stores_n_values_and_is_the_best_rank_n_fit(n):
    train, test = frames(40, seed=1).float(), frames(6, seed=2).float()
    pca = PCACodec.fit(train, n)
    assert pca.numbers == n and pca.encode(test).shape == (6, n)
    assert pca.decode(pca.encode(test)).shape == test.shape
    # Eckart-Young: the training error is the energy of the discarded singular values
    X = train.double().flatten(1)
    s = torch.linalg.svdvals(X - X.mean(0))
    error = (pca.reconstruct(train).double() - train.double()).square().sum()
    assert float(error) == pytest.approx(float(s[n:].square().sum()), rel=1e-4)


def test_randomized_pca_finds_the_components_of_a_low_rank_set(monkeypatch):
    """n far below a large min(N, D) takes the randomized path (made to here for a small
    set); it must still find the top subspace: the error is the exact rank-n truncation's."""
    from coldflow.tasks.recon import baselines

    monkeypatch.setattr(baselines, "_RANDOMIZED_ABOVE", 100)
    calls = []
    monkeypatch.setattr(torch, "svd_lowrank", lambda *a, **k: calls.append(1) or lowrank(*a, **k))
    g = torch.Generator().manual_seed(3)
    factors = torch.randn(200, 8, generator=g) * torch.logspace(1, 0, 8)
    X = factors @ torch.linalg.qr(torch.randn(512, 8, generator=g)).Q.T
    X = X + 1e-3 * torch.randn(200, 512, generator=g)
    train = X.view(200, 2, 16, 16)
    pca = PCACodec.fit(train, 8)  # 8 + 16 <= 200 // 4: svd_lowrank
    assert calls == [1]
    s = torch.linalg.svdvals((X - X.mean(0)).double())
    error = (pca.reconstruct(train) - train).double().square().sum()
    assert float(error) == pytest.approx(float(s[8:].square().sum()), rel=0.05)


# ------------------------------------------------------------------------------ DCT


def test_dct_is_orthonormal_and_keeping_every_coefficient_is_exact():
    for n in (1, 4, 7, 16):
        m = dct_matrix(n)
        torch.testing.assert_close(m @ m.T, torch.eye(n, dtype=torch.float64))
    x = frames(3, C=3, H=12, W=8)
    c = dct2(x)
    torch.testing.assert_close(c.square().sum((-2, -1)), x.square().sum((-2, -1)))  # Parseval
    torch.testing.assert_close(idct2(c), x)
    full = DCTCodec((3, 12, 8), 3 * 12 * 8)
    torch.testing.assert_close(full.reconstruct(x), x)


def test_dct_matches_scipy_and_puts_a_cosine_mode_in_one_coefficient():
    sp_fft = pytest.importorskip("scipy.fft")
    x = frames(1, C=1, H=6, W=5)[0, 0]
    np.testing.assert_allclose(dct2(x).numpy(), sp_fft.dctn(x.numpy(), norm="ortho"), atol=1e-12)
    i = torch.arange(6, dtype=torch.float64)[:, None] + 0.5
    j = torch.arange(5, dtype=torch.float64)[None, :] + 0.5
    mode = torch.cos(torch.pi * 2 * i / 6) * torch.cos(torch.pi * 3 * j / 5)
    c = dct2(mode)
    assert c.abs().argmax() == 2 * 5 + 3 and (c.abs() > 1e-9).sum() == 1


@pytest.mark.parametrize("n", [1, 2, 5, 64, 95])
def test_dct_truncation_stores_exactly_n_low_frequency_values(n):
    shape = (3, 8, 4)
    mask = low_pass_mask(shape, n)
    assert int(mask.sum()) == n
    per_channel = mask.flatten(1).sum(1).tolist()
    assert per_channel == [n // 3 + (c < n % 3) for c in range(3)]
    x = frames(2, C=3, H=8, W=4).float()
    codec = DCTCodec(shape, n)
    assert codec.encode(x).shape == (2, n)
    if n >= 3:  # the constant (DC) coefficient is the first kept in every channel
        assert mask[:, 0, 0].all()
        const = torch.full((1, *shape), 2.5)
        torch.testing.assert_close(codec.reconstruct(const), const)
    with pytest.raises(ValueError, match="coefficients"):
        low_pass_mask(shape, 97)


def test_dct_truncation_is_the_projection_onto_the_kept_coefficients():
    x = frames(4, C=2, H=8, W=8).float()
    codec = DCTCodec((2, 8, 8), 20)
    out = codec.reconstruct(x)
    # orthonormal: the error is the energy of the dropped coefficients, and is orthogonal
    dropped = dct2(x)[:, ~codec.mask]
    assert float((out - x).square().sum()) == pytest.approx(float(dropped.square().sum()), 1e-4)
    assert abs(float(((out - x) * out).sum())) < 1e-3


# ------------------------------------------------------------------ nearest frame


def test_mirror_of_centred_frames_is_the_mirror_of_the_staggered_faces():
    from coldflow.tasks.sol.evaluation import mirror_staggered

    faces = torch.randn(3, 2, 9, 7)
    faces[:, 0, :, -1] = 0  # padding of the layout
    faces[:, 1, -1, :] = 0
    channels = ["v_y", "v_x"]
    torch.testing.assert_close(
        mirror_centered(faces_to_centered(faces), channels),
        faces_to_centered(mirror_staggered(faces)),
    )
    x = torch.randn(2, 3, 6, 4)
    ch = ["v_y", "v_x", "density"]
    for axis in ("x", "y"):
        assert torch.equal(mirror_centered(mirror_centered(x, ch, axis), ch, axis), x)
    assert torch.equal(mirror_centered(x, ch, "x")[:, 2], x[:, 2].flip(-1))  # density: reflected
    assert torch.equal(mirror_centered(x, ch, "x")[:, 1], -x[:, 1].flip(-1))
    assert [label for label, _ in mirror_maps(("y", "x"), ch)] == [
        "mirrored in y", "mirrored in x", "mirrored in y and x",
    ]  # fmt: skip


def test_scenes_declare_their_mirror_axes():
    assert KarmanSceneConfig().mirror_axes == ("x",)
    assert KarmanSceneConfig(obstacle_center=(50.0, 40.0)).mirror_axes == ()
    assert KarmanSceneConfig(marker_box=((5.0, 10.0), (20.0, 75.0))).mirror_axes == ()
    assert PlumeSceneConfig().mirror_axes == ("x",)
    assert PlumeSceneConfig(source_box=((5.0, 10.0), (40.0, 150.0))).mirror_axes == ()


def test_nearest_frame_finds_the_training_frame_and_the_mirrored_one():
    g = torch.Generator().manual_seed(0)
    channels = ["v_y", "v_x"]
    high = torch.randn(30, 2, 16, 8, generator=g)
    low = F.avg_pool2d(high, 2)
    (_, mirror), = mirror_maps(("x",), channels)  # fmt: skip
    # test inputs: training frame 7; training frame 21 mirrored; frame 4 plus a little noise
    queries = torch.stack(
        (low[7], mirror(low[21]), low[4] + 0.01 * torch.randn(2, 8, 4, generator=g))
    )
    index, choice, rms = nearest_frames(queries, low, scale=[2.0, 0.5], mirrors=[mirror], chunk=2)
    assert index.tolist() == [7, 21, 4] and choice.tolist() == [0, 1, 0]
    assert rms[0] == 0 and rms[1] < 1e-6 and 0 < rms[2] < 0.05
    # the prediction: the matched high-resolution frame, mirrored like the match
    assert torch.equal(mirror(high[21]), mirror_centered(high[21], channels))
    # without the mirror the mirrored frame is not found at distance 0
    index, choice, rms = nearest_frames(queries, low, mirrors=[])
    assert choice.tolist() == [0, 0, 0] and rms[1] > 0.1


# ------------------------------------------------------------------------ masking


def _differ_inside(n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference, a prediction equal to it except in a block of cells, and the mask of
    the cells to score (everything but the block)."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(n, 2, 32, 32, generator=g)
    keep = torch.ones(32, 32, dtype=torch.bool)
    keep[10:18, 12:20] = False
    pred = ref.clone()
    pred[..., ~keep] += 5.0 * torch.randn(n, 2, int((~keep).sum()), generator=g)
    return ref, pred, keep


def test_a_field_differing_only_outside_the_scored_cells_scores_zero_error():
    ref, pred, keep = _differ_inside()
    names = POINTWISE + (["lsim"] if HAS_LSIM else [])
    fns = metric_functions(names)
    scores = score_fields(fns, pred, ref, mask=keep, batch_size=2)
    for name in ("mse", "mae", "rel_l1") + (("lsim",) if HAS_LSIM else ()):
        assert scores[name].tolist() == [0.0, 0.0, 0.0], name
    assert torch.isinf(scores["psnr"]).all()
    unmasked = score_fields(fns, pred, ref)
    assert (unmasked["mse"] > 0).all() and (unmasked["rel_l1"] > 0).all()
    # a per-sample mask [N, H, W] of the same cells scores the same
    per_sample = score_fields(fns, pred, ref, mask=keep.expand(3, -1, -1), batch_size=2)
    for name in names:
        torch.testing.assert_close(per_sample[name], scores[name])


def test_image_metrics_see_the_unscored_cells_set_to_the_reference():
    """A metric that is not pointwise (here one not in the registry, seen as an image)
    gets whole fields: the prediction with the unscored cells taken from the reference."""
    ref, pred, keep = _differ_inside()
    seen = []

    def image_metric(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((a.clone(), b.clone()))
        return (a - b).abs().flatten(1).amax(1)

    scores = score_fields({"max_error": image_metric}, pred, ref, mask=keep)
    assert scores["max_error"].tolist() == [0.0, 0.0, 0.0]
    a, b = seen[0]
    assert a.shape == ref.shape and torch.equal(b, ref) and torch.equal(a, ref)
    ref2 = ref + 1.0
    score_fields({"max_error": image_metric}, pred, ref2, mask=keep)
    a, b = seen[1]
    assert torch.equal(a[..., ~keep], ref2[..., ~keep]) and torch.equal(
        a[..., keep], pred[..., keep]
    )


def test_pointwise_metrics_average_over_the_scored_cells_only():
    ref, _, keep = _differ_inside()
    pred = ref + 0.3 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(5))
    scores = score_fields(metric_functions(POINTWISE), pred, ref, mask=keep)
    a, b = pred[..., keep].flatten(1).double(), ref[..., keep].flatten(1).double()
    torch.testing.assert_close(scores["mse"], (a - b).square().mean(1))
    torch.testing.assert_close(scores["mae"], (a - b).abs().mean(1))
    torch.testing.assert_close(scores["rel_l1"], (a - b).abs().sum(1) / b.abs().sum(1))
    peak = b.amax(1) - b.amin(1)
    torch.testing.assert_close(scores["psnr"], 10 * torch.log10(peak**2 / (a - b).square().mean(1)))
    everything = torch.ones_like(keep)
    full = score_fields(metric_functions(POINTWISE), pred, ref)
    for name, values in score_fields(
        metric_functions(POINTWISE), pred, ref, mask=everything
    ).items():
        torch.testing.assert_close(values, full[name])


def test_per_sample_masks_and_evaluate_pairs():
    ref, pred, keep = _differ_inside(n=2)
    masks = torch.stack((keep, torch.ones_like(keep)))  # sample 1 scores every cell
    got = score_fields(metric_functions(["mse"]), pred, ref, mask=masks)["mse"]
    assert got[0] == 0 and got[1] > 0
    result = evaluate_pairs(pred.numpy(), ref.numpy(), ["mse"], mask=masks.numpy(), device="cpu")
    np.testing.assert_allclose(result["mse"]["per_sample"], got.numpy())
    nhwc = evaluate_pairs(pred.permute(0, 2, 3, 1).numpy(), ref.permute(0, 2, 3, 1).numpy(),
                          ["mse"], layout="NHWC", mask=keep.numpy(), device="cpu")  # fmt: skip
    assert nhwc["mse"]["per_sample"].tolist() == [0.0, 0.0]


def test_bad_masks_are_refused():
    ref, pred, keep = _differ_inside(n=2)
    fns = metric_functions(["mse"])
    with pytest.raises(FieldsInputError, match="boolean"):
        score_fields(fns, pred, ref, mask=keep.float())
    with pytest.raises(FieldsInputError, match="does not fit"):
        score_fields(fns, pred, ref, mask=keep[:-1])
    with pytest.raises(FieldsInputError, match="no cell"):
        score_fields(fns, pred, ref, mask=torch.stack((keep, torch.zeros_like(keep))))
    with pytest.raises(FieldsInputError, match="centred"):
        evaluate_pairs(pred, ref, ["mse"], grid="staggered", mask=keep, device="cpu")


def test_obstacle_cells_of_a_data_set():
    cells = scored_cells(STORED / "karman_tiny.h5", "reference")
    with __import__("h5py").File(STORED / "karman_tiny.h5") as f:
        cover = torch.from_numpy(f["obstacle/high"][()])
    assert cells.shape == cover.shape and cells.dtype == torch.bool
    assert torch.equal(~cells, cover >= 0.5) and 0 < int((~cells).sum()) < cells.numel() // 10


# ------------------------------------------------------------------ evaluations


@pytest.fixture
def stored(tmp_path, monkeypatch) -> Path:
    shutil.copytree(STORED, tmp_path / "stored_runs")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "stored_runs"


def test_autoencoder_evaluation_has_pca_and_dct_rows_at_the_latent_size(stored):
    from coldflow.experiment import evaluate
    from coldflow.tasks import TASKS
    from coldflow.tasks.recon.figures import results_table

    ev = evaluate(stored / "autoencoder", device="cpu", data="stored_runs/karman_tiny.h5")
    assert list(ev["mean"]) == ["autoencoder", "resampled + bicubic", "PCA", "DCT"]
    n = ev["latent_numbers"]
    assert ev["dct_numbers"] == n and 1 <= ev["pca_numbers"] <= n
    assert ev["pca_fit_frames"] == 8  # the frames the run was trained on (stride 2)
    assert ev["obstacle_cells"] > 0 and ev["scored_cells"] + ev["obstacle_cells"] == 32 * 16
    table = results_table([ev], ["run"])
    assert "| PCA |" in table and "| DCT |" in table and "| resampled + bicubic |" in table
    assert "outside the obstacle" in table
    findings = TASKS["autoencoder"].findings([stored / "autoencoder"], ["run"])
    assert findings[0].startswith("run: the autoencoder") and "strongest baseline" in findings[0]
    assert sum("PCA" in f for f in findings) >= 1 and sum("DCT" in f for f in findings) >= 1


def test_superres_evaluation_searches_every_training_frame_and_its_mirror(stored):
    from coldflow.experiment import evaluate

    ev = evaluate(stored / "superres", device="cpu", data="stored_runs/karman_tiny.h5")
    # trained with stride 2, searched at stride 1: 2 training simulations x 8 frames
    assert ev["nearest_searched"] == {"frames": 16, "mirror_axes": ["x"]}
    assert len(ev["nearest_training"]) == ev["frames"]
    assert all(label.startswith("train sim ") for label in ev["nearest_training"])
    assert ev["obstacle_cells"] > 0
    saved = json.loads((stored / "superres" / "evaluation.json").read_text())
    assert "nearest training frame" in saved["mean"]


def test_findings_name_the_strongest_baseline_per_metric():
    from coldflow.tasks.recon.task import baseline_findings

    mean = {
        "autoencoder": {"mse": 0.2, "psnr": 30.0},
        "resampled + bicubic": {"mse": 0.5, "psnr": 25.0},
        "PCA": {"mse": 0.1, "psnr": 28.0},
        "DCT": {"mse": 0.3, "psnr": 31.0},
    }
    lines = baseline_findings("r", "autoencoder", mean)
    assert (
        lines[0]
        == "r: the autoencoder is no better than the strongest baseline in mse (PCA), psnr (DCT)."
    )
    assert "r: the autoencoder beats resampled + bicubic in every metric." in lines
    mean["autoencoder"] = {"mse": 0.05, "psnr": 40.0}
    assert baseline_findings("r", "autoencoder", mean)[0].startswith(
        "r: the autoencoder beats the strongest baseline in every metric"
    )


def test_findings_skip_a_metric_a_baseline_lacks():
    from coldflow.tasks.recon.task import baseline_findings

    mean = {"super-resolution": {"mse": 0.2, "lsim": 0.1}, "bicubic": {"mse": 0.5}}
    lines = baseline_findings("r", "super-resolution", mean)
    assert "r: the super-resolution beats bicubic in every metric." in lines
