"""Findings of the MNIST study, generated from the numbers of finished runs.

Sentences for a study's page: which schedule scores best, whether an under-diffused
schedule fails, whether the improved sampler beats the naive one, what the black start
gives; each seed-study claim is stated as supported or not by these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch

from coldflow.data import from_range
from coldflow.degradations import build_degradation
from coldflow.metrics.intervals import Interval, format_interval, mean_interval, verdict
from coldflow.runs import RunDir, read_evaluation
from coldflow.tasks.diffusion.config import DiffusionRunConfig

__all__ = [
    "ALIKE_SPREAD",
    "BASELINE_HEADER",
    "COPYING_RATIO",
    "COPYING_SHARE",
    "EMPTY_INK",
    "alpha_bar_T",
    "baseline_cells",
    "baseline_findings",
    "black_start_collapse",
    "blur_vs_ddpm_findings",
    "cold_findings",
    "configurations",
    "ddpm_findings",
    "read_config",
    "read_evaluation",
    "seeded_ddpm_findings",
]


def read_config(run: Path) -> DiffusionRunConfig | None:
    from coldflow.config import ConfigError, load_config

    try:
        return load_config(Path(run) / "config.yaml", DiffusionRunConfig)
    except (ConfigError, FileNotFoundError):
        return None


def alpha_bar_T(cfg: DiffusionRunConfig) -> float:
    """alpha_bar at t = n_T of a DDPM run's degradation (1.0 for other degradations)."""
    degradation = build_degradation(cfg.degradation)
    curve = getattr(degradation, "alpha_bar64", None)
    return 1.0 if curve is None else float(curve[-1])


def _fid(run: Path) -> tuple[float, str] | None:
    """The run's FID and where it comes from: evaluation.json, else the last logged one."""
    ev = read_evaluation(run)
    if ev is not None and "fid" in ev:
        extra = f", eta {ev['eta']:g}" if ev.get("sampler") == "ddim" else ""
        return ev["fid"], f"{ev.get('n_samples', '?')} samples, {ev.get('sampler', '?')}{extra}"
    epochs, values = [], []
    for e in RunDir(run).read_metrics():
        if e.get("split") == "eval" and e.get("name") == "fid":
            epochs.append(int(e["epoch"]))
            values.append(float(e["value"]))
    if not values:
        return None
    return values[-1], f"logged at epoch {epochs[-1]}"


def _fmt(label: str, value: float, source: str) -> str:
    return f"{label} ({value:.4g}; {source})"


WORSE_FACTOR = 1.5
"""A run is "clearly worse" when its FID is at least this factor above the reference."""

UNDER_DIFFUSED = 0.01
"""alpha_bar_T above this leaves visible signal in z_T ~ N(0, I) (under-diffused)."""


def configurations(runs: Sequence[Path], labels: Sequence[str]) -> dict[str, dict[int, Path]]:
    """``{configuration: {seed: run}}``: a study's seeded runs ``<name>_s<seed>`` (whose
    config is named ``<name>``) grouped by configuration; any other run is a configuration
    of its own, under its label."""
    out: dict[str, dict[int, Path]] = {}
    for run, label in zip(runs, labels, strict=True):
        cfg = read_config(run)
        seeded = cfg is not None and label == f"{cfg.name}_s{cfg.seed}"
        name = cfg.name if seeded else label
        out.setdefault(name, {})[cfg.seed if cfg is not None else 0] = run
    return out


