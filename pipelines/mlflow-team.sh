#!/usr/bin/env bash
# A team MLflow server: PostgreSQL backend store, artifacts proxied by the server (clients never
# write to the artifact store themselves), and MLflow's basic-auth app (users and permissions).
#
#   MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://mlflow@db-host:5432/mlflow \
#   MLFLOW_AUTH_ADMIN_PASSWORD=... make mlflow-team
#
# Settings (environment):
#   MLFLOW_BACKEND_STORE_URI     required; runs, metrics and the model registry (postgresql+psycopg://...)
#   MLFLOW_AUTH_DATABASE_URI     users and permissions (default: the backend store URI)
#   MLFLOW_AUTH_ADMIN_PASSWORD   the admin's password; read only on the first start against an
#                                empty user store (MLflow ships no default). Admin name: MLFLOW_AUTH_ADMIN_USERNAME (admin)
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what every user may do on resources they did not create (READ)
#   MLFLOW_ARTIFACTS_DESTINATION local folder (or s3://...) the server writes artifacts to
#                                (default: ./mlflow-team/artifacts)
#   MLFLOW_TEAM_HOST / MLFLOW_TEAM_PORT  where it listens (default 127.0.0.1:5000; set the host to
#                                the interface the team reaches, e.g. 10.0.0.5, never 0.0.0.0 by accident)
#   MLFLOW_TEAM_DIR              its working folder: auth config, CSRF key (default ./mlflow-team)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF key (default: generated once into MLFLOW_TEAM_DIR)
# Passwords are never put on the command line (visible in `ps`); the database password belongs
# in ~/.pgpass or PGPASSWORD, not in the URI.
set -euo pipefail

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://USER@HOST:PORT/DB}"
case "$MLFLOW_BACKEND_STORE_URI" in
  postgresql://*|postgresql+psycopg://*|postgresql+psycopg2://*) ;;
  *) echo "mlflow-team: MLFLOW_BACKEND_STORE_URI must be a postgresql:// URI; got ${MLFLOW_BACKEND_STORE_URI%%://*}://..." >&2; exit 2 ;;
esac
# SQLAlchemy's plain postgresql:// means psycopg2, which is not installed; psycopg (v3) is
BACKEND="${MLFLOW_BACKEND_STORE_URI/#postgresql:\/\//postgresql+psycopg://}"
AUTH_DB="${MLFLOW_AUTH_DATABASE_URI:-$BACKEND}"
AUTH_DB="${AUTH_DB/#postgresql:\/\//postgresql+psycopg://}"
DIR="${MLFLOW_TEAM_DIR:-$PWD/mlflow-team}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-$DIR/artifacts}"
HOST="${MLFLOW_TEAM_HOST:-127.0.0.1}"
PORT="${MLFLOW_TEAM_PORT:-5000}"
MLFLOW="${MLFLOW:-mlflow}"

mkdir -p "$DIR"
case "$ARTIFACTS" in *://*) ;; *) mkdir -p "$ARTIFACTS" ;; esac
umask 077  # the auth config names the auth database
cat > "$DIR/basic_auth.ini" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = $AUTH_DB
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# true: default_permission applies to every user in the (only) 'default' workspace; with false
# a user sees nothing they were not granted explicitly, default_permission included
grant_default_workspace_access = ${MLFLOW_AUTH_GRANT_DEFAULT_WORKSPACE_ACCESS:-true}
# Each request's password check is a PBKDF2 hash (0.4-0.8 s on a busy 2-core machine), which made
# the promotion lease's read->write gap exceed lock.max_write_gap_s. Cache good logins for a
# minute; a password change through the API invalidates it at once (one worker).
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
INI
export MLFLOW_AUTH_CONFIG_PATH="$DIR/basic_auth.ini"
# the auth app's CSRF key must stay the same across restarts (and across servers of one team):
# MLFLOW_FLASK_SERVER_SECRET_KEY if set, else one generated once into $DIR/flask_secret_key
if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
  [ -s "$DIR/flask_secret_key" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/flask_secret_key"
  MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$DIR/flask_secret_key")"
  export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false  # the lean server: no job runner processes
unset MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD

exec "$MLFLOW" server --host "$HOST" --port "$PORT" --workers "${MLFLOW_TEAM_WORKERS:-1}" \
  --backend-store-uri "$BACKEND" --serve-artifacts --artifacts-destination "$ARTIFACTS" \
  --app-name basic-auth
