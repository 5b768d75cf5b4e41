"""sensorops: an MLOps workflow for multichannel sensor time series, built on Kedro."""

__version__ = "0.1.0"
