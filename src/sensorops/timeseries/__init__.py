"""Time-series ingestion library: sources, contract, split, outliers, DTW alignment, normalization.

No Kedro imports here; the ``ingestion`` pipeline is a thin adapter over these modules.
"""

from sensorops.timeseries.alignment import AlignmentResult, SeriesAligner
from sensorops.timeseries.band import Band
from sensorops.timeseries.config import (
    AblationConfig,
    AlignmentConfig,
    ContractConfig,
    DTWConfig,
    NormalizeConfig,
    OutlierConfig,
    ReferenceConfig,
    ReportingConfig,
    SourceConfig,
    SplitConfig,
    SyntheticConfig,
    parse_config,
)
from sensorops.timeseries.contract import check_contract
from sensorops.timeseries.dtw import align_to_reference, dtw_path
from sensorops.timeseries.errors import (
    ChannelCountError,
    ContractError,
    IngestionConfigError,
    IngestionError,
    NotFittedError,
    SourceError,
)
from sensorops.timeseries.normalize import ChannelStandardizer
from sensorops.timeseries.outliers import OutlierFilter, OutlierResult
from sensorops.timeseries.series import SeriesSet, long_to_series, series_to_long
from sensorops.timeseries.sources import (
    load_basic_motions,
    load_source,
    read_long_table,
    read_ts_file,
)
from sensorops.timeseries.split import assign_splits
from sensorops.timeseries.synthetic import SyntheticData, generate_industrial

__all__ = [
    "AblationConfig",
    "AlignmentConfig",
    "AlignmentResult",
    "Band",
    "ChannelCountError",
    "ChannelStandardizer",
    "ContractConfig",
    "ContractError",
    "DTWConfig",
    "IngestionConfigError",
    "IngestionError",
    "NormalizeConfig",
    "NotFittedError",
    "OutlierConfig",
    "OutlierFilter",
    "OutlierResult",
    "ReferenceConfig",
    "ReportingConfig",
    "SeriesAligner",
    "SeriesSet",
    "SourceConfig",
    "SourceError",
    "SplitConfig",
    "SyntheticConfig",
    "SyntheticData",
    "align_to_reference",
    "assign_splits",
    "check_contract",
    "dtw_path",
    "generate_industrial",
    "load_basic_motions",
    "load_source",
    "long_to_series",
    "parse_config",
    "read_long_table",
    "read_ts_file",
    "series_to_long",
]
