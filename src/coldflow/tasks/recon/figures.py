"""Figures and tables of the autoencoder and super-resolution runs.

Reads what their evaluation left in a run directory (``evaluation.json`` and
``samples/reconstruction.safetensors`` or ``samples/superres.safetensors``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.metrics.spec import metric_spec
from coldflow.report.html import Comparison, Figure, markdown_table, save
from coldflow.report.style import DIVERGING_CMAP, FULL_WIDTH, new_figure, style_context
from coldflow.runs import load_tensors
from coldflow.tasks.fluid import outside_training_range

__all__ = [
    "comparison",
    "diffusion_findings",
    "diffusion_table",
    "field_panels_figure",
    "how_trained",
    "results_table",
    "run_figures",
    "solver_output_figure",
    "solver_output_table",
    "spectra_figure",
    "spread_figure",
]

_FILES = {"autoencoder": "reconstruction.safetensors", "superres": "superres.safetensors"}
_COLUMNS = {
    "autoencoder": [("input", "input"), ("autoencoder", "autoencoder"),
                    ("baseline", "resampled"), ("pca", "PCA"), ("dct", "DCT")],
    "superres": [("bicubic", "bicubic"), ("nearest", "nearest\ntraining frame"),
                 ("superres", "super-resolution"), ("reference", "reference")],
}  # fmt: skip
"""Panels of the stored test frames (key in the samples file, title); runs evaluated
before a panel existed simply lack it."""


def field_panels_figure(
    panels: Sequence[tuple[str, torch.Tensor]],
    truth: str,
    channels: Sequence[str],
    transpose: bool,
    title: str = "",
):
    """One row per channel: each panel ``[C, H, W]`` and, right of them, the error of every
    other panel against the panel named ``truth``; shared colour scales with colour bars."""
    reference = dict(panels)[truth]
    errors = [(f"error\n{name}", p - reference) for name, p in panels if name != truth]
    columns = [*panels, *errors]
    with style_context():
        fig, axes = new_figure(
            len(channels), len(columns), width=FULL_WIDTH, height=1.7 * len(channels) + 0.4
        )
        axes = np.asarray(axes).reshape(len(channels), len(columns))
        for r, channel in enumerate(channels):
            lim = float(reference[r].abs().max()) or 1.0
            elim = max(float(e[r].abs().max()) for _, e in errors) if errors else lim
            for c, (name, values) in enumerate(columns):
                v = values[r].numpy()
                v = v.T if transpose else v
                is_err = c >= len(panels)
                bound = elim if is_err else lim
                im = axes[r, c].imshow(
                    v, origin="lower", cmap=DIVERGING_CMAP, vmin=-bound, vmax=bound
                )
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
                if r == 0:
                    axes[r, c].set_title(name, fontsize="small")
                if c in (len(panels) - 1, len(columns) - 1):
                    fig.colorbar(im, ax=axes[r, c], shrink=0.8)
            axes[r, 0].set_ylabel(channel, fontsize="small")
        if title:
            fig.suptitle(title, fontsize="small")
    return fig


def run_figures(run: Path, mode: str, notes: list[str]) -> list[Figure]:
    """Input, output and error maps of the stored test frames of one evaluated run."""
    ev_path = Path(run) / "evaluation.json"
    path = Path(run) / "samples" / _FILES[mode]
    if not ev_path.is_file() or not path.is_file():
        notes.append("not evaluated yet: run `coldflow evaluate` for the field figures")
        return []
    ev = json.loads(ev_path.read_text())
    tensors = load_tensors(path)
    truth_key = "input" if mode == "autoencoder" else "reference"
    truth = dict(_COLUMNS[mode])[truth_key]  # its panel title
    figures: list[Figure] = []
    for i in range(len(tensors[truth_key])):
        panels = [(label, tensors[key][i]) for key, label in _COLUMNS[mode] if key in tensors]
        target = Path(run) / "figures" / f"{mode}_frame{i}.png"
        caption = (
            f"Test frame {i + 1} of {len(tensors[truth_key])} ({ev['data']}, {ev['split']} "
            "split): the fields, then each one's error against "
            f"{'the input' if mode == 'autoencoder' else 'the high-resolution reference'}."
        )
        if mode == "autoencoder":
            caption += (
                " The codecs beside the autoencoder store as many numbers per frame as its "
                "latent code: resampled (area average, read back bicubically), PCA of the "
                "training frames, DCT (lowest frequencies)."
            )
        save(figures, notes, target, caption,
             lambda p=panels: field_panels_figure(
                 p, truth, ev["channels"], ev.get("scene") == "karman"))  # fmt: skip
        if "spread" in tensors:
            target = Path(run) / "figures" / f"{mode}_spread{i}.png"
            caption = (
                f"Test frame {i + 1}: where the diffusion model is unsure. The reference, "
                f"one sample, the mean of {ev['diffusion']['samples']} samples, the absolute "
                "error of that mean and the samples' standard deviation (spread), on one "
                "colour scale for the last two."
            )
            save(figures, notes, target, caption,
                 lambda i=i: spread_figure(
                     tensors, i, ev["channels"], ev.get("scene") == "karman"))  # fmt: skip
    return figures


def results_table(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown: the baselines once, then every run's model row, all metrics; time per frame."""
    metrics = list(
        dict.fromkeys(m for ev in evaluations for row in ev["mean"].values() for m in row)
    )
    rows: list[list[Any]] = []
    first = evaluations[0]
    for row, values in first["mean"].items():
        if not _is_model_row(row):
            rows.append(
                [
                    row,
                    *(values.get(m, "") for m in metrics),
                    first["seconds_per_frame"].get(row, ""),
                ]
            )
    for ev, label in zip(evaluations, labels, strict=True):
        for row in [r for r in ev["mean"] if _is_model_row(r)]:
            values = ev["mean"][row]
            t = ev["seconds_per_frame"].get(row, "")
            rows.append(
                [f"{label}: {row} ({how_trained(ev)})", *(values.get(m, "") for m in metrics), t]
            )
    intro = (
        f"{first['frames']} frames of the {first['split']} simulations "
        f"{first['simulations']} of {first['data']}."
    )
    intro += "".join(f" {s}" for s in _protocol(first))
    skipped = {k: v for ev in evaluations for k, v in ev.get("skipped_metrics", {}).items()}
    lines = [intro, "", markdown_table(["model", *metrics, "s/frame"], rows)]
    samples = {ev["diffusion"]["samples"] for ev in evaluations if ev.get("diffusion")}
    if samples:
        lines.append(
            "A diffusion model's 'super-resolution' row is one sample per frame; its 'mean "
            "of N samples' row averages N of them (cold diffusion's samples do not vary)."
        )
    lines += [f"Not scored: {k} ({_short_reason(v)})." for k, v in skipped.items()]
    absent = {k: v for ev in evaluations for k, v in ev.get("skipped_baselines", {}).items()}
    lines += [f"Baseline left out: {k} ({v})." for k, v in absent.items()]
    return "\n".join(lines) + "\n"


