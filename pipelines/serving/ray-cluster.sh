#!/usr/bin/env bash
# Serve a registry alias on a Ray cluster started with `ray start` (head + workers).
#
# The direct-ingress variables are read by the Serve controller and replicas when they start, so
# they must be in the environment of every `ray start` (head and workers), not only of the driver.
# Each ingress replica then listens on SERVE_PORT, SERVE_PORT+1, ... of its node; put a load
# balancer (or the Kubernetes Service of rayservice.yaml) in front when running more than one.
# With INGRESS=proxy Serve's own HTTP proxy listens on SERVE_PORT on every node instead
# (measured 14-29 ms CPU per request against 2-3 ms direct; see README "Serving").
#
# The service finds the tracking server through MLFLOW_TRACKING_URI (or --tracking-uri): every
# node must reach it, and the replicas download the model version from it (artifacts proxied by
# `mlflow server`, or the artifact store's own credentials in the environment).
#
#   head:    HEAD=1 pipelines/serving/ray-cluster.sh
#   worker:  RAY_HEAD=10.0.0.1:6379 pipelines/serving/ray-cluster.sh
#   serve:   MLFLOW_TRACKING_URI=http://mlflow:5000 sensorops serve sensorops-classifier@production \
#              --ray-address "$RAY_HEAD" --host 0.0.0.0 --port 8000 --num-replicas 2
set -euo pipefail

SERVE_PORT="${SERVE_PORT:-8000}"
INGRESS="${INGRESS:-direct}"
RAY_PORT="${RAY_PORT:-6379}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"

if [[ "$INGRESS" == "direct" ]]; then
  export RAY_SERVE_ENABLE_DIRECT_INGRESS=1
  export RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="$SERVE_PORT"
  export RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="$((SERVE_PORT + 64))"
fi
export NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-1}"   # one DTW thread per replica: scale by replicas

if [[ "${HEAD:-0}" == "1" ]]; then
  exec ray start --head --port="$RAY_PORT" --num-cpus="$NUM_CPUS" --disable-usage-stats --block
else
  : "${RAY_HEAD:?set RAY_HEAD=host:port of the head node}"
  exec ray start --address="$RAY_HEAD" --num-cpus="$NUM_CPUS" --disable-usage-stats --block
fi
