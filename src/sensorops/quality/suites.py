"""The expectation suites of the three tiers, generated from the configuration.

One suite per (stage, tier, frame): ``raw_tier1_data`` validates the long table itself,
``raw_tier1_correlation`` the |r| matrix, and so on (see :data:`FRAMES`). Every expectation carries
``meta = {"tier": n, "rule": "<rule>", "column": "<data column>"}`` so that a failure names the rule
and the column of the *data* it concerns, even when the validated frame is a statistics frame.

Great Expectations is imported lazily (it costs ~2.4 s); building a suite needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sensorops.quality.config import DataQualityConfig
from sensorops.quality.frames import LABEL, SERIES_ID, SPLIT, TIME

DATA = "data"
CORRELATION = "correlation"
CLASS_STATS = "class_stats"
SERIES_STATS = "series_stats"
SEPARABILITY = "separability"
CLASS_RECALL = "class_recall"
FRAMES: tuple[str, ...] = (DATA, CORRELATION, CLASS_STATS, SERIES_STATS, SEPARABILITY, CLASS_RECALL)
"""Frames a stage validates; all but ``data`` are statistics frames with a ``key`` column."""

RULES: dict[int, tuple[str, ...]] = {
    1: (
        "missing_rate",
        "value_range",
        "channel_variation",
        "row_count",
        "channel_correlation",
        "class_present",
        "min_series_per_class",
        "class_share",
        "series_count",
    ),
    2: (
        "key_not_null",
        "series_time_unique",
        "label_in_set",
        "label_set_complete",
        "split_values",
        "t_strictly_increasing",
        "min_series_length",
        "sampling_interval",
        "split_disjoint",
        "single_label_per_series",
    ),
    3: ("min_balanced_accuracy", "above_chance", "min_class_recall"),
}
"""Every rule name per tier (the ``meta.rule`` of the expectations)."""


def import_gx() -> Any:
    """``import great_expectations`` (~2.4 s the first time), without its import-time warnings."""
    with warnings.catch_warnings():
        # GE 1.24 imports the deprecated sre_constants/sre_parse modules
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*sre_.*")
        import great_expectations
        import great_expectations.expectations  # the submodule the suites are built from
    return great_expectations


@dataclass
class SuiteSpec:
    """The expectations one frame of one tier of one stage must meet."""

    stage: str
    tier: int
    frame: str
    expectations: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Suite, validation definition and checkpoint name, e.g. ``raw_tier1_data``."""
        return f"{self.stage}_tier{self.tier}_{self.frame}"

    @property
    def asset(self) -> str:
        """Name of the GE dataframe asset the frame is handed to."""
        return f"{self.stage}_{self.frame}"


def _meta(tier: int, rule: str, column: str | None) -> dict[str, Any]:
    return {"tier": tier, "rule": rule, "column": column}