def _is_model_row(row: str) -> bool:
    """A row of the run's own model (not a baseline shared by every run of the task)."""
    return row in ("autoencoder", "source, super-resolved") or row.startswith("super-resolution")


def how_trained(ev: dict[str, Any]) -> str:
    """``"mse"``, ``"lsim"``, ... for a loss-trained model; ``"DDPM, 10 steps"`` or
    ``"cold diffusion, 8 steps"`` for a diffusion super-resolution."""
    d = ev.get("diffusion")
    if not d:
        return ev["loss"]
    what = "DDPM" if d["process"] == "ddpm" else "cold diffusion"
    return f"{what}, {d['steps']} steps"


def _protocol(ev: dict[str, Any]) -> list[str]:
    """Sentences on what an evaluation scored and stored (evaluations of older versions
    lack the keys, and get none)."""
    out = []
    if ev.get("obstacle_cells"):
        out.append(
            f"Every method is scored on the {ev['scored_cells']} cells outside the obstacle "
            f"({ev['obstacle_cells']} cells at least half covered by it are left out)."
        )
    if "dct_numbers" in ev:
        stored = [f"resampling {ev['baseline_numbers']}", f"DCT {ev['dct_numbers']}"]
        how = [
            "DCT the lowest-frequency coefficients of each channel's orthonormal DCT-II (a "
            "set fixed in advance: no indices stored)"
        ]
        if "pca_numbers" in ev:
            stored.insert(1, f"PCA {ev['pca_numbers']}")
            basis = ev["pca_basis_numbers"]
            how.insert(
                0,
                f"PCA the coefficients of the top components of the {ev['pca_fit_frames']} "
                f"training frames (its basis and mean, {basis} numbers, are stored once)",
            )
        out.append(
            f"The codecs store {ev['latent_numbers']} numbers per frame like the latent code "
            f"({', '.join(stored)}): {'; '.join(how)}."
        )
    if "nearest_searched" in ev:
        s = ev["nearest_searched"]
        mirrored = f" and their mirror images ({', '.join(s['mirror_axes'])})"
        out.append(
            f"The nearest training frame is searched among all {s['frames']} training "
            f"frames{mirrored if s['mirror_axes'] else ''}, matched on the low-resolution input."
        )
    return out


