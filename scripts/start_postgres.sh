#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1:5432 for the storage tests.
#
# Run as root on a Debian/Ubuntu machine (CI or a dev box). Installs the `postgresql`
# package when it is missing, starts the packaged cluster (or, failing that, a fresh one
# made with initdb in a temporary directory), creates role parrot/parrot and database
# parrot_test, and prints the line to export:
#   export PARROT_TEST_POSTGRES_URL=postgresql+psycopg://parrot:parrot@127.0.0.1:5432/parrot_test
# Idempotent: running it again with the server already up only re-checks the role/database.
# PGPORT picks another port; PARROT_PG_INITDB=1 skips the packaged cluster and always uses a
# fresh initdb directory.
set -euo pipefail

PORT="${PGPORT:-5432}"
ROLE=parrot
PASSWORD=parrot
DATABASE=parrot_test

log() { echo "start_postgres: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
PG_VERSION="$(basename "$(dirname "$PG_BIN")")"

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

if ready; then
    log "a server is already listening on 127.0.0.1:$PORT"
elif [ -z "${PARROT_PG_INITDB:-}" ] && command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -q "^$PG_VERSION main$"; then
    log "starting the packaged cluster $PG_VERSION/main"
    pg_ctlcluster "$PG_VERSION" main start -- -o "-c listen_addresses=127.0.0.1 -c port=$PORT" >&2 \
        || pg_ctlcluster "$PG_VERSION" main start >&2
else
    DATA_DIR="$(mktemp -d /tmp/parrot-pg.XXXXXX)"
    chown postgres: "$DATA_DIR"
    log "initdb in $DATA_DIR"
    as_postgres "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 >&2
    as_postgres "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$DATA_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=/tmp" start >&2
fi

for _ in $(seq 1 30); do ready && break; sleep 1; done
ready || { log "the server did not come up on 127.0.0.1:$PORT"; exit 1; }

# Administrative commands go over the local socket as the postgres superuser (peer/trust auth).
SOCKET_DIR=/var/run/postgresql
[ -S "$SOCKET_DIR/.s.PGSQL.$PORT" ] || SOCKET_DIR=/tmp
psql_admin() { as_postgres "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB"
else
    psql_admin -c "ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

echo "export PARROT_TEST_POSTGRES_URL=postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
