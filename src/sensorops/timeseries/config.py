"""Typed, strict configuration for ingestion, built from the plain dicts of the Kedro parameters.

Each model forbids unknown keys, so a typo in YAML is an error that names the key and lists the
valid ones. Build a model with :func:`parse_config`, which turns pydantic's errors into
:class:`~sensorops.timeseries.errors.IngestionConfigError` sentences such as
``"ingestion.alignment.dtw.window must be one of ['none', 'sakoe_chiba', 'itakura']; got 'x'"``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, model_validator

from sensorops.config_validation import StrictModel, parse
from sensorops.timeseries.band import Band
from sensorops.timeseries.errors import IngestionConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
_Strict = StrictModel


class SyntheticConfig(_Strict):
    """Size, seed and defect rates of the synthetic industrial sensor generator."""

    n_series: int = Field(400, ge=4, description="number of machines (series)")
    n_channels: int = Field(6, ge=1, le=12, description="channels per series")
    length: int = Field(128, ge=16, description="nominal series length (time steps)")
    n_classes: int = Field(4, ge=2, le=12, description="fault classes (0 = healthy)")
    length_jitter: float = Field(0.1, ge=0.0, lt=0.5, description="relative spread of lengths")
    max_shift: float = Field(0.15, ge=0.0, lt=0.5, description="max random time shift (fraction)")
    warp_strength: float = Field(0.25, ge=0.0, lt=0.9, description="local time-warp amplitude")
    noise: float = Field(0.15, ge=0.0, description="white-noise std relative to unit signal")
    spike_rate: float = Field(0.01, ge=0.0, lt=0.2, description="fraction of points with spikes")
    spike_scale: float = Field(8.0, ge=0.0, description="spike amplitude in signal units")
    anomalous_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="whole anomalous series")
    dropout_rate: float = Field(0.02, ge=0.0, lt=0.3, description="fraction of NaN points (runs)")
    test_fraction: float = Field(
        0.0, ge=0.0, lt=0.9, description="fraction written with split=test (0 = no split column)"
    )
    seed: int = Field(0, description="random seed; same seed, same data")


class SourceConfig(_Strict):
    """Where the raw long-format table comes from (``params:ingestion.source``)."""

    kind: Literal["basicmotions", "long_table", "ts", "synthetic"] = "basicmotions"
    path: str | None = Field(None, description="long_table: .parquet/.csv; ts: the (train) .ts")
    test_path: str | None = Field(None, description="ts: optional test .ts (split=test)")
    channels: list[str] | None = Field(None, description="ts/basicmotions: channel names")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @model_validator(mode="after")
    def _needs_path(self) -> SourceConfig:
        if self.kind in ("long_table", "ts") and not self.path:
            raise ValueError(f"source.path is required when source.kind is {self.kind!r}")
        return self

    def describe(self) -> str:
        """Human name of the source, used in error messages."""
        if self.kind == "basicmotions":
            return "aeon bundled BasicMotions"
        if self.kind == "synthetic":
            return f"synthetic generator (seed={self.synthetic.seed})"
        return f"file {self.path}"


class ContractConfig(_Strict):
    """Raw-data contract (``params:ingestion.contract``)."""

    channels: list[str] | None = Field(None, description="channel columns; None = infer")
    min_length: int = Field(4, ge=2, description="minimum time steps per series")
    min_classes: int = Field(2, ge=2, description="minimum number of distinct labels")


class SplitConfig(_Strict):
    """Series-level stratified split (``params:ingestion.split``)."""

    test_fraction: float = Field(0.2, ge=0.0, lt=0.9)
    val_fraction: float = Field(0.2, ge=0.0, lt=0.9, description="fraction of train carved as val")
    seed: int = 42


class PointOutlierConfig(_Strict):
    """Point-level spike repair (per channel, windowed features, IForest)."""

    enabled: bool = True
    median_window: int = Field(7, ge=3, description="rolling-median window in steps (odd)")
    contamination: float = Field(0.005, gt=0.0, le=0.5, description="IForest contamination")
    min_robust_z: float = Field(
        10.0, ge=0.0, description="a point must also deviate this many MADs from its window"
    )
    max_fit_points: int = Field(20_000, ge=100, description="train points sampled to fit")


class OutlierConfig(_Strict):
    """Outlier handling with pyod's IForest (``params:ingestion.outliers``)."""

    enabled: bool = True
    contamination: float = Field(0.05, gt=0.0, le=0.5, description="series-level contamination")
    train_action: Literal["drop", "flag"] = "drop"
    n_estimators: int = Field(100, ge=10)
    max_samples: int = Field(256, ge=8)
    seed: int = 0
    points: PointOutlierConfig = Field(default_factory=PointOutlierConfig)