def _short_reason(reason: str) -> str:
    """A hub error's first clause: no addresses or local paths (evaluation.json has it all)."""
    return re.split(r":? https?://|\. ", reason, maxsplit=1)[0].rstrip(" :.")


def per_simulation_scores(evaluation: dict[str, Any]) -> dict[str, dict[str, list[float]]] | None:
    """``{row: {metric: [mean over the frames of each test simulation]}}``, simulations in
    the order of ``evaluation["simulations"]``; None for an evaluation made before frames
    recorded their simulation."""
    sims = evaluation.get("frame_simulation")
    if not sims:
        return None
    index = np.asarray(sims)
    order = sorted(set(sims))
    return {
        row: {m: [float(np.mean(np.asarray(v)[index == j])) for j in order] for m, v in ms.items()}
        for row, ms in evaluation["per_frame"].items()
    }


def per_simulation_table(
    evaluations: Sequence[dict[str, Any]], labels: Sequence[str], model: str,
    metric: str = "rel_l1",
) -> str:  # fmt: skip
    """Markdown: ``metric`` per test simulation (mean over its frames) of every baseline
    and each run's model, each simulation marked inside or outside the training range,
    and per run on how many simulations inside and outside it beats every baseline."""
    first = evaluations[0]
    scores = [per_simulation_scores(ev) for ev in evaluations]
    if scores[0] is None or metric not in scores[0].get(model, {}):
        return ""
    base = [r for r in scores[0] if not _is_model_row(r) and not r.startswith("source,")]
    ranges = first.get("training_range", {})
    params = {p["index"]: p for p in first.get("simulation_params", [])}
    sims = sorted(set(first["frame_simulation"]))
    spec = metric_spec(metric)
    head = ["simulation", "training range", *base, *labels]
    rows, counts = [], {lb: {} for lb in labels}
    for j, sim in enumerate(sims):
        p = params.get(sim, {})
        text = ", ".join(f"{k} {v:g}" for k, v in p.items() if k not in ("index", "seed"))
        out = outside_training_range(p, ranges)
        where = "outside" if out else "inside" if ranges and p else "unknown"
        row = [f"{sim} ({text})" if text else str(sim), "; ".join(out) or where]
        row += [scores[0][b][metric][j] for b in base]
        for sc, lb in zip(scores, labels, strict=True):
            value = sc[model][metric][j] if sc and model in sc else float("nan")
            row.append(value)
            won = all(spec.better(value, scores[0][b][metric][j]) for b in base)
            tally = counts[lb].setdefault(where, [0, 0])
            tally[0] += won
            tally[1] += 1
        rows.append(row)
    words = []
    for lb in labels:
        parts = [
            f"{won} of {n} " + ("(range not recorded)" if w == "unknown" else f"{w} the range")
            for w, (won, n) in counts[lb].items()
        ]
        words.append(f"{lb}: beats every baseline in {spec.label} on " + " and ".join(parts) + ".")
    title = f"{spec.label} per test simulation (mean over its frames):"
    return "\n".join([title, "", markdown_table(head, rows).rstrip("\n"), "", *words]) + "\n"


