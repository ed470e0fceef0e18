"""Config models of the fluid data sets (``configs/fluids/*.yaml``).

A data set config names a scene and its fixed settings, the high resolution and the
downsampling factor, how many frames to store, and the simulations of the train,
validation and test splits (:data:`SPLITS`), each a list of per-simulation parameters
(``re`` and ``inflow_speed`` for the Kármán flow, ``buoyancy`` for the plume) with one
seed per simulation.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, model_validator

from coldflow.config.base import OmitWhenDefault, Strict

SPLITS = ("train", "test", "val")
"""The splits of a data set, in the order their simulations are numbered."""

Range = tuple[float, float]
Box2 = tuple[Range, Range]


class PressureSolverConfig(OmitWhenDefault):
    """Pressure solve of the projection step."""

    omit_at_default: ClassVar[tuple[str, ...]] = ("adjoint_abs_tol",)

    method: Literal[
        "direct",
        "sparse-LU",
        "dense-inverse",
        "CG",
        "CG-adaptive",
        "biCG-stab",
        "scipy-CG",
        "scipy-GMres",
    ] = Field(
        "direct",
        description="direct: the scene's fixed pressure matrix factorised once (sparse LU "
        "on a CPU, dense inverse on a GPU; sparse-LU / dense-inverse force one), exact "
        "forward and adjoint; otherwise a PhiML iterative method ('auto' is not offered: "
        "on the singular closed-box system it picks a solve that fails with 'Diverged')",
    )
    rel_tol: float = Field(
        1e-5, gt=0, description="relative tolerance on |div v|_2 (iterative methods, check)"
    )
    abs_tol: float = Field(
        1e-5, gt=0, description="absolute tolerance on |div v|_2 (iterative methods, check)"
    )
    adjoint_abs_tol: float = Field(
        0.0,
        ge=0,
        description="absolute tolerance of an iterative method's adjoint (gradient) solve; "
        "0: converged to rel_tol of its own right-hand side at any loss scale "
        "(1e-5 reproduces the truncated adjoint coldflow first had)",
    )
    max_iterations: int = Field(2000, ge=1)
    check: bool = Field(
        True, description="measure |div v| after every projection (PhiFlow skips it under JIT)"
    )
    slack: float = Field(10.0, ge=1, description="allowed factor over the tolerance")


class _SceneBase(Strict):
    param_names: ClassVar[tuple[str, ...]] = ()
    optional_params: ClassVar[tuple[str, ...]] = ()
    """Per-simulation parameters that a split may leave out (the scene's field of the
    same name is then every simulation's value)."""

    dt: float = Field(gt=0, description="time step")
    precision: Literal[32, 64] = Field(32, description="float bits of the simulation")
    jit: bool = Field(True, description="compile the step with phiml.math.jit_compile")
    solver: PressureSolverConfig = PressureSolverConfig()

    @property
    def mirror_axes(self) -> tuple[str, ...]:
        """Axes (``"y"``, ``"x"``) across whose centre line the scene is its own mirror
        image (geometry, sources, forces; seeded perturbations alike in distribution), so
        that a mirrored flow is a flow of the scene: memorisation baselines search mirror
        images of the training flows too. None by default."""
        return ()


class KarmanSceneConfig(_SceneBase):
    """Kármán vortex street (Solver-in-the-Loop wake flow), domain 200 x 100 (y x x)."""

    kind: Literal["karman"] = "karman"
    param_names: ClassVar[tuple[str, ...]] = ("re", "inflow_speed")
    optional_params: ClassVar[tuple[str, ...]] = ("inflow_speed",)
    dt: float = Field(1.0, gt=0)
    inflow_speed: float = Field(
        1.0,
        gt=0,
        description="free-stream speed U along +y of the simulations whose params give no "
        "inflow_speed",
    )
    obstacle_center: tuple[float, float] = (50.0, 50.0)
    obstacle_radius: float = Field(10.0, gt=0)
    marker_box: Box2 = Field(((5.0, 10.0), (25.0, 75.0)), description="passive marker source")
    marker_rate: float = Field(1.0, ge=0)
    viscosity_scale: float = Field(1e4, gt=0, description="nu = viscosity_scale / re")
    perturbation: float = Field(0.5, ge=0, description="initial sideways poke, units of U")
    poke_box: Box2 = ((62.0, 90.0), (40.0, 60.0))

    @property
    def mirror_axes(self) -> tuple[str, ...]:
        """``("x",)`` when cylinder, marker band and poke are centred on the channel's
        centre line x = 50 (the poke's sign is drawn per seed), else none."""
        spans = (self.marker_box[1], self.poke_box[1], (self.obstacle_center[1],) * 2)
        return ("x",) if all(a + b == 100.0 for a, b in spans) else ()


class PlumeSceneConfig(_SceneBase, OmitWhenDefault):
    """Buoyant smoke plume in a closed 200 x 200 box."""

    kind: Literal["plume"] = "plume"
    param_names: ClassVar[tuple[str, ...]] = ("buoyancy",)
    omit_at_default: ClassVar[tuple[str, ...]] = ("advection",)
    dt: float = Field(0.1, gt=0)
    precision: Literal[32, 64] = Field(
        64, description="64: single-precision CG stagnates on the closed box's singular system"
    )
    source_box: Box2 = ((5.0, 10.0), (50.0, 150.0))
    source_rate: float = Field(1.0, ge=0, description="smoke density added per unit time")
    viscosity: float = Field(0.0, ge=0)
    perturbation: float = Field(0.05, ge=0, description="initial velocity noise amplitude")
    advection: Literal["semi_lagrangian", "mac_cormack", "finite_volume"] = Field(
        "semi_lagrangian",
        description="scheme advecting the smoke density: semi_lagrangian (PhiFlow's, the "
        "default; loses 8-24 % of the smoke by frame 120), mac_cormack (PhiFlow's, not "
        "conservative either: gains mass), finite_volume (conservative upwind fluxes, "
        "more diffusive); the velocity is always advected semi-Lagrangian",
    )

    @property
    def mirror_axes(self) -> tuple[str, ...]:
        """``("x",)`` when the source is centred on x = 100 (walls, buoyancy along y and
        the seeded noise are symmetric), else none."""
        return ("x",) if sum(self.source_box[1]) == 200.0 else ()


SceneConfig = Annotated[
    Union[KarmanSceneConfig, PlumeSceneConfig],  # noqa: UP007
    Field(discriminator="kind"),
]


class SplitConfig(Strict):
    """The simulations of one split: parameter lists and one seed per simulation."""

    params: dict[str, list[float]] = Field(
        default_factory=dict, description="per-simulation parameters, e.g. {re: [1e5, 2e5]}"
    )
    seeds: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_lengths(self) -> SplitConfig:
        n = len(self.seeds)
        bad = {k: len(v) for k, v in self.params.items() if len(v) != n}
        if bad:
            raise ValueError(f"every params list needs one value per seed ({n} seeds), got {bad}")
        return self

    def __len__(self) -> int:
        return len(self.seeds)


class SimulationsConfig(OmitWhenDefault):
    """The data set's simulations by split: ``train`` (fitting), ``val`` (every choice
    made from data: epochs, checkpoints, settings; unseen parameter values inside the
    training range) and ``test`` (the final evaluation only). Simulations are numbered
    train first, then test, then val (val came last, so that adding it to an existing
    data set's config appends simulations and leaves the others' indices alone)."""

    omit_at_default: ClassVar[tuple[str, ...]] = ("val",)

    train: SplitConfig = SplitConfig()
    test: SplitConfig = SplitConfig()
    val: SplitConfig = SplitConfig()


class FluidDataConfig(Strict):
    """One fluid data set: a scene simulated at a high and a low resolution."""

    name: str = "fluids"
    scene: SceneConfig
    resolution: tuple[int, int] = Field(description="high (reference) resolution (H, W)")
    factor: int = Field(2, ge=1, description="low resolution = resolution / factor")
    frames: int = Field(ge=2, description="stored frames per simulation, frame 0 included")
    spin_up: int = Field(
        0,
        ge=0,
        description="reference steps simulated before frame 0 and not stored (the wake "
        "develops there without filling the file); frame 0 is the state after them",
    )
    warmup: int = Field(0, ge=0, description="leading stored frames that training skips")
    source_start: int | None = Field(
        None,
        ge=0,
        description="frame from which the low-resolution source run starts from the "
        "downsampled reference (default: warmup)",
    )
    batch_size: int = Field(8, ge=1, description="simulations run together in one batch")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads (null: leave torch's default)"
    )
    probe: tuple[float, float] | None = Field(
        None, description="(y, x) of the report's probe (default: the scene's)"
    )
    compression: Literal["none", "lzf", "gzip"] = "none"
    simulations: SimulationsConfig = SimulationsConfig()

    @model_validator(mode="after")
    def _check(self) -> FluidDataConfig:
        H, W = self.resolution
        if H % self.factor or W % self.factor:
            raise ValueError(
                f"resolution {list(self.resolution)} is not divisible by factor {self.factor}"
            )
        if min(H, W) // self.factor < 2:
            raise ValueError(f"low resolution {H // self.factor}x{W // self.factor} is too small")
        if self.warmup >= self.frames:
            raise ValueError(f"warmup ({self.warmup}) must be smaller than frames ({self.frames})")
        if self.start >= self.frames:
            raise ValueError(
                f"source_start ({self.start}) must be smaller than frames ({self.frames})"
            )
        names = set(type(self.scene).param_names)
        required = names - set(type(self.scene).optional_params)
        for split in SPLITS:
            got = set(getattr(self.simulations, split).params)
            if getattr(self.simulations, split).seeds and not required <= got <= names:
                optional = sorted(names - required)
                raise ValueError(
                    f"simulations.{split}.params must give {sorted(required)}"
                    + (f" and may give {optional}" if optional else "")
                    + f" for scene {self.scene.kind!r}, got {sorted(got)}"
                )
        if not len(self.simulations.train) + len(self.simulations.test):
            raise ValueError("simulations: no simulations given (train and test are empty)")
        return self

    @property
    def start(self) -> int:
        """The frame at which the source run starts."""
        return self.warmup if self.source_start is None else self.source_start

    def simulation_params(self, split: str) -> list[dict[str, float]]:
        """Every parameter of each simulation of ``split``, defaults filled in."""
        sc = getattr(self.simulations, split)
        out = []
        for j in range(len(sc)):
            params = {k: float(v[j]) for k, v in sc.params.items()}
            for k in type(self.scene).param_names:
                if k not in params:
                    params[k] = float(getattr(self.scene, k))
            out.append({k: params[k] for k in type(self.scene).param_names})
        return out

    @property
    def low_resolution(self) -> tuple[int, int]:
        return self.resolution[0] // self.factor, self.resolution[1] // self.factor


class FluidFileConfig(Strict):
    """Training data of a fluid task: a data-set file, its training split and the file
    ``coldflow evaluate`` uses by default."""

    path: str = Field(description="HDF5 data set written by `coldflow simulate`")
    split: str = Field("train", description="simulations used for training")
    test_path: str | None = Field(
        None, description="data set of `coldflow evaluate` (default: path, test split)"
    )
