"""Thin Kedro adapters over the sensorops library packages, one sub-package per pipeline."""
