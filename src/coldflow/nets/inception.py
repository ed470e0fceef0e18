"""Inception-v3 as used for FID: the TensorFlow 2015-12-05 graph in PyTorch form.

The FID of Heusel et al. (2017) is defined with the pool3 features (2048-d) of the
TensorFlow Inception graph ``inception-2015-12-05``. Its PyTorch port, the weights file
``pt_inception-2015-12-05-6726825d.pth`` of pytorch-fid, uses the module layout of
torchvision's ``Inception3`` with three differences from the torchvision network:

- the classifier has 1008 outputs (the TF graph's label set) and there is no aux head;
- the average pools inside the ``Mixed_5*``, ``Mixed_6b..e`` and ``Mixed_7b`` blocks do
  not count the zero padding (TensorFlow's ``SAME`` average pool);
- the pool branch of the last block, ``Mixed_7c``, is a max pool.

The module names below follow that layout so that the weights file loads with
``strict=True`` (keys such as ``Mixed_5b.branch1x1.conv.weight``,
``Conv2d_1a_3x3.bn.running_mean``, ``fc.weight``). The net takes images that are
already prepared: [N, 3, 299, 299], values in [-1, 1]
(see :class:`coldflow.metrics.features.InceptionFeatures`).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from coldflow.errors import WeightsFileError

__all__ = [
    "BasicConv2d",
    "FIDInceptionV3",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "load_fid_inception",
]

PoolMode = str  # "avg" (TF SAME average pool, padding not counted) or "max"


def _pool_3x3(x: torch.Tensor, mode: PoolMode) -> torch.Tensor:
    """3x3, stride-1, same-size pool of the pool branch of an Inception block."""
    if mode == "avg":
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    if mode == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    raise ValueError(f"pool mode must be 'avg' or 'max', got {mode!r}")


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as in TF) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pool branches (``Mixed_5b..d``)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_pool_3x3(x, "avg"))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (``Mixed_6a``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``Mixed_6b..e``)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = (
            {"kernel_size": (1, 7), "padding": (0, 3)},
            {"kernel_size": (7, 1), "padding": (3, 0)},
        )
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            bd = layer(bd)
        bd = self.branch7x7dbl_5(bd)
        bp = self.branch_pool(_pool_3x3(x, "avg"))
        return torch.cat([b1, b7, bd, bp], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (``Mixed_7a``)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(nn.Module):
    """8x8 block with expanded 1x3/3x1 branches (``Mixed_7b``, ``Mixed_7c``).

    Parameters
    ----------
    in_channels
        Input channels (1280 for ``Mixed_7b``, 2048 for ``Mixed_7c``).
    pool
        ``"avg"`` for ``Mixed_7b``; ``"max"`` for ``Mixed_7c`` in the FID graph.
    """

    def __init__(self, in_channels: int, pool: PoolMode = "avg") -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        bp = self.branch_pool(_pool_3x3(x, self.pool))
        return torch.cat([b1, b3, bd, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 with the FID graph's blocks; :meth:`features` gives pool3 (2048-d).

    Parameters
    ----------
    num_classes
        Outputs of ``fc``; 1008 in the FID weights file.

    Notes
    -----
    Input: [N, 3, 299, 299] in [-1, 1]. Shapes through the net: 149 -> 147 -> 73 (pool)
    -> 71 -> 35 (pool) -> ``Mixed_5*`` 35x35 -> ``Mixed_6*`` 17x17 -> ``Mixed_7*`` 8x8
    -> global average -> 2048.
    """

    feature_dim = 2048
    input_size = 299

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features [N, 2048] of prepared images [N, 3, 299, 299] in [-1, 1]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        for block in (self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes] (the FID itself uses :meth:`features` only)."""
        return self.fc(self.features(x))


FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


def _reason(error: BaseException) -> str:
    """One line of ``torch.load``'s message: its first sentence and the refused global."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = lines[0].split(". ")[0].rstrip(".")
    refused = [line for line in lines[1:] if "Unsupported global" in line]
    return "; ".join([first, *refused[:1]])


def load_fid_inception(path: str | Path) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load the pytorch-fid weights file at ``path``.

    The file is read with ``weights_only=True`` and loaded with ``strict=True``: a file
    with any other layout is an error, never a silently half-loaded net.

    Raises
    ------
    WeightsFileError
        If the file is damaged (truncated, not a torch file), carries pickled code
        (refused, never run) or its keys or shapes do not match the FID Inception layout;
        the message names the file. A ``ValueError`` too, for older callers.
    """
    path = Path(path)
    fix = "delete it and fetch it again (`coldflow weights fetch fid-inception`)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsFileError(
            f"{path}: cannot load the FID Inception weights ({_reason(e)}); the file is "
            f"damaged, carries pickled code (refused) or is not {FID_WEIGHTS_FILE}; {fix}"
        ) from None
    if not isinstance(state, dict):
        raise WeightsFileError(
            f"{path}: holds a {type(state).__name__}, not a state dict of {FID_WEIGHTS_FILE}"
        )
    net = FIDInceptionV3()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        details = " ".join(str(e).split())  # names the missing and unexpected keys
        raise WeightsFileError(
            f"{path}: not the FID Inception weights ({FID_WEIGHTS_FILE}): {details}; {fix}"
        ) from None
    return net.eval()