def build_suite_specs(
    stage: str,
    config: DataQualityConfig,
    channels: Sequence[str],
    labels: Sequence[str],
    has_split: bool,
) -> list[SuiteSpec]:
    """All suites of ``stage`` (tiers 1-3), thresholds taken from ``config``.

    Args:
        stage: ``raw`` or ``model_input``.
        config: the data-quality configuration.
        channels: channel columns of the long table.
        labels: the expected label set.
        has_split: whether the table has a ``split`` column.

    Returns:
        Specs whose ``expectations`` are GE expectation objects, in a stable order.
    """
    gxe = import_gx().expectations

    t1, t2, t3 = config.basic_statistics, config.business_rules, config.separability
    stage_cfg = config.stage(stage)
    label_set = sorted(str(v) for v in labels)

    data1 = SuiteSpec(stage, 1, DATA)
    for ch in channels:
        data1.expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=ch,
                mostly=round(1.0 - t1.max_missing_rate, 12),
                meta=_meta(1, "missing_rate", ch),
            )
        )
    for ch in channels:
        low, high = stage_cfg.value_range(ch)
        data1.expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=ch,
                min_value=low,
                max_value=high,
                mostly=t1.value_range_mostly,
                meta=_meta(1, "value_range", ch),
            )
        )
    for ch in channels:
        data1.expectations.append(
            gxe.ExpectColumnStdevToBeBetween(
                column=ch, min_value=t1.min_channel_std, meta=_meta(1, "channel_variation", ch)
            )
        )
    data1.expectations.append(
        gxe.ExpectTableRowCountToBeBetween(min_value=t1.min_rows, meta=_meta(1, "row_count", None))
    )

    corr1 = SuiteSpec(stage, 1, CORRELATION)
    if len(channels) >= 2:
        for ch in channels:
            corr1.expectations.append(
                gxe.ExpectColumnMaxToBeBetween(
                    column=ch,
                    max_value=t1.max_abs_correlation,
                    meta=_meta(1, "channel_correlation", ch),
                )
            )

    class1 = SuiteSpec(stage, 1, CLASS_STATS)
    class1.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="count", min_value=1, meta=_meta(1, "class_present", LABEL)
        )
    )
    if t1.min_series_per_class > 1:
        class1.expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="count",
                min_value=t1.min_series_per_class,
                meta=_meta(1, "min_series_per_class", LABEL),
            )
        )
    class1.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="share",
            min_value=t1.min_class_share,
            max_value=t1.max_class_share,
            meta=_meta(1, "class_share", LABEL),
        )
    )

    series1 = SuiteSpec(stage, 1, SERIES_STATS)
    series1.expectations.append(
        gxe.ExpectTableRowCountToBeBetween(
            min_value=t1.min_series, meta=_meta(1, "series_count", SERIES_ID)
        )
    )

    data2 = SuiteSpec(stage, 2, DATA)
    for key in (SERIES_ID, TIME, LABEL, *((SPLIT,) if has_split else ())):
        data2.expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(column=key, meta=_meta(2, "key_not_null", key))
        )
    data2.expectations.append(
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=[SERIES_ID, TIME],
            meta=_meta(2, "series_time_unique", f"{SERIES_ID},{TIME}"),
        )
    )
    data2.expectations.append(
        gxe.ExpectColumnValuesToBeInSet(
            column=LABEL, value_set=label_set, meta=_meta(2, "label_in_set", LABEL)
        )
    )
    data2.expectations.append(
        gxe.ExpectColumnDistinctValuesToContainSet(
            column=LABEL, value_set=label_set, meta=_meta(2, "label_set_complete", LABEL)
        )
    )
    if has_split:
        data2.expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=SPLIT, value_set=list(config.splits), meta=_meta(2, "split_values", SPLIT)
            )
        )

    series2 = SuiteSpec(stage, 2, SERIES_STATS)
    series2.expectations.append(
        gxe.ExpectColumnValuesToBeInSet(
            column="t_strictly_increasing",
            value_set=[True],
            meta=_meta(2, "t_strictly_increasing", TIME),
        )
    )
    series2.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="n_steps",
            min_value=t2.min_series_length,
            meta=_meta(2, "min_series_length", TIME),
        )
    )
    series2.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="interval_deviation",
            max_value=t2.sampling_interval_tolerance,
            meta=_meta(2, "sampling_interval", TIME),
        )
    )
    if has_split:
        series2.expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="n_splits", max_value=1, meta=_meta(2, "split_disjoint", SPLIT)
            )
        )
    series2.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="n_labels", max_value=1, meta=_meta(2, "single_label_per_series", LABEL)
        )
    )

    sep3 = SuiteSpec(stage, 3, SEPARABILITY)
    sep3.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="balanced_accuracy",
            min_value=t3.min_balanced_accuracy,
            meta=_meta(3, "min_balanced_accuracy", LABEL),
        )
    )
    sep3.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="margin_over_chance",
            min_value=t3.min_margin_over_chance,
            meta=_meta(3, "above_chance", LABEL),
        )
    )
    recall3 = SuiteSpec(stage, 3, CLASS_RECALL)
    recall3.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="recall", min_value=t3.min_class_recall, meta=_meta(3, "min_class_recall", LABEL)
        )
    )
    specs = [data1, corr1, class1, series1, data2, series2, sep3, recall3]
    return [s for s in specs if s.expectations]