def comparison(runs: Sequence[Path], out: Path, labels: Sequence[str], mode: str) -> Comparison:
    """The results table of several evaluated runs of one task."""
    evs, notes = [], []
    for run, label in zip(runs, labels, strict=True):
        path = Path(run) / "evaluation.json"
        if path.is_file():
            evs.append((json.loads(path.read_text()), label))
        else:
            notes.append(f"{label}: not evaluated; run `coldflow evaluate {run}`")
    result = Comparison(notes=notes)
    if evs:
        table = results_table([e for e, _ in evs], [lb for _, lb in evs])
        result.tables.append((f"{mode} on test frames", table))
        model = "autoencoder" if mode == "autoencoder" else "super-resolution"
        per_sim = per_simulation_table([e for e, _ in evs], [lb for _, lb in evs], model)
        if per_sim:
            result.tables.append((f"{mode} per test simulation", per_sim))
    if any(e.get("diffusion") for e, _ in evs):
        table = diffusion_table([e for e, _ in evs], [lb for _, lb in evs])
        result.tables.append(("diffusion and loss-trained super-resolution", table))
    spectral = [(e, lb) for e, lb in evs if e.get("spectra")]
    if spectral:
        target = Path(out) / "figures" / f"{mode}_spectra.png"
        caption = (
            "Kinetic-energy spectrum E(k) of the test frames' velocity (mean over frames; "
            "k in units of one over the high-resolution cell): the reference, the "
            "baselines and every run's output. Where a line drops below the reference at "
            "high k, that upsampler has lost the small scales."
        )
        evals, names = [e for e, _ in spectral], [lb for _, lb in spectral]
        save(result.figures, result.notes, target, caption,
             lambda: spectra_figure(evals, names))  # fmt: skip
    solver = [(e, lb) for e, lb in evs if e.get("solver_output")]
    if solver:
        table = solver_output_table([e for e, _ in solver], [lb for _, lb in solver])
        result.tables.append(("super-resolution on the low-resolution solver's output", table))
        target = Path(out) / "figures" / "superres_solver_output.png"
        caption = (
            "Error of each upsampler against the number of low-resolution solver steps k "
            "since a start on the downsampled test frame (mean over starts and test "
            "simulations): what an upsampler meets at the end of a cheap simulator."
        )
        evals, names = [e for e, _ in solver], [lb for _, lb in solver]
        save(result.figures, result.notes, target, caption,
             lambda: solver_output_figure(evals, names))  # fmt: skip
    return result


def _solver_rows(evaluations, labels):
    """``(row label, evaluation row)`` of the solver-output section: the baselines once
    (from the first run), then each run's super-resolution."""
    first = evaluations[0]["solver_output"]
    rows = [(r, first, r) for r in first["mean"] if r != "super-resolution"]
    for ev, label in zip(evaluations, labels, strict=True):
        name = f"{label}: super-resolution ({how_trained(ev)})"
        rows.append((name, ev["solver_output"], "super-resolution"))
    return rows


