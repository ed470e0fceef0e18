"""Networks. ``NETS`` maps a config ``model.kind`` to a constructor.

:func:`build_net` builds any of them from its config section and the facts the caller
knows about the data (``in_channels``, ``image_shape``, ...). Every option of the
section goes to the constructor: one it does not take is an error naming the key
(:class:`NetOptionError`). Of the facts, each constructor receives those it names.

Feature networks (the FID classifier and Inception-v3, the VGG-16 and AlexNet stacks of
the perceptual losses) are not configurable models and live outside the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from coldflow.errors import UserError
from coldflow.nets.alexnet import ALEXNET_LAYERS, AlexNetFeatures
from coldflow.nets.autoencoder import FieldAutoencoderNet
from coldflow.nets.inception import FIDInceptionV3, load_fid_inception
from coldflow.nets.mnist_classifier import MNISTClassifier
from coldflow.nets.seed_cnn import SeedCNN
from coldflow.nets.sol import SolCorrectionNet, sol_resnet, sol_resnet_small
from coldflow.nets.superres import FieldSuperResolutionNet, upsample
from coldflow.nets.unet import UNet
from coldflow.nets.vgg import VGG16_LAYERS, VGG16Features, load_torchvision_features

NETS: dict[str, Callable[..., nn.Module]] = {
    "seed_cnn": SeedCNN,
    "unet": UNet,
    "sol_resnet": sol_resnet,
    "sol_resnet_small": sol_resnet_small,
    "field_autoencoder": FieldAutoencoderNet,
    "field_superres": FieldSuperResolutionNet,
}


class NetOptionError(UserError, TypeError):
    """A ``model`` config section has an option its network's constructor does not take."""


def kind_and_options(cfg: Any) -> tuple[str, dict[str, Any]]:
    """``(kind, options)`` of a config section: a pydantic model or a mapping with ``kind``."""
    data = dict(cfg) if isinstance(cfg, Mapping) else cfg.model_dump()
    try:
        kind = data.pop("kind")
    except KeyError:
        raise ValueError(f"the config section {data} names no 'kind'") from None
    return str(kind), data


def call_with_context(
    constructor: Callable[..., Any],
    *args: Any,
    options: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    what: str = "",
) -> Any:
    """Call a registry constructor with the options and context it accepts.

    A name is passed when the constructor's signature names it; config ``options`` (not
    ``context``) also pass when it takes ``**kwargs``. The rest is left out: a config
    section may hold options for other floors (e.g. a method's training window) and a
    caller may offer facts that only some kinds use. ``context`` wins over ``options``
    for the same name (it carries built objects where a config only describes them).

    Raises
    ------
    TypeError
        When a parameter without default is neither given nor offered; the message names
        it and ``what`` is being built.
    """
    params = inspect.signature(constructor).parameters
    named = {
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (options or {}).items() if k in named or var_kw}
    kwargs |= {k: v for k, v in (context or {}).items() if k in named}
    positional = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][
        : len(args)
    ]
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and n not in kwargs
        and n not in positional
    ]
    if missing:
        raise TypeError(f"building {what or constructor.__name__} needs {missing}; pass them")
    return constructor(*args, **kwargs)


def build_net(
    cfg: Any,
    in_channels: int | None = None,
    image_shape: tuple[int, int] | None = None,
    **facts: Any,
) -> nn.Module:
    """Build the network named by ``cfg.kind`` with all of ``cfg``'s options.

    Parameters
    ----------
    cfg
        Config section with ``kind`` (a key of :data:`NETS`) and the net's options.
    in_channels, image_shape, **facts
        Facts about the data (also e.g. ``out_channels``, ``factor``); each constructor
        gets those it names, and a fact wins over an option of the same name.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    NetOptionError
        For an option the constructor does not take; the message names the key.

    Examples
    --------
    ``build_net(cfg.model, in_channels=1, image_shape=(28, 28))`` (MNIST),
    ``build_net(cfg.model, in_channels=3, out_channels=2)`` (SOL),
    ``build_net({"kind": "field_superres", "factor": 4}, in_channels=3)``.
    """
    kind, options = kind_and_options(cfg)
    if kind not in NETS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(NETS)}")
    if in_channels is not None:
        facts["in_channels"] = in_channels
    if image_shape is not None:
        facts["image_shape"] = tuple(image_shape)
    constructor = NETS[kind]
    named, takes_any = _parameters(constructor)
    unknown = [k for k in options if k not in named]
    if unknown and not takes_any:
        raise _option_error(kind, unknown[0], named - facts.keys())
    given = {k: v for k, v in facts.items() if k in named}
    try:
        return constructor(**(options | given))
    except TypeError as e:  # a wrapper's inner constructor refused a key it passed on
        key = next((k for k in unknown if f"argument '{k}'" in str(e)), None)
        if key is None:
            raise
        raise _option_error(kind, key, named - facts.keys()) from None


def _parameters(constructor: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword-capable parameter names of ``constructor``, and whether it takes **kwargs."""
    params = inspect.signature(constructor).parameters.values()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = {p.name for p in params if p.kind in keyword}
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _option_error(kind: str, key: str, options: set[str]) -> NetOptionError:
    known = f"; its options are {', '.join(sorted(options))}" if options else ""
    return NetOptionError(
        f"model.{key}: the {kind!r} net takes no option {key!r}{known}. Remove model.{key} "
        "from the config or choose a model.kind that has it."
    )


__all__ = [
    "ALEXNET_LAYERS",
    "NETS",
    "VGG16_LAYERS",
    "AlexNetFeatures",
    "FIDInceptionV3",
    "FieldAutoencoderNet",
    "FieldSuperResolutionNet",
    "MNISTClassifier",
    "NetOptionError",
    "SeedCNN",
    "SolCorrectionNet",
    "UNet",
    "VGG16Features",
    "build_net",
    "call_with_context",
    "kind_and_options",
    "load_fid_inception",
    "load_torchvision_features",
    "upsample",
]
