"""Outlier handling with pyod's Isolation Forest, fitted on the training split only.

Two levels:

- **Points** (spikes): per channel, each time step gets windowed features, all divided by the
  series' robust scale of that channel (floored at a quarter of the training-wide scale):
  deviation from the rolling median, and the jumps from the previous and to the next step. A point is a candidate when its deviation exceeds
  ``min_robust_z`` robust sigmas; a per-channel IForest (fitted on sampled training points)
  decides among candidates. Flagged points and dropouts (NaN) are repaired by linear
  interpolation in time.
- **Series**: summary features per channel (mean, std, min, max, mean |diff|, end minus start)
  of the repaired series feed one IForest; a series scoring above the training threshold set
  by ``contamination`` is an outlier. Train outliers are dropped or flagged (``train_action``);
  val/test outliers are only flagged, never dropped.

Convention (pyod's): scores are ``decision_function`` values, **higher = more anomalous**, and an
outlier label is 1 (inlier 0); a series/point is an outlier when ``score > threshold_``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sensorops.timeseries.config import OutlierConfig
from sensorops.timeseries.errors import check_channels, check_is_fitted
from sensorops.timeseries.series import SeriesSet

logger = logging.getLogger(__name__)

SERIES_FEATURES: tuple[str, ...] = ("mean", "std", "min", "max", "mean_abs_diff", "end_minus_start")
_CHUNK = 512


def interpolate_nans(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear interpolation of NaNs along time; edges take the nearest value.

    Args:
        x: ``(length, n_channels)``; not modified.

    Returns:
        ``(filled, n_filled)``: the filled array (``x`` itself when nothing was NaN) and the
        number of filled values.
    """
    nan = np.isnan(x)
    if not nan.any():
        return x, 0
    out = x.copy()
    steps = np.arange(len(x))
    for k in np.flatnonzero(nan.any(axis=0)):
        good = ~nan[:, k]
        out[nan[:, k], k] = np.interp(steps[nan[:, k]], steps[good], x[good, k])
    return out, int(nan.sum())


