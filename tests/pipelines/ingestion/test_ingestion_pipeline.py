"""The ingestion Kedro pipeline run by a SequentialRunner over file datasets in tmp_path.

The catalog is built from conf/base/catalog_ingestion.yml with every path moved under tmp_path
(MLflow wrappers replaced by their inner dataset, metrics by memory), so the YAML is exercised too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from sensorops.model_input import load_model_input
from sensorops.pipelines.ingestion import create_pipeline
from sensorops.pipelines.ingestion.nodes import align_series, handle_outliers, normalize_model_input
from sensorops.timeseries.config import SyntheticConfig
from sensorops.timeseries.errors import IngestionError
from sensorops.timeseries.synthetic import generate_industrial

ROOT = Path(__file__).resolve().parents[3]
LAYERS = {
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
}
PREFIXES = ("raw_", "int_", "prm_", "feat_", "mi_", "mdl_", "mo_", "rpt_")
DOWNSTREAM = (
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)


def _catalog_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf/base/catalog_ingestion.yml").read_text())


def base_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf/base/parameters_ingestion.yml").read_text())["ingestion"]


def tiny_params(**source: Any) -> dict[str, Any]:
    """Base parameters made tiny: synthetic source, medoid references, no ablation."""
    p = copy.deepcopy(base_params())
    p["source"].update(
        {
            "kind": "synthetic",
            "synthetic": {
                **p["source"]["synthetic"],
                "n_series": 40,
                "n_channels": 3,
                "length": 32,
            },
        }
    )
    p["source"].update(source)
    p["outliers"]["n_estimators"] = 30
    p["outliers"]["points"]["max_fit_points"] = 1000
    p["alignment"]["reference"].update({"method": "medoid", "max_series": 6})
    p["ablation"]["enabled"] = False
    return p


def build_catalog(root: Path, params: dict[str, Any]) -> DataCatalog:
    config = {}
    for name, entry in _catalog_config().items():
        entry = copy.deepcopy(entry)
        if entry["type"] == "kedro_mlflow.io.artifacts.MlflowArtifactDataset":
            entry = entry["dataset"]
        elif entry["type"] == "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset":
            entry = {"type": "MemoryDataset"}
        if "filepath" in entry:
            entry["filepath"] = str(root / entry["filepath"])
        config[name] = entry
    catalog = DataCatalog.from_config(config)
    for key, value in params.items():
        catalog[f"params:ingestion.{key}"] = MemoryDataset(value)
    return catalog


def run(root: Path, params: dict[str, Any], pipeline=None) -> DataCatalog:
    catalog = build_catalog(root, params)
    SequentialRunner().run(pipeline or create_pipeline(), catalog)
    return catalog


def downstream_files(root: Path) -> list[Path]:
    return [p for layer in DOWNSTREAM for p in (root / "data" / layer).rglob("*") if p.is_file()]


def test_catalog_entries_follow_conventions() -> None:
    config = _catalog_config()
    for name, entry in config.items():
        assert name.startswith(PREFIXES) and "." not in name, name
        assert entry["metadata"]["kedro-viz"]["layer"] in LAYERS, name
    pipe = create_pipeline()
    used = {d for d in pipe.datasets() if not d.startswith("params:")}
    assert used == set(config)
    assert {"raw_sensor_long", "int_sensor_long", "mi_model_input"} <= used
    assert config["raw_sensor_long"]["filepath"] == "data/01_raw/sensor_long.parquet"
    assert config["int_sensor_long"]["filepath"] == "data/02_intermediate/sensor_long.parquet"
    assert config["mi_model_input"]["filepath"] == "data/05_model_input/model_input.npz"
    for node in pipe.nodes:
        assert node.name == node.func.__name__ and "ingestion" in node.tags
    DataCatalog.from_config(config)  # every dataset type resolves (kedro-mlflow, sensorops)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    run(root, tiny_params())
    return root


def test_pipeline_writes_model_input_and_reports(tiny_run: Path) -> None:
    root = tiny_run
    mi = load_model_input(root / "data/05_model_input/model_input.npz")
    assert mi.n_channels == 3 and mi.n_classes == 4
    assert all(np.isfinite(mi.X[s]).all() for s in ("train", "val", "test"))
    np.testing.assert_allclose(mi.X["train"].reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(mi.X["train"].reshape(-1, 3).std(0), 1, atol=1e-3)
    assert set(mi.metadata["alignment"]["references"]) == set(mi.classes)
    assert mi.metadata["alignment"]["reference_choice"] == "min_cost"
    assert set(mi.metadata["normalization"]["channels"]) == set(mi.channels)
    long = pd.read_parquet(root / "data/02_intermediate/sensor_long.parquet")
    assert long.groupby("series_id")["split"].nunique().max() == 1
    summary = json.loads((root / "data/08_reporting/ingestion/outlier_summary.json").read_text())
    outliers = pd.read_csv(root / "data/08_reporting/ingestion/outlier_series.csv")
    for split in ("val", "test"):  # flagged, never dropped
        flagged = set(outliers.loc[(outliers.split == split) & outliers.is_outlier, "series_id"])
        assert flagged == set(summary["flagged"][split])
        assert flagged <= set(mi.series_ids[split])
    assert len(mi.y["test"]) == (long.groupby("series_id")["split"].first() == "test").sum()
    dropped = set(summary["dropped"])
    assert not dropped & set(mi.series_ids["train"])
    costs = pd.read_csv(root / "data/08_reporting/ingestion/alignment_costs.csv")
    assert len(costs) == sum(mi.counts().values()) and costs["cost"].ge(0).all()
    for png in ("alignment_cost_histogram.png", "examples_before_after.png"):
        assert (root / "data/08_reporting/ingestion" / png).read_bytes()[:4] == b"\x89PNG"
    report = json.loads((root / "data/08_reporting/ingestion/summary.json").read_text())
    assert sum(report["series_per_split_class"]["test"].values()) == len(mi.y["test"])


def test_fitted_things_ignore_val_and_test_data(tiny_run: Path) -> None:
    """Changing val/test values changes none of the fitted objects (outliers, references, stats)."""
    params = tiny_params()
    long = pd.read_parquet(tiny_run / "data/02_intermediate/sensor_long.parquet")
    changed = long.copy()
    evaluation = changed["split"] != "train"
    for ch in ("vibration", "temperature", "current"):
        changed.loc[evaluation, ch] = changed.loc[evaluation, ch] * 3.0 + 7.0
    outputs = []
    for frame in (long, changed):
        clean, model, _, summary = handle_outliers(frame, params["outliers"])
        aligned, refs, _ = align_series(clean, params["alignment"])
        mi, stats = normalize_model_input(aligned, summary, params["source"], params["normalize"])
        outputs.append((model["filter"], refs, stats, mi))
    (fa, ra, sa, ma), (fb, rb, sb, mb) = outputs
    assert fa.threshold_ == fb.threshold_
    np.testing.assert_array_equal(fa.point_scale_, fb.point_scale_)
    np.testing.assert_array_equal(fa.train_scores_, fb.train_scores_)
    assert ra == rb and sa == sb
    np.testing.assert_array_equal(ma.X["train"], mb.X["train"])
    assert not np.array_equal(ma.X["test"], mb.X["test"])  # the change did reach val/test


def test_primary_table_keeps_the_users_time_stamps(tiny_run: Path) -> None:
    """Repair does not renumber ``t``: timestamps (or any steps) survive into ``prm_sensor_clean``."""
    long = pd.read_parquet(tiny_run / "data/02_intermediate/sensor_long.parquet")
    stamped = long.copy()
    step = stamped.groupby("series_id").cumcount()
    stamped["t"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(step * 250 + 7, unit="ms")
    clean, _, _, _ = handle_outliers(stamped, tiny_params()["outliers"])
    kept = set(clean["series_id"])
    assert kept <= set(stamped["series_id"]) and len(kept) > 0
    expected = stamped[stamped["series_id"].isin(kept)].sort_values(["series_id", "t"])
    merged = clean.merge(
        expected[["series_id", "t"]], on=["series_id", "t"], how="left", indicator=True
    )
    assert (merged["_merge"] == "both").all()
    assert pd.api.types.is_datetime64_any_dtype(clean["t"])
    assert len(clean) == len(expected)


def test_basicmotions_default_parameters(tmp_path: Path) -> None:
    params = copy.deepcopy(base_params())
    params["ablation"]["enabled"] = False
    run(tmp_path, params)
    raw = pd.read_parquet(tmp_path / "data/01_raw/sensor_long.parquet")
    assert raw["series_id"].nunique() == 80
    mi = load_model_input(tmp_path / "data/05_model_input/model_input.npz")
    assert mi.channels == ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
    assert mi.classes == ("badminton", "running", "standing", "walking")
    assert mi.length == 100 and len(mi.y["test"]) == 40  # BasicMotions' own test split, all kept
    assert 36 <= len(mi.y["train"]) + len(mi.y["val"]) <= 40 and len(mi.y["val"]) == 8
    assert mi.metadata["alignment"]["reference_method"] == "dba"
    assert mi.metadata["alignment"]["sakoe_chiba_radius"] == 10


def _good_table() -> pd.DataFrame:
    cfg = SyntheticConfig(
        n_series=16, n_channels=2, length=20, dropout_rate=0.0, spike_rate=0.0, seed=2
    )
    return generate_industrial(cfg).frame


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _case_empty(d: Path) -> Path:
    (d / "empty.csv").write_bytes(b"")
    return d / "empty.csv"


def _case_missing_label(d: Path) -> Path:
    return _write_csv(_good_table().drop(columns="label"), d / "nolabel.csv")


def _case_text_value(d: Path) -> Path:
    f = _good_table().astype({"temperature": object})
    f.loc[11, "temperature"] = "hot"
    return _write_csv(f, d / "text.csv")


def _case_all_nan(d: Path) -> Path:
    return _write_csv(_good_table().assign(temperature=np.nan), d / "allnan.csv")


def _case_duplicate(d: Path) -> Path:
    f = _good_table()
    return _write_csv(pd.concat([f, f.iloc[[4]]]), d / "dup.csv")


def _case_single_class(d: Path) -> Path:
    f = _good_table()
    return _write_csv(f.assign(label="healthy"), d / "oneclass.csv")


def _case_length_one(d: Path) -> Path:
    f = _good_table()
    return _write_csv(pd.concat([f, f.iloc[[0]].assign(series_id="m99999")]), d / "short.csv")


def _case_inf(d: Path) -> Path:
    f = _good_table()
    f.loc[8, "vibration"] = np.inf
    f.to_parquet(d / "inf.parquet")
    return d / "inf.parquet"


def _case_corrupt_parquet(d: Path) -> Path:
    _good_table().to_parquet(d / "corrupt.parquet")
    data = (d / "corrupt.parquet").read_bytes()
    (d / "corrupt.parquet").write_bytes(data[: len(data) // 2])
    return d / "corrupt.parquet"


def _case_misspelled_channel(d: Path) -> Path:
    return _write_csv(_good_table(), d / "good.csv")


BAD_INPUTS = [
    ("empty", _case_empty, {}, r"empty.csv is empty \(0 bytes\)"),
    (
        "missing_label",
        _case_missing_label,
        {},
        r"nolabel.csv: missing required column\(s\) \['label'\]",
    ),
    (
        "misspelled_channel",
        _case_misspelled_channel,
        {"channels": ["vibration", "temprature"]},
        r"good.csv: channel column 'temprature' .*not found.*did you mean 'temperature'",
    ),
    (
        "text_value",
        _case_text_value,
        {},
        r"text.csv: channel column 'temperature' must be numeric.*'hot'",
    ),
    ("all_nan_channel", _case_all_nan, {}, r"allnan.csv: channel 'temperature' is entirely NaN"),
    ("duplicate_key", _case_duplicate, {}, r"dup.csv: 2 rows have a duplicate \(series_id, t\)"),
    (
        "single_class",
        _case_single_class,
        {},
        r"oneclass.csv: column 'label' has 1 class\(es\) \['healthy'\]",
    ),
    (
        "length_one",
        _case_length_one,
        {},
        r"short.csv: 1 series shorter than contract.min_length=4: 'm99999' \(1 step\)",
    ),
    ("inf", _case_inf, {}, r"inf.parquet: channel 'vibration' has 1 infinite value\(s\)"),
    (
        "corrupt_parquet",
        _case_corrupt_parquet,
        {},
        r"corrupt.parquet could not be read as parquet \(corrupt",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "contract", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_fails_clearly_and_writes_nothing_downstream(
    tmp_path: Path, case: str, make, contract: dict[str, Any], message: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    params = tiny_params(kind="long_table", path=str(path))
    params["contract"].update(contract)
    with pytest.raises(IngestionError, match=message):
        run(tmp_path, params)
    assert downstream_files(tmp_path) == []


def test_long_table_csv_with_timestamps_and_given_split(tmp_path: Path) -> None:
    frame = _good_table()
    ids = sorted(frame.series_id.unique())
    given = {sid: ("test" if i % 4 == 0 else "train") for i, sid in enumerate(ids)}
    frame = frame.assign(
        split=frame.series_id.map(given),
        t=pd.Timestamp("2026-03-01") + pd.to_timedelta(frame["t"], unit="min"),
    )
    path = _write_csv(frame.sample(frac=1.0, random_state=0), tmp_path / "table.csv")
    params = tiny_params(kind="long_table", path=str(path))
    catalog = build_catalog(tmp_path, params)
    SequentialRunner().run(create_pipeline().to_outputs("int_sensor_long"), catalog)
    out = pd.read_parquet(tmp_path / "data/02_intermediate/sensor_long.parquet")
    per = out.groupby("series_id")["split"].first()
    assert all(per[s] == "test" for s in ids if given[s] == "test")
    assert set(per[per == "val"].index) <= {s for s in ids if given[s] == "train"}
    assert (per == "val").any()
    assert out.groupby("series_id")["t"].apply(lambda t: t.is_monotonic_increasing).all()
