"""Find, download, verify and cache the data sets and pretrained weights coldflow uses.

Every external file is a :class:`Resource` with its official download locations and
checksums. :func:`resolve` looks for it, in this order:

1. the directory named by an environment variable (``COLDFLOW_DATA`` for data sets;
   ``COLDFLOW_WEIGHTS``, then ``$COLDFLOW_DATA/weights`` for weights), so that offline
   machines and CI can point at local copies;
2. the user cache (``$COLDFLOW_CACHE`` or the platform's cache directory);
3. the official URLs, downloaded atomically into the cache (unless ``COLDFLOW_OFFLINE=1``).

A file that is found but fails its checksum is an error, never silently used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from coldflow.errors import UserError
from coldflow.io import atomic_path

__all__ = [
    "RESOURCES",
    "HubError",
    "Resource",
    "cache_dir",
    "fetch",
    "locate",
    "resolve",
    "verify",
]


class HubError(UserError, RuntimeError):
    """A data or weight file is missing, corrupt or cannot be downloaded."""


@dataclass(frozen=True)
class Resource:
    """One external file.

    Attributes
    ----------
    name
        Registry key, e.g. ``"mnist-train-images"`` or ``"lsim"``.
    kind
        ``"data"`` or ``"weights"``: decides which environment variable is searched.
    relpath
        Path below the kind's root directory, e.g. ``"mnist/train-images-idx3-ubyte.gz"``.
    urls
        Official download locations, tried in order.
    sha256, md5
        Full checksums (either may be empty).
    sha256_prefix
        For files that publish only a hash prefix in their name (torch hub style).
    description
        One line for ``coldflow weights list``.
    """

    name: str
    kind: str
    relpath: str
    urls: tuple[str, ...]
    sha256: str = ""
    md5: str = ""
    sha256_prefix: str = ""
    description: str = ""
    size: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return Path(self.relpath).name


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_LSIM_COMMIT = "a89a1d44e0355225e36dab29740a28fd74e47cef"
_LPIPS_COMMIT = "082bb24f84c091ea94de2867d34c4544f68e0963"


def _mnist(name: str, filename: str, md5: str, sha256: str, size: int) -> Resource:
    return Resource(
        name=name,
        kind="data",
        relpath=f"mnist/{filename}",
        urls=tuple(m + filename for m in _MNIST_MIRRORS),
        md5=md5,
        sha256=sha256,
        size=size,
        description=f"MNIST {filename} (LeCun, Cortes, Burges)",
    )


def _lpips(net: str, sha256: str, size: int) -> Resource:
    return Resource(
        name=f"lpips-{net}",
        kind="weights",
        relpath=f"lpips/v0.1/{net}.pth",
        urls=(
            "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
            f"{_LPIPS_COMMIT}/lpips/weights/v0.1/{net}.pth",
        ),
        sha256=sha256,
        size=size,
        description=f"LPIPS v0.1 linear calibration layers for the {net} backbone",
    )


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        _mnist(
            "mnist-train-images",
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            9912422,
        ),
        _mnist(
            "mnist-train-labels",
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            28881,
        ),
        _mnist(
            "mnist-test-images",
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            1648877,
        ),
        _mnist(
            "mnist-test-labels",
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            4542,
        ),
        Resource(
            name="lsim",
            kind="weights",
            relpath="lsim/LSiM.pth",
            urls=(
                f"https://raw.githubusercontent.com/tum-pbs/LSIM/{_LSIM_COMMIT}/Models/LSiM.pth",
            ),
            sha256="6f9d3934e9a14222c25bcd58cb81e79e8c1e2bde5e2968ab04612d9b08057634",
            size=2542829,
            description="LSiM learned simulation metric (Kohl et al. 2020), official weights",
        ),
        _lpips("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6009),
        _lpips("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7289),
        _lpips(
            "squeeze", "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76", 10811
        ),
        Resource(
            name="vgg16",
            kind="weights",
            relpath="torchvision/vgg16-397923af.pth",
            urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            description=(
                "ImageNet VGG-16 (torchvision layout): backbone of the vgg and lpips-vgg losses"
            ),
        ),
        Resource(
            name="alexnet",
            kind="weights",
            relpath="torchvision/alexnet-owt-7be5be79.pth",
            urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            description="ImageNet AlexNet (torchvision layout), backbone of lpips-alex",
        ),
        Resource(
            name="fid-inception",
            kind="weights",
            relpath="fid/pt_inception-2015-12-05-6726825d.pth",
            urls=(
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth",
            ),
            sha256_prefix="6726825d",
            description="Inception-v3 FID weights (TF 2015-12-05 graph ported to PyTorch)",
        ),
    )
}


def cache_dir() -> Path:
    """Return the cache root: ``$COLDFLOW_CACHE`` or the platform's user cache dir."""
    env = os.environ.get("COLDFLOW_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("coldflow"))


def _search_dirs(kind: str) -> list[Path]:
    dirs: list[Path] = []
    if kind == "weights" and os.environ.get("COLDFLOW_WEIGHTS"):
        dirs.append(Path(os.environ["COLDFLOW_WEIGHTS"]))
    if os.environ.get("COLDFLOW_DATA"):
        root = Path(os.environ["COLDFLOW_DATA"])
        dirs.append(root / "weights" if kind == "weights" else root)
    return list(dict.fromkeys(dirs))  # once each: both variables may name one folder


def _get(name: str) -> Resource:
    try:
        return RESOURCES[name]
    except KeyError:
        raise HubError(
            f"unknown resource {name!r}; known: {', '.join(sorted(RESOURCES))}"
        ) from None


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


_VERIFIED: dict[Path, tuple[int, int]] = {}


def verify(resource: Resource | str, path: str | os.PathLike) -> None:
    """Check ``path`` against the resource's size and checksums.

    Raises
    ------
    HubError
        With the expected and actual values and what to do about it.
    """
    res = _get(resource) if isinstance(resource, str) else resource
    path = Path(path)
    stat = path.stat()
    if _VERIFIED.get(path) == (stat.st_size, stat.st_mtime_ns):
        return
    problem = ""
    if res.size and stat.st_size != res.size:
        problem = f"size {stat.st_size} bytes, expected {res.size} (truncated or wrong file)"
    else:
        sha, md5 = _digests(path)
        if res.sha256 and sha != res.sha256:
            problem = f"sha256 {sha}, expected {res.sha256}"
        elif res.md5 and md5 != res.md5:
            problem = f"md5 {md5}, expected {res.md5}"
        elif res.sha256_prefix and not sha.startswith(res.sha256_prefix):
            problem = f"sha256 {sha} does not start with {res.sha256_prefix}"
    if problem:
        mnist = res.name.startswith("mnist-")
        fetch = "coldflow data mnist" if mnist else f"coldflow weights fetch {res.name}"
        raise HubError(
            f"{path}: checksum failed for {res.name}: {problem}. Delete the file and run "
            f"`{fetch}` (or put the official file there)."
        )
    _VERIFIED[path] = (stat.st_size, stat.st_mtime_ns)


def locate(name: str) -> Path | None:
    """Return where a resource would be read from without downloading, or ``None``."""
    res = _get(name)
    for d in [*_search_dirs(res.kind), cache_dir() / res.kind]:
        for candidate in (d / res.relpath, d / res.filename):
            if candidate.is_file():
                return candidate
    return None


def _download(res: Resource, dest: Path) -> None:
    errors = []
    for url in res.urls:
        try:
            with atomic_path(dest) as tmp:
                req = urllib.request.Request(url, headers={"User-Agent": "coldflow"})
                with urllib.request.urlopen(req, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
                verify(res, tmp)
            return
        except (urllib.error.URLError, OSError, HubError) as e:
            errors.append(f"  {url}: {e}")
    raise HubError(
        f"could not download {res.name} ({res.filename}):\n"
        + "\n".join(errors)
        + f"\nPut the official file at {dest} or in $COLDFLOW_"
        f"{'WEIGHTS' if res.kind == 'weights' else 'DATA'}/{res.relpath}."
    )


def resolve(name: str, download: bool | None = None) -> Path:
    """Return a verified local path to the resource ``name``, downloading if needed.

    Parameters
    ----------
    name
        A key of :data:`RESOURCES`.
    download
        Allow downloading. Defaults to true unless ``COLDFLOW_OFFLINE=1``.

    Raises
    ------
    HubError
        If the file is missing and cannot be downloaded, or fails its checksum. The
        message says which file to put where.
    """
    res = _get(name)
    found = locate(name)
    if found is not None:
        verify(res, found)
        return found
    if download is None:
        download = os.environ.get("COLDFLOW_OFFLINE", "") not in ("1", "true", "yes")
    dest = cache_dir() / res.kind / res.relpath
    if not download:
        searched = ", ".join(str(d / res.relpath) for d in _search_dirs(res.kind))
        raise HubError(
            f"{res.name} ({res.filename}) is not available offline. Download it from "
            f"{res.urls[0]} and put it at {dest}"
            + (f" (also searched: {searched})" if searched else "")
        )
    _download(res, dest)
    return dest


def fetch(name: str) -> Path:
    """Download (if needed) and verify one resource; return its path."""
    return resolve(name, download=True)
