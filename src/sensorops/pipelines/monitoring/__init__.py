"""The ``monitoring`` pipeline (thin adapter over :mod:`sensorops.monitoring`)."""