def solver_output_table(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown: every upsampler on solver output, each metric's mean over k = 1 .. K and
    the relative L1 error at a few k."""
    first = evaluations[0]["solver_output"]
    K = first["steps"]
    metrics = list(
        dict.fromkeys(
            m for ev in evaluations for m in ev["solver_output"]["mean"]["super-resolution"]
        )
    )
    ks = sorted({1, min(10, K), K})
    has_l1 = "rel_l1" in metrics
    rows = []
    for name, section, row in _solver_rows(evaluations, labels):
        values = section["mean"][row]
        at = [section["per_step"][row]["rel_l1"][k - 1] for k in ks] if has_l1 else []
        rows.append([name, *(values.get(m, "") for m in metrics), *at])
    header = ["model", *(f"{m} (k 1-{K})" for m in metrics)]
    header += [f"rel_l1 at k={k}" for k in ks] if has_l1 else []
    intro = (
        f"The low-resolution solver runs {K} steps from {len(first['starts'])} start frames "
        f"({', '.join(map(str, first['starts']))}) of each test simulation "
        f"{first['simulations']}, starting on the downsampled reference; each state k is "
        "upsampled and compared with the reference at its frame."
    )
    return intro + "\n\n" + markdown_table(header, rows) + "\n"


def solver_output_figure(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]):
    """Relative L1 error (or the first metric) of every upsampler against solver steps k."""
    rows = _solver_rows(evaluations, labels)
    available = rows[0][1]["per_step"][rows[0][2]]
    metric = "rel_l1" if "rel_l1" in available else next(iter(available))
    with style_context():
        fig, ax = new_figure(1, 1, width=FULL_WIDTH * 0.6, height=2.6)
        for name, section, row in rows:
            values = section["per_step"][row][metric]
            style = {"ls": "--"} if row != "super-resolution" else {}
            ax.plot(range(1, len(values) + 1), values, label=name, **style)
        ax.set_xlabel("low-resolution solver steps k since the start")
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend(fontsize="small")
    return fig


DIFFUSION_METRICS = ("rel_l1", "lsim", "lse_top")
"""The columns of the diffusion table (where the evaluations have them)."""


def diffusion_table(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown: bicubic and the nearest training frame, then every run's model rows (the
    loss-trained upsamplers and the diffusion models side by side): rel. L1, LSiM, the
    top-octave spectral error, the spread across samples and the time per frame; then each
    diffusion model's error and time against its sampling steps."""
    first = evaluations[0]
    metrics = [m for m in DIFFUSION_METRICS if m in first["mean"]["bicubic"]]
    head = ["model", *(metric_spec(m).label for m in metrics), "spread", "s/frame"]
    rows: list[list[Any]] = []
    for base in ("bicubic", "nearest training frame"):
        if base in first["mean"]:
            values = first["mean"][base]
            rows.append([base, *(values.get(m, "") for m in metrics), "",
                         first["seconds_per_frame"].get(base, "")])  # fmt: skip
    for ev, label in zip(evaluations, labels, strict=True):
        d = ev.get("diffusion") or {}
        spread = d.get("spread", {}).get("relative", 0.0) if d else ""
        for row in [r for r in ev["mean"] if r.startswith("super-resolution")]:
            values = ev["mean"][row]
            t = ev["seconds_per_frame"].get("super-resolution", "")
            if row != "super-resolution":  # the mean of N costs N samples
                t = t * d["samples"] if isinstance(t, float) else t
            rows.append([f"{label}: {row} ({how_trained(ev)})",
                         *(values.get(m, "") for m in metrics), spread, t])  # fmt: skip
    lines = [
        "Every upsampler on the same test frames. Spread: the standard deviation across a "
        "diffusion model's samples, summed over the scored cells, relative to the "
        "reference (rel. L1's normalisation); a deterministic model's is 0 (blank for the "
        "baselines). Top-octave spectral error: the log-spectral error of the kinetic "
        "energy in the highest octave of wavenumbers, the small scales an MSE-trained "
        "upsampler smooths. Seconds per frame of one sample (of N for the mean).",
        "",
        markdown_table(head, rows),
    ]
    for ev, label in zip(evaluations, labels, strict=True):
        d = ev.get("diffusion")
        if not d or not d.get("sweep"):
            continue
        corr = d["spread"].get("error_correlation")
        if corr is not None:
            lines.append(
                f"{label}: the spread correlates with the error of the mean at "
                f"{corr:.2f} over the scored cells (mean over test frames)."
            )
        m = [x for x in metrics if x in d["sweep"][0]["mean"]]
        sweep_rows = [
            [s["steps"], s["sampler"], *(s["mean"][x] for x in m), s["seconds_per_frame"]]
            for s in d["sweep"]
        ]
        lines += [
            "",
            f"{label}: against the sampler's steps, on {d['sweep'][0]['frames']} evenly "
            "spread test frames:",
            "",
            markdown_table(
                ["steps", "sampler", *(metric_spec(x).label for x in m), "s/frame"], sweep_rows
            ).rstrip("\n"),
        ]
    return "\n".join(lines) + "\n"


def spectra_figure(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]):
    """The mean kinetic-energy spectrum of the reference, bicubic, the nearest training
    frame and every run's super-resolution (and mean of samples), log-log."""
    from coldflow.report.spectra import spectrum_figure

    first = evaluations[0]["spectra"]
    k = first["k"]
    lines = {"reference": (k, first["energy"]["reference"])}
    for base in ("bicubic", "nearest training frame"):
        if base in first["energy"]:
            lines[base] = (k, first["energy"][base])
    for ev, label in zip(evaluations, labels, strict=True):
        one = (ev.get("diffusion") or {}).get("samples", 1) < 2  # its mean is its sample
        for row, energy in ev["spectra"]["energy"].items():
            if row.startswith("super-resolution") and not (one and row != "super-resolution"):
                lines[f"{label}: {row.replace('super-resolution', how_trained(ev))}"] = (
                    ev["spectra"]["k"],
                    energy,
                )
    return spectrum_figure(lines, reference="reference", title="test frames, mean E(k)")