def _point_features(
    block: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw windowed features of ``block`` ``(n, L, C)``.

    Returns deviation from the rolling median, jump from the previous step, jump to the next
    step (each ``(n, L, C)``) and the per-series robust scale of the deviation ``(n, 1, C)``.
    """
    med = median_filter(block, size=(1, window, 1), mode="nearest")
    dev = block - med
    jump_in = np.diff(block, axis=1, prepend=block[:, :1])
    jump_out = -np.diff(block, axis=1, append=block[:, -1:])
    local = 1.4826 * np.median(np.abs(dev), axis=1, keepdims=True)
    return dev, jump_in, jump_out, local


def series_features(values: list[np.ndarray]) -> np.ndarray:
    """Per-series summary features ``(n_series, n_channels * 6)`` (see SERIES_FEATURES)."""
    rows = []
    for x in values:
        q = max(1, len(x) // 4)
        rows.append(
            np.concatenate(
                [
                    x.mean(axis=0),
                    x.std(axis=0),
                    x.min(axis=0),
                    x.max(axis=0),
                    np.abs(np.diff(x, axis=0)).mean(axis=0),
                    x[-q:].mean(axis=0) - x[:q].mean(axis=0),
                ]
            )
        )
    return np.asarray(rows, dtype=np.float64)


def _group_by_length(values: list[np.ndarray]) -> dict[int, np.ndarray]:
    lengths = np.array([len(v) for v in values])
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}


@dataclass
class OutlierResult:
    """Output of :meth:`OutlierFilter.transform`.

    Attributes:
        series: the repaired series; train outliers removed when ``train_action == "drop"``.
        report: one row per input series: series_id, split, label, score, is_outlier,
            action (kept | dropped | flagged), points_repaired, nans_filled.
    """

    series: SeriesSet
    report: pd.DataFrame


class OutlierFilter:
    """Spike repair and whole-series outlier detection (pyod IForest), fitted on train only.

    Args:
        config: an :class:`~sensorops.timeseries.config.OutlierConfig`.

    Fitted attributes: ``point_scale_`` (C,), ``point_models_`` (one
    IForest per channel or None), ``series_model_`` (IForest), ``threshold_`` (series score
    threshold), ``n_channels_``.
    """

    def __init__(self, config: OutlierConfig | None = None) -> None:
        self.config = config

    @property
    def _cfg(self) -> OutlierConfig:
        return self.config if self.config is not None else OutlierConfig()

    def _iforest(self, contamination: float, n_samples: int):
        from pyod.models.iforest import IForest

        cfg = self._cfg
        return IForest(
            n_estimators=cfg.n_estimators,
            max_samples=min(cfg.max_samples, n_samples),
            contamination=contamination,
            random_state=cfg.seed,
            n_jobs=1,
        )

    def fit(self, train: SeriesSet | list[np.ndarray]) -> OutlierFilter:
        """Fit on the training series.

        Args:
            train: training series (the same :class:`SeriesSet` type :meth:`transform` takes, or
                its ``values``), each ``(length_i, n_channels)`` (NaN allowed).
        """
        train_values = train.values if isinstance(train, SeriesSet) else list(train)
        cfg = self._cfg
        if len(train_values) < 2:
            raise ValueError(
                f"outlier filter needs at least 2 training series; got {len(train_values)}"
            )
        self.n_channels_ = int(train_values[0].shape[1])
        rng = np.random.default_rng(cfg.seed)
        self.point_models_: list | None = None
        self.point_thresholds_: np.ndarray | None = None
        if cfg.points.enabled:
            mean_len = float(np.mean([len(v) for v in train_values]))
            n_fit = int(
                min(len(train_values), max(2, np.ceil(cfg.points.max_fit_points / mean_len)))
            )
            pick = np.sort(rng.choice(len(train_values), size=n_fit, replace=False))
            raw_dev, raw_jin, raw_jout, raw_local = [], [], [], []
            sample = [interpolate_nans(train_values[i])[0] for i in pick]
            for idx in _group_by_length(sample).values():
                block = np.stack([sample[i] for i in idx])
                dev, jin, jout, local = _point_features(block, cfg.points.median_window)
                raw_dev.append(dev)
                raw_jin.append(jin)
                raw_jout.append(jout)
                raw_local.append(local)
            all_dev = np.concatenate([d.reshape(-1, self.n_channels_) for d in raw_dev])
            mad = np.median(np.abs(all_dev), axis=0) * 1.4826
            self.point_scale_ = np.maximum(mad, 1e-9 + 1e-6 * np.abs(all_dev).max(axis=0))
            feats_k: list[list[np.ndarray]] = [[] for _ in range(self.n_channels_)]
            for dev, jin, jout, local in zip(raw_dev, raw_jin, raw_jout, raw_local, strict=True):
                scale = self._local_scale(local)
                for k in range(self.n_channels_):
                    feats_k[k].append(
                        np.column_stack(
                            [
                                (dev / scale)[:, :, k].ravel(),
                                (jin / scale)[:, :, k].ravel(),
                                (jout / scale)[:, :, k].ravel(),
                            ]
                        )
                    )
            self.point_models_ = []
            thresholds = []
            for k in range(self.n_channels_):
                feats = np.concatenate(feats_k[k])
                model = self._iforest(cfg.points.contamination, len(feats)).fit(feats)
                self.point_models_.append(model)
                thresholds.append(float(model.threshold_))
            self.point_thresholds_ = np.asarray(thresholds)
        feats, _, _ = self._clean_chunks(train_values)
        self.series_model_ = self._iforest(cfg.contamination, len(feats)).fit(feats)
        self.threshold_ = float(self.series_model_.threshold_)
        self.train_scores_ = np.asarray(self.series_model_.decision_scores_, dtype=np.float64)
        logger.info(
            "outlier filter fitted on %d train series (threshold %.4f, point models: %s)",
            len(train_values),
            self.threshold_,
            cfg.points.enabled,
        )
        return self

    def repair(self, values: list[np.ndarray], block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The NaN fill and spike repair of :meth:`transform`, written into ``block`` (no scoring).

        Args:
            values: series ``(L_i, C)`` with this filter's channels (NaN allowed); not modified.
            block: ``(n, >= max L_i, C)`` array; row ``i`` receives repaired series ``i`` in its
                first ``L_i`` steps (the rest is left as it is).

        Returns:
            ``(points_repaired, nans_filled)``: ``(n,)`` int64 counts per series.
        """
        self._check_input(values)
        if block.shape[0] != len(values) or block.shape[2] != self.n_channels_:
            raise ValueError(
                f"block has shape {block.shape}; expected ({len(values)}, max length, "
                f"{self.n_channels_})"
            )
        _, points, nans = self._clean_chunks(values, block)
        return points, nans

    def _clean_chunks(
        self, values: list[np.ndarray], block: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fill NaNs and repair spikes chunk by chunk (bounded memory).

        Args:
            values: series ``(L_i, C)`` (NaN allowed); not modified.
            block: optional ``(n, max_len, C)`` array; row ``i`` receives repaired series ``i``.

        Returns:
            ``(features, points_repaired, nans_filled)``: ``(n, C * 6)`` series features of the
            repaired series and ``(n,)`` int64 counts.
        """
        n = len(values)
        feats = np.empty((n, self.n_channels_ * len(SERIES_FEATURES)))
        points = np.zeros(n, dtype=np.int64)
        nans = np.zeros(n, dtype=np.int64)
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            filled = []
            for i in range(start, stop):
                f, nans[i] = interpolate_nans(values[i])
                filled.append(f)
            repaired, points[start:stop] = self._repair_points(filled)
            feats[start:stop] = series_features(repaired)
            if block is not None:
                for j, x in enumerate(repaired):
                    block[start + j, : len(x)] = x
        return feats, points, nans

    def _local_scale(self, local: np.ndarray) -> np.ndarray:
        """Per-series robust scale ``(n, 1, C)``, floored at a quarter of the train-wide scale."""
        return np.maximum(local, 0.25 * self.point_scale_)

    def _repair_points(self, filled: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Replace flagged spike points by interpolation; NaN-free input ``(L_i, C)`` each."""
        cfg = self._cfg
        out = list(filled)
        counts = np.zeros(len(filled), dtype=np.int64)
        if not cfg.points.enabled or self.point_models_ is None:
            return out, counts
        for idx_all in _group_by_length(filled).values():
            for start in range(0, len(idx_all), _CHUNK):
                idx = idx_all[start : start + _CHUNK]
                block = np.stack([filled[i] for i in idx])
                dev, jin, jout, local = _point_features(block, cfg.points.median_window)
                scale = self._local_scale(local)
                z = np.abs(dev) / scale
                cand = z > cfg.points.min_robust_z
                if not cand.any():
                    continue
                flagged = np.zeros_like(cand)
                for k in range(self.n_channels_):
                    pos = np.nonzero(cand[:, :, k])
                    if len(pos[0]) == 0:
                        continue
                    sc = scale[pos[0], 0, k]
                    feats = np.column_stack(
                        [
                            dev[pos[0], pos[1], k] / sc,
                            jin[pos[0], pos[1], k] / sc,
                            jout[pos[0], pos[1], k] / sc,
                        ]
                    )
                    scores = self.point_models_[k].decision_function(feats)
                    hit = scores > self.point_thresholds_[k]
                    flagged[pos[0][hit], pos[1][hit], k] = True
                del dev, jin, jout, z
                for row in np.flatnonzero(flagged.any(axis=(1, 2))):
                    i = idx[row]
                    x = filled[i].copy()
                    x[flagged[row]] = np.nan
                    out[i], counts[i] = interpolate_nans(x)
        return out, counts

    def _check_input(self, values: list[np.ndarray]) -> None:
        check_is_fitted(self, "series_model_")
        for i, v in enumerate(values):
            check_channels(self, self.n_channels_, int(np.shape(v)[1]), f"series {i}")

    def score(self, values: SeriesSet | list[np.ndarray]) -> np.ndarray:
        """Series scores ``(n_series,)``, higher = more anomalous (after NaN and spike repair)."""
        values = values.values if isinstance(values, SeriesSet) else values
        self._check_input(values)
        feats, _, _ = self._clean_chunks(values)
        return np.asarray(self.series_model_.decision_function(feats), dtype=np.float64)

    def transform(self, series: SeriesSet) -> OutlierResult:
        """Repair NaNs and spikes, score every series, apply ``train_action`` to train outliers.

        Val/test series are never dropped; their outliers are flagged in the report.

        Raises:
            NotFittedError: before :meth:`fit`.
            ChannelCountError: a series has another number of channels than the train series.
        """
        self._check_input(series.values)
        cfg = self._cfg
        lengths = series.lengths
        dtype = np.float32 if all(v.dtype == np.float32 for v in series.values) else np.float64
        block = np.full((len(series), int(lengths.max()), self.n_channels_), np.nan, dtype=dtype)
        feats, point_counts, nan_counts = self._clean_chunks(series.values, block)
        scores = np.asarray(self.series_model_.decision_function(feats), dtype=np.float64)
        is_out = scores > self.threshold_
        is_train = series.splits == "train"
        drop = is_out & is_train & (cfg.train_action == "drop")
        action = np.where(drop, "dropped", np.where(is_out, "flagged", "kept"))
        report = pd.DataFrame(
            {
                "series_id": series.ids,
                "split": series.splits,
                "label": series.labels,
                "score": scores,
                "is_outlier": is_out,
                "action": action,
                "points_repaired": point_counts,
                "nans_filled": nan_counts,
            }
        )
        views = [block[i, :n] for i, n in enumerate(lengths)]
        packed = SeriesSet(
            series.ids, series.labels, series.splits, views, series.channels, padded=block
        )
        kept = packed.subset(~drop)
        logger.info(
            "outliers: %d series flagged, %d dropped from train, %d points repaired, %d NaNs filled",
            int(is_out.sum()),
            int(drop.sum()),
            int(point_counts.sum()),
            int(nan_counts.sum()),
        )
        return OutlierResult(series=kept, report=report)


def fill_only(series: SeriesSet) -> OutlierResult:
    """No outlier handling: only NaN dropouts are interpolated (needed by DTW); all kept."""
    filled = [interpolate_nans(v) for v in series.values]
    report = pd.DataFrame(
        {
            "series_id": series.ids,
            "split": series.splits,
            "label": series.labels,
            "score": np.zeros(len(series)),
            "is_outlier": np.zeros(len(series), dtype=bool),
            "action": np.full(len(series), "kept"),
            "points_repaired": np.zeros(len(series), dtype=np.int64),
            "nans_filled": np.array([n for _, n in filled], dtype=np.int64),
        }
    )
    return OutlierResult(series=series.with_values([f for f, _ in filled]), report=report)


def outlier_counts(report: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per split and class: ``{split: {label: {series, flagged, dropped, points_repaired, nans_filled}}}``."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (split, label), g in report.groupby(["split", "label"], sort=True):
        out.setdefault(str(split), {})[str(label)] = {
            "series": len(g),
            "flagged": int(g["is_outlier"].sum()),
            "dropped": int((g["action"] == "dropped").sum()),
            "points_repaired": int(g["points_repaired"].sum()),
            "nans_filled": int(g["nans_filled"].sum()),
        }
    return out
