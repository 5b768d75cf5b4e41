"""Progressive rollout of a registry version on the running service (docs/rollout.md).

- :mod:`~sensorops.rollout.state`: the rollout as the registry stores it (``@canary`` + the
  ``sensorops.rollout`` tag) and how a replica routes by it;
- :mod:`~sensorops.rollout.config`: the thresholds (``conf/base/parameters_rollout.yml``);
- :mod:`~sensorops.rollout.armstats`: per-arm numbers over a window of the arm log;
- :mod:`~sensorops.rollout.checks`: the statistical checks and the decision;
- :mod:`~sensorops.rollout.controller`: start / step / abort / promote / run;
- :mod:`~sensorops.rollout.replay`: a bounded replay load generator with delayed feedback;
- :mod:`~sensorops.rollout.cli`: ``sensorops rollout ...``.
"""
