"""The ``retraining`` pipeline (thin adapter over :mod:`sensorops.monitoring.retraining`)."""