def spread_figure(
    tensors: dict[str, torch.Tensor], i: int, channels: Sequence[str], transpose: bool
):
    """One row per channel: reference, one sample, the mean of the samples, the absolute
    error of the mean, and the spread (standard deviation across the samples)."""
    ref = tensors["reference"][i]
    cols = [("reference", ref), ("one sample", tensors["superres"][i]),
            ("mean of samples", tensors["mean"][i])]  # fmt: skip
    err = (tensors["mean"][i] - ref).abs()
    spread = tensors["spread"][i]
    with style_context():
        fig, axes = new_figure(len(channels), 5, width=FULL_WIDTH, height=1.7 * len(channels) + 0.4)
        axes = np.asarray(axes).reshape(len(channels), 5)
        for r, channel in enumerate(channels):
            lim = float(ref[r].abs().max()) or 1.0
            top = max(float(err[r].max()), float(spread[r].max())) or 1.0
            panels = [*((n, v[r], DIVERGING_CMAP, -lim, lim) for n, v in cols),
                      ("|error of mean|", err[r], "magma", 0.0, top),
                      ("spread", spread[r], "magma", 0.0, top)]  # fmt: skip
            for c, (name, v, cmap, lo, hi) in enumerate(panels):
                v = v.numpy().T if transpose else v.numpy()
                im = axes[r, c].imshow(v, origin="lower", cmap=cmap, vmin=lo, vmax=hi)
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
                if r == 0:
                    axes[r, c].set_title(name, fontsize="small")
                if c in (2, 4):
                    fig.colorbar(im, ax=axes[r, c], shrink=0.8)
            axes[r, 0].set_ylabel(channel, fontsize="small")
    return fig


def _top_energy(ev: dict[str, Any], row: str) -> float | None:
    """The share of the reference's kinetic energy in the highest octave that ``row``
    has (1: all of it; mean spectra of the test frames)."""
    sp = ev.get("spectra") or {}
    if "top_octave" not in sp or row not in sp["energy"]:
        return None
    lo, hi = sp["top_octave"]
    ref = sum(sp["energy"]["reference"][lo:hi])
    return sum(sp["energy"][row][lo:hi]) / ref if ref > 0 else None


def diffusion_findings(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> list[str]:
    """Per diffusion model: how much of the reference's top-octave energy it recovers
    beside the MSE-trained super-resolution (same input) and bicubic, and at what price
    in rel. L1, LSiM and time per frame (means over the test frames; the seed page's
    paired differences say which of these differences exceed the spread)."""
    mse = {
        ev.get("training_input", "downsampled"): (ev, lb)
        for ev, lb in zip(evaluations, labels, strict=True)
        if not ev.get("diffusion") and ev.get("loss") == "mse"
    }
    out = []
    for ev, label in zip(evaluations, labels, strict=True):
        if not ev.get("diffusion"):
            continue
        twin = mse.get(ev.get("training_input", "downsampled"))
        parts = []
        share = _top_energy(ev, "super-resolution")
        bic = _top_energy(ev, "bicubic")
        if share is not None and bic is not None:
            words = f"has {100 * share:.0f} % of the reference's energy in the top octave"
            words += f" (bicubic {100 * bic:.0f} %"
            if twin and (t := _top_energy(twin[0], "super-resolution")) is not None:
                words += f", {twin[1]} {100 * t:.0f} %"
            parts.append(words + ")")
        sr, base = (
            ev["mean"]["super-resolution"],
            twin[0]["mean"]["super-resolution"] if twin else None,
        )
        for m in ("lse_top", "rel_l1", "lsim"):
            if m not in sr:
                continue
            text = f"{metric_spec(m).label} {sr[m]:.4g}"
            if base and m in base:
                text += f" against {base[m]:.4g} for {twin[1]}"
            text += (
                f" and {ev['mean']['bicubic'][m]:.4g} for bicubic"
                if m in ev["mean"]["bicubic"]
                else ""
            )
            parts.append(text)
        t = ev["seconds_per_frame"].get("super-resolution")
        if t is not None:
            cost = f"{t:.3g} s per frame"
            other = twin[0]["seconds_per_frame"].get("super-resolution") if twin else None
            if other:
                cost += f" ({t / other:.0f} times {twin[1]}'s)"
            parts.append(cost)
        out.append(f"{label} ({how_trained(ev)}, one sample per frame): " + "; ".join(parts) + ".")
    return out