class DTWConfig(_Strict):
    """DTW global constraint (``params:ingestion.alignment.dtw``)."""

    window: Literal["none", "sakoe_chiba", "itakura"] = "sakoe_chiba"
    radius: int | None = Field(None, ge=0, description="Sakoe-Chiba radius in steps")
    radius_fraction: float = Field(0.1, ge=0.0, le=1.0, description="radius / reference length")
    itakura_max_slope: float = Field(2.0, gt=1.0)

    def sakoe_radius(self, length: int) -> int:
        """Radius in steps for a reference of ``length`` steps."""
        if self.radius is not None:
            return int(self.radius)
        return max(1, round(self.radius_fraction * length))

    def band(self, ref_length: int) -> Band:
        """The constraint in steps for a reference of ``ref_length`` steps (the one conversion)."""
        if self.window == "sakoe_chiba":
            return Band("sakoe_chiba", radius=self.sakoe_radius(ref_length))
        if self.window == "itakura":
            return Band("itakura", max_slope=float(self.itakura_max_slope))
        return Band("none")


class ReferenceConfig(_Strict):
    """Reference templates (``params:ingestion.alignment.reference``)."""

    scope: Literal["per_class", "global"] = "per_class"
    method: Literal["dba", "medoid", "dba_tslearn"] = Field(
        "dba", description="dba: DBA on our kernel; dba_tslearn: tslearn's DBA; medoid"
    )
    length: int | None = Field(None, ge=2, description="reference length; None = median train")
    max_series: int = Field(40, ge=1, description="train series per reference (seeded sample)")
    dba_max_iter: int = Field(10, ge=1)
    seed: int = 0


class AlignmentConfig(_Strict):
    """DTW alignment (``params:ingestion.alignment``)."""

    enabled: bool = True
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    dtw: DTWConfig = Field(default_factory=DTWConfig)


class NormalizeConfig(_Strict):
    """Per-channel standardisation with training statistics (``params:ingestion.normalize``)."""

    eps: float = Field(1e-8, gt=0.0)


class ReportingConfig(_Strict):
    """Reporting (``params:ingestion.reporting``)."""

    histogram_bins: int = Field(30, ge=2)
    examples_per_class: int = Field(1, ge=1, le=5)
    example_channel: int = Field(0, ge=0, description="channel index drawn in example plots")


class AblationConfig(_Strict):
    """Ablation on synthetic data (``params:ingestion.ablation``)."""

    enabled: bool = True
    synthetic: SyntheticConfig = Field(
        default_factory=lambda: SyntheticConfig(
            n_series=240,
            n_channels=3,
            length=96,
            max_shift=0.25,
            warp_strength=0.6,
            noise=0.3,
            seed=7,
        )
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    outliers: OutlierConfig = Field(
        default_factory=lambda: OutlierConfig(points=PointOutlierConfig(contamination=0.01))
    )
    alignment: AlignmentConfig = Field(
        default_factory=lambda: AlignmentConfig(dtw=DTWConfig(radius_fraction=0.2))
    )


def parse_config(model: type[ModelT], data: dict[str, Any] | None, prefix: str) -> ModelT:
    """Build ``model`` from a plain dict; raise a readable error naming ``prefix.key``.

    Args:
        model: The pydantic model class.
        data: The parameters dict (``None`` means all defaults).
        prefix: Dotted name of the parameter block, e.g. ``"ingestion.outliers"``.

    Raises:
        IngestionConfigError: unknown key, wrong type or value; the message lists valid options.
    """
    return parse(prefix, model, data, error=IngestionConfigError)