def ddpm_findings(runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
    """Sentences on the DDPM runs' FIDs and schedules (generated from their files).

    Where the runs are a study's seeded runs (``<name>_s<seed>``), the sentences are those
    of :func:`seeded_ddpm_findings`: means over seeds and verdicts from paired intervals
    (with one seed the spread is unknown and no claim is supported).
    """
    groups = configurations(runs, labels)
    if set(groups) != set(labels):  # seeded runs: judged over seeds, even one
        return seeded_ddpm_findings(groups)
    fids = {lb: f for lb, r in zip(labels, runs, strict=True) if (f := _fid(r)) is not None}
    configs = {lb: read_config(r) for lb, r in zip(labels, runs, strict=True)}
    abar = {lb: alpha_bar_T(c) for lb, c in configs.items() if c is not None}
    out = []
    if not fids:
        return ["No DDPM run has an FID yet (evaluation.json or a logged FID)."]
    ranked = sorted(fids, key=lambda lb: fids[lb][0])
    best = ranked[0]
    if len(ranked) > 1:
        rest = ", ".join(_fmt(lb, *fids[lb]) for lb in ranked[1:])
        out.append(f"{_fmt(best, *fids[best])} has the lowest FID of the DDPM runs, vs {rest}.")
    seed = {"diffusion_model", "model1", "model2"}
    if seed <= set(fids):
        a, b, d = fids["model1"][0], fids["model2"][0], fids["diffusion_model"][0]
        gap = abs(a - b) / min(a, b)
        better = a < d and b < d
        out.append(
            f"model1 (FID {a:.4g}) and model2 ({b:.4g}) differ by {100 * gap:.0f} % and "
            f"{'both' if better else 'not both'} score below diffusion_model ({d:.4g}): the "
            "seed study's claim that model1 and model2 match each other and beat the "
            f"default schedule is {'supported' if better and gap < 0.2 else 'not supported'} "
            "by these numbers (match: within 20 %)."
        )
    full = [lb for lb in fids if abar.get(lb, 0.0) <= UNDER_DIFFUSED]
    for lb in [lb for lb in fids if abar.get(lb, 0.0) > UNDER_DIFFUSED]:
        value = fids[lb][0]
        ref = min(full, key=lambda k: fids[k][0]) if full else None
        sentence = (
            f"{lb} ends its schedule at alpha_bar_T = {abar[lb]:.3f} (signal amplitude "
            f"sqrt(alpha_bar_T) = {abar[lb] ** 0.5:.2f} left in z_T), yet sampling starts "
            "from pure noise N(0, I)"
        )
        if ref is None:
            out.append(sentence + "; no fully diffused run to compare with.")
            continue
        worse = value >= WORSE_FACTOR * fids[ref][0]
        claim = (
            " the seed study's claim that model2 at T = 1000 is clearly worse is "
            f"{'supported' if worse else 'not supported'} by these numbers."
            if lb == "model2_T1000"
            else ""
        )
        out.append(
            f"{sentence}: its FID {value:.4g} is {value / fids[ref][0]:.2f}x that of {ref} "
            f"({fids[ref][0]:.4g}), {'clearly worse' if worse else 'not clearly worse'} "
            f"(threshold {WORSE_FACTOR}x);{claim}"
        )
    return out


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[Interval, int]:
    """The 95 % Student-t interval of ``a - b`` over the seeds both have, and their count."""
    common = sorted(set(a) & set(b))
    if not common:
        return Interval(math.nan, -math.inf, math.inf), 0
    return mean_interval([a[s] - b[s] for s in common]), len(common)


def _said(iv: Interval, a: str, b: str, n: int) -> str:
    """``verdict`` on FID (lower is better) of ``a - b`` paired over ``n`` seeds."""
    if n == 0:
        return f"{a} and {b} share no seed to pair"
    return verdict(a, b, iv, "FID") + f" over {n} paired seeds"


def seeded_ddpm_findings(groups: dict[str, dict[int, Path]]) -> list[str]:
    """The DDPM findings over seeds: each configuration's FID as mean ± 95 % interval over
    its seeds; "A beats B" only where the interval of the seed-paired difference excludes
    zero, otherwise "cannot be told apart at this size"; the seed study's claims judged by
    those intervals (model1 and model2 *match* when their difference's interval holds zero
    and each *beats* the default schedule when its own excludes it; model2 at T = 1000 is
    *clearly worse* when its difference from the best fully diffused configuration
    excludes zero and its mean FID is at least :data:`WORSE_FACTOR` times that one's).

    Parameters
    ----------
    groups
        ``{configuration: {seed: run}}`` (:func:`configurations`).
    """
    fids: dict[str, dict[int, float]] = {}
    abar: dict[str, float] = {}
    for name, seeds in groups.items():
        got = {s: f[0] for s, r in seeds.items() if (f := _fid(r)) is not None}
        if got:
            fids[name] = got
            cfg = read_config(next(iter(seeds.values())))
            abar[name] = alpha_bar_T(cfg) if cfg is not None else 0.0
    if not fids:
        return ["No DDPM run has an FID yet (evaluation.json or a logged FID)."]
    means = {n: mean_interval(list(v.values())) for n, v in fids.items()}
    ranked = sorted(fids, key=lambda n: means[n].mean)
    listed = ", ".join(
        f"{n} {format_interval(means[n].mean, means[n].half_width)} ({len(fids[n])} seeds)"
        for n in ranked
    )
    out = [f"FID over seeds (mean ± 95 % interval, lowest first): {listed}."]
    best = ranked[0]
    for other in ranked[1:]:
        iv, n = _paired(fids[best], fids[other])
        out.append(_said(iv, best, other, n) + ".")
    out += _precision_recall_findings(groups, ranked, best)
    if {"diffusion_model", "model1", "model2"} <= set(fids):
        m1, n1 = _paired(fids["model1"], fids["diffusion_model"])
        m2, n2 = _paired(fids["model2"], fids["diffusion_model"])
        m12, n12 = _paired(fids["model1"], fids["model2"])
        beat = n1 > 0 and n2 > 0 and m1.high < 0 and m2.high < 0
        match = n12 > 0 and not m12.excludes_zero()
        out.append(
            f"{_said(m12, 'model1', 'model2', n12)}; {_said(m1, 'model1', 'diffusion_model', n1)}"
            f"; {_said(m2, 'model2', 'diffusion_model', n2)}: the seed study's claim that "
            "model1 and model2 match each other and beat the default schedule is "
            f"{'supported' if beat and match else 'not supported'} by these numbers (95 %)."
        )
    full = [n for n in fids if abar.get(n, 0.0) <= UNDER_DIFFUSED]
    if "model2_T1000" in fids and abar.get("model2_T1000", 0.0) > UNDER_DIFFUSED and full:
        ref = min(full, key=lambda n: means[n].mean)
        iv, n = _paired(fids["model2_T1000"], fids[ref])
        ratio = means["model2_T1000"].mean / means[ref].mean
        worse = n > 0 and iv.low > 0 and ratio >= WORSE_FACTOR
        out.append(
            f"model2_T1000 ends its schedule at alpha_bar_T = {abar['model2_T1000']:.3f} and "
            f"samples from pure noise: its mean FID is {ratio:.2f}x that of {ref}; "
            f"{_said(iv, 'model2_T1000', ref, n)}: the seed study's claim that model2 at "
            f"T = 1000 is clearly worse is {'supported' if worse else 'not supported'} by "
            f"these numbers (worse beyond the interval and at least {WORSE_FACTOR}x)."
        )
    return out


def _scores(ev: dict | None, key: str) -> float | None:
    """An unconditional score of an evaluation: DDPM's ``precision``, ``recall`` or ``fid``,
    cold diffusion's from its first (GMM) start."""
    if ev is None:
        return None
    if key in ev:
        return float(ev[key])
    by_start = ev.get(f"unconditional_{key}") or {}
    start = "gmm" if "gmm" in by_start else next(iter(by_start), None)
    return None if start is None else float(by_start[start])


def _over_seeds(seeds: dict[int, Path], key: str) -> dict[int, float]:
    return {s: v for s, r in seeds.items() if (v := _scores(read_evaluation(r), key)) is not None}


def _precision_recall_findings(
    groups: dict[str, dict[int, Path]], ranked: Sequence[str], best: str
) -> list[str]:
    """Precision and recall (Kynkäänniemi et al. 2019) of each configuration over seeds,
    and the best-FID configuration against each other one on both, paired by seed."""
    scores = {
        key: {n: v for n in ranked if (v := _over_seeds(groups[n], key))}
        for key in ("precision", "recall")
    }
    if not scores["precision"]:
        return []
    cells = []
    for n in ranked:
        parts = []
        for key in ("precision", "recall"):
            if n in scores[key]:
                iv = mean_interval(list(scores[key][n].values()))
                parts.append(f"{key} {format_interval(iv.mean, iv.half_width)}")
        if parts:
            cells.append(f"{n} {', '.join(parts)}")
    out = [
        "Precision (share of samples inside the real digits' feature manifold) and recall "
        "(share of real digits inside the samples'), over seeds, mean ± 95 % interval: "
        + "; ".join(cells)
        + "."
    ]
    for key in ("precision", "recall"):
        if best not in scores[key]:
            continue
        for other in ranked:
            if other == best or other not in scores[key]:
                continue
            iv, n = _paired(scores[key][best], scores[key][other])
            if n:
                said = verdict(best, other, iv, key, lower_is_better=False)
                out.append(f"{said} over {n} paired seeds.")
    return out


def blur_vs_ddpm_findings(
    ddpm: dict[str, dict[int, Path]], cold: dict[str, dict[int, Path]]
) -> list[str]:
    """Cold diffusion (blur) against the best DDPM configuration, paired by seed.

    The two are scored on different sample counts (a blur sample costs ``n_T`` network
    calls), and FID is biased upwards the fewer samples it sees; so each FID is compared as
    its excess over what as many real training digits score (``fid_real_train``, the
    floor at that count), and precision and recall beside it.

    Parameters
    ----------
    ddpm, cold
        ``{configuration: {seed: run}}`` (:func:`configurations`) of the DDPM and the cold
        diffusion runs.
    """
    excess = {}
    for name, seeds in {**ddpm, **cold}.items():
        got = {}
        for s, r in seeds.items():
            ev = read_evaluation(r)
            fid = _scores(ev, "fid")
            if fid is not None and ev is not None and "fid_real_train" in ev:
                got[s] = fid - float(ev["fid_real_train"])
        if got:
            excess[name] = got
    means = {n: mean_interval(list(v.values())) for n, v in excess.items()}
    ranked = sorted((n for n in ddpm if n in excess), key=lambda n: means[n].mean)
    if not ranked:
        return []
    best, out = ranked[0], []
    for name in cold:
        if name not in excess:
            continue
        iv, n = _paired(excess[name], excess[best])
        a, b = means[name], means[best]
        line = (
            f"{name} (cold diffusion) against {best} (the DDPM configuration of lowest FID), "
            f"FID above the real-digit floor at each run's sample count: "
            f"{format_interval(a.mean, a.half_width)} against "
            f"{format_interval(b.mean, b.half_width)}; "
            + (
                verdict(name, best, iv, "FID above the floor") + f" over {n} paired seeds"
                if n
                else f"{name} and {best} share no seed to pair"
            )
        )
        for key in ("precision", "recall"):
            pa, pb = _over_seeds(cold[name], key), _over_seeds(ddpm[best], key)
            piv, pn = _paired(pa, pb)
            if pn:
                line += f"; {verdict(name, best, piv, key, lower_is_better=False)}"
        out.append(line + ".")
    return out


def _ink(images: torch.Tensor, value_range: Sequence[float]) -> tuple[float, float]:
    """Share of pixels brighter than mid-grey, and the mean per-pixel std across samples."""
    unit = from_range(images.float().cpu(), tuple(value_range)).clamp(0, 1)
    return (unit > 0.5).float().mean().item(), unit.std(0).mean().item()


EMPTY_INK = 0.02
"""Black-start samples with fewer pixels above mid-grey than this share are near-empty."""

ALIKE_SPREAD = 0.1
"""Black-start samples whose per-pixel spread across samples is below this fraction of the
GMM start's are (nearly) one image repeated."""


def black_start_collapse(
    black: torch.Tensor, gmm: torch.Tensor, value_range: Sequence[float]
) -> dict[str, float | bool]:
    """Whether unconditional samples from the black start collapse, measured on the images.

    Collapse is judged from the samples themselves, not from FID (a poor FID also comes
    from diverse bad digits): the black-start samples are *near-empty* (under
    :data:`EMPTY_INK` of their pixels above mid-grey) or *alike* (their per-pixel spread
    across samples, each pixel's standard deviation about the mean image averaged over
    the pixels, is under :data:`ALIKE_SPREAD` times that of the GMM start's samples).

    Parameters
    ----------
    black, gmm
        ``[N, C, H, W]`` samples from the black start and from the GMM start.
    value_range
        Pixel range of the images.

    Returns
    -------
    dict
        ``ink_black``, ``ink_gmm`` (shares of pixels above mid-grey), ``spread_black``,
        ``spread_gmm``, ``empty``, ``alike`` and ``collapsed`` (empty or alike).
    """
    ink_b, spread_b = _ink(black, value_range)
    ink_g, spread_g = _ink(gmm, value_range)
    empty, alike = ink_b < EMPTY_INK, spread_b < ALIKE_SPREAD * spread_g
    return {
        "ink_black": ink_b,
        "ink_gmm": ink_g,
        "spread_black": spread_b,
        "spread_gmm": spread_g,
        "empty": empty,
        "alike": alike,
        "collapsed": empty or alike,
    }


def _black_start_finding(run: Path, label: str, ev: dict, cfg: DiffusionRunConfig | None) -> str:
    """The sentence on the black start: its FID beside the GMM start's, and whether its
    final samples grid collapses (:func:`black_start_collapse`)."""
    from coldflow.runs import load_tensors

    fids = ev["unconditional_fid"]
    sentence = (
        f"{label}: unconditional FID {fids['black']:.4g} from the black start vs "
        f"{fids['gmm']:.4g} from the GMM start ({ev.get('n_samples', '?')} samples each)"
    )
    claim = "The seed study's claim that black-start samples collapse"
    final = RunDir(run).samples_path()
    tensors = load_tensors(final) if final.is_file() and cfg is not None else {}
    if "images_black_start" not in tensors or "images" not in tensors:
        return (
            f"{sentence}. {claim} is not judged: the run has no final grids from both starts "
            f"({final.name}) to measure it on, and FID does not tell a collapse."
        )
    c = black_start_collapse(tensors["images_black_start"], tensors["images"], cfg.data.range)
    if c["empty"]:
        what = "the black start collapses to near-empty images"
    elif c["alike"]:
        what = "the black start collapses to nearly one image repeated"
    else:
        what = "the black-start images are neither empty nor alike"
    return (
        f"{sentence}; the final black-start grid has {100 * c['ink_black']:.1f} % of pixels "
        f"above mid-grey (GMM start: {100 * c['ink_gmm']:.1f} %) and a per-pixel spread "
        f"across samples of {c['spread_black']:.3f} (GMM: {c['spread_gmm']:.3f}): {what}. "
        f"{claim} is {'supported' if c['collapsed'] else 'not supported'} by these numbers "
        f"(collapse: under {100 * EMPTY_INK:.0f} % of pixels above mid-grey, or a spread "
        f"under {ALIKE_SPREAD:g}x the GMM start's; FID is not a collapse measure)."
    )


def cold_findings(runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
    """Sentences on Table 1, the samplers and the starts (generated from the runs' files)."""
    out = []
    for run, label in zip(runs, labels, strict=True):
        ev, cfg = read_evaluation(run), read_config(run)
        if ev is None:
            out.append(f"{label}: not evaluated (no evaluation.json); no Table 1 findings.")
            continue
        table = ev.get("conditional", {})
        hybrid = cfg is not None and cfg.degradation.noise_end + cfg.degradation.noise_start > 0
        if "naive" in table and "improved" in table:
            nv, im = table["naive"], table["improved"]
            wins = [
                name
                for name, better in (
                    ("RMSE", im["rmse"] < nv["rmse"]),
                    ("SSIM", im["ssim"] > nv["ssim"]),
                    ("FID", "fid" in im and "fid" in nv and im["fid"] < nv["fid"]),
                )
                if better
            ]
            verdict = "does not beat the naive one"
            if wins:
                verdict = f"beats the naive one on {', '.join(wins)}"
            both_fid = "fid" in im and "fid" in nv
            fid_text = f", FID {im['fid']:.4g} vs {nv['fid']:.4g}" if both_fid else ""
            note = " (hybrid blur + noise: the two samplers coincide by construction)" * hybrid
            out.append(
                f"{label}: the improved sampler {verdict} (RMSE {im['rmse']:.4f} vs "
                f"{nv['rmse']:.4f}, SSIM {im['ssim']:.3f} vs {nv['ssim']:.3f}"
                + f"{fid_text}){note}."
            )
        if "degraded" in table and ("improved" in table or "naive" in table):
            best = table.get("improved") or table["naive"]
            dg = table["degraded"]
            good = best["rmse"] < dg["rmse"] and best["ssim"] > dg["ssim"]
            out.append(
                f"{label}: conditional restoration of {ev.get('conditional_images', '?')} test "
                f"images takes RMSE from {dg['rmse']:.4f} (degraded) to {best['rmse']:.4f} and "
                f"SSIM from {dg['ssim']:.3f} to {best['ssim']:.3f}; the seed study's claim that "
                f"blur restoration is good is {'supported' if good else 'not supported'} by "
                "these numbers (both must improve on the degraded input)."
            )
        if "lookup" in table and ("improved" in table or "naive" in table):
            name = "improved" if "improved" in table else "naive"
            best, lk = table[name], table["lookup"]
            wins = best["rmse"] < lk["rmse"] and best["ssim"] > lk["ssim"]
            out.append(
                f"{label}: restoring by memory (the training digit whose own blurred version is "
                f"nearest to the input) gives RMSE {lk['rmse']:.4f} and SSIM {lk['ssim']:.3f}; "
                f"the {name} sampler ({best['rmse']:.4f}, {best['ssim']:.3f}) is "
                + ("better on both" if wins else "not better on both")
                + ": "
                + (
                    "the model restores more than it could by remembering training digits"
                    if wins
                    else "no evidence that it restores more than remembering training digits"
                )
                + (
                    f". By FID the lookup scores {lk['fid']:.4g} against the sampler's "
                    f"{best['fid']:.4g}: FID rewards real-looking digits, right or wrong."
                    if "fid" in lk and "fid" in best and lk["fid"] < best["fid"]
                    else "."
                )
            )
        fids = ev.get("unconditional_fid", {})
        if "gmm" in fids and "black" in fids:
            out.append(_black_start_finding(run, label, ev, cfg))
    return out


COPYING_RATIO = 0.8
"""Samples whose median distance to the nearest training digit is below this fraction of
held-out test digits' read as copies of the training set."""


COPYING_SHARE = 0.05
"""More near copies than this share of samples reads as copying (unseen real digits: 1 %)."""


def baseline_cells(ev: dict) -> list[str]:
    """Table cells: FID of as many real training digits, nearest-training-digit distances
    (samples / held-out test digits, median RMS on [0, 1]) and the share of near copies."""
    near = ev.get("nearest_train")
    floor = f"{ev['fid_real_train']:.4g}" if "fid_real_train" in ev else ""
    if not near:
        return [floor, "", ""]
    distances = f"{near['median_sample_to_train']:.3f} / {near['median_test_to_train']:.3f}"
    return [floor, distances, f"{100 * near['near_copies']:.1f} %"]


BASELINE_HEADER = ["FID, real digits", "nearest train: samples / test", "near copies"]


def baseline_findings(runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
    """Sentences on the real-digit baselines: the FID floor and the copying check."""
    evs = {lb: ev for lb, r in zip(labels, runs, strict=True) if (ev := read_evaluation(r))}
    evs = {lb: ev for lb, ev in evs.items() if "nearest_train" in ev and "fid_real_train" in ev}
    if not evs:
        return []
    out = []
    floors = sorted({(ev["n_samples"], ev["fid_real_train"]) for ev in evs.values()})
    scored = [f"{lb} {_model_fid(ev):.4g}" for lb, ev in evs.items() if _model_fid(ev) is not None]
    out.append(
        "Real training digits, as many as each run's samples and scored against the same "
        "test statistics, reach FID "
        + ", ".join(f"{f:.4g} at {n} digits" for n, f in floors)
        + " (the floor at that count: FID is biased upwards when few samples are scored); "
        + ("the runs: " + ", ".join(scored) + "." if scored else "no run has an FID.")
    )
    near = {lb: ev["nearest_train"] for lb, ev in evs.items()}
    test = sorted({round(n["median_test_to_train"], 3) for n in near.values()})
    copying = [
        lb for lb, n in near.items()
        if n["ratio"] < COPYING_RATIO or n["near_copies"] > COPYING_SHARE
    ]  # fmt: skip
    parts = ", ".join(
        f"{lb} {n['median_sample_to_train']:.3f} ({100 * n['near_copies']:.1f} % near copies)"
        for lb, n in near.items()
    )
    verdict = (
        f"the samples of {', '.join(copying)} lie closer to training digits than unseen real "
        f"digits do (median below {COPYING_RATIO}x, or over {100 * COPYING_SHARE:.0f} % near "
        "copies): signs of copying the training set"
        if copying
        else "no run's samples lie closer to the training digits than unseen real digits do: "
        "no sign of copying (a larger distance can also mean digits unlike any real one)"
    )
    out.append(
        "Nearest training digit (median RMS distance on [0, 1] pixels): held-out test "
        f"digits {' / '.join(f'{t:.3f}' for t in test)}; samples: {parts}; near copy: "
        "closer than 99 % of test digits are to theirs. " + verdict[0].upper() + verdict[1:] + "."
    )
    return out


def _model_fid(ev: dict) -> float | None:
    """The run's unconditional FID of the samples the baselines were computed on."""
    if "fid" in ev:
        return ev["fid"]
    start = ev.get("nearest_train", {}).get("start")
    return ev.get("unconditional_fid", {}).get(start)
