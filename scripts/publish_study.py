"""Publish a study's page into docs/: its results.md with the figures it shows.

``coldflow study`` writes ``<out>/results.md`` whose thumbnails point into the run
directories, which are not part of the repository. This copies the page to ``--to``
(a markdown file), copies every figure it shows (of the runs of the seeds listed in
``--seeds``; thumbnails of other seeds' runs are dropped from the copy, their numbers
stay) into a folder beside it, rewrites the links, drops links to HTML pages that are not
published, prepends ``--header`` (a markdown file: what was run, by which command, and
what the numbers say), and appends ``--figure`` images under "More figures".

    python scripts/publish_study.py runs/fluids_cpu --to docs/results/fluids_cpu.md \
        --header notes/fluids_header.md --seeds 0 \
        --figure superres_karman_cpu/figures/superres_spectra.png
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

LINK = re.compile(r"\]\(([^()\s]+)\)")
SEEDED = re.compile(r"_s(\d+)/")


def publish(out: Path, to: Path, header: Path | None, seeds: set[int], figures: list[str]) -> int:
    """Write ``to`` and its figures folder; returns the number of figures copied."""
    text = (out / "results.md").read_text()
    folder = to.with_suffix("")
    if folder.exists():
        shutil.rmtree(folder)
    copied: dict[str, str] = {}

    def local(path: str) -> str | None:
        if path in copied:
            return copied[path]
        source = out / path
        if not source.is_file():
            return None
        target = folder / path.replace("/", "__")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copied[path] = f"{folder.name}/{target.name}"
        return copied[path]

    lines = []
    for line in text.splitlines():
        pngs = [p for p in LINK.findall(line) if p.endswith(".png")]
        if pngs:
            keep = [p for p in pngs if not (m := SEEDED.search(p)) or int(m.group(1)) in seeds]
            thumbs = re.findall(r"\[!\[[^\]]*\]\([^()]+\)\]\([^()]+\)", line)
            kept = []
            for thumb in thumbs:
                image = LINK.findall(thumb)[0]
                if image in keep and (new := local(image)):
                    caption = re.match(r"\[!\[([^\]]*)\]", thumb).group(1)
                    kept.append(f"[![{caption}]({new})]({new})")
            if kept:
                lines.append(" ".join(kept))
            continue
        # links to the study's HTML pages are not published: keep their words
        line = re.sub(r"\[([^\]]+)\]\(([^()]+\.html)\)", r"\1 (in the study's folder)", line)
        lines.append(line)
    body = "\n".join(lines)
    extra = [(f, local(f)) for f in figures]
    if any(new for _, new in extra):
        body += "\n\n## More figures\n\n" + "\n\n".join(
            f"[![{f}]({new})]({new})" for f, new in extra if new
        )
    head = header.read_text().rstrip() + "\n\n" if header else ""
    to.write_text(head + body + "\n")
    return len(copied)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the study's output folder (holds results.md)")
    parser.add_argument("--to", type=Path, required=True, help="markdown file to write")
    parser.add_argument("--header", type=Path, help="markdown put above the generated page")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="seeds whose figures")
    parser.add_argument("--figure", action="append", default=[], help="extra figure (repeat)")
    args = parser.parse_args()
    n = publish(args.out, args.to, args.header, set(args.seeds), args.figure)
    print(f"written: {args.to} and {n} figures in {args.to.with_suffix('')}/")


if __name__ == "__main__":
    main()
