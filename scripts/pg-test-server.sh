#!/usr/bin/env bash
# Makes sure the machine's PostgreSQL answers on 127.0.0.1:5432 and that the
# test database exists; prints `export DATABASE_URL=...` on stdout.
#
#   eval "$(bash scripts/pg-test-server.sh | grep ^export)"
#
# On this machine kind PostgreSQL is a Debian cluster with trust auth for
# local TCP; when it is down we start it, when it is missing we install it.
set -euo pipefail
PGHOST_=${PGHOST_TEST:-127.0.0.1}
PGPORT_=${PGPORT_TEST:-5432}
PGUSER_=${PGUSER_TEST:-postgres}
DB=${PGDATABASE_TEST:-test}
log() { echo "pg-test-server: $*" >&2; }

ready() { pg_isready -q -h "$PGHOST_" -p "$PGPORT_" 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "PostgreSQL is not installed: installing it from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
fi

if ! ready; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting the PostgreSQL $version cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 60); do ready && break; sleep 1; done
  ready || { log "PostgreSQL did not become ready"; exit 1; }
fi

# Trust auth over TCP is what this machine kind ships; if it is not there, use the socket as the postgres user.
if ! psql -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
  log "cannot connect as $PGUSER_ over TCP without a password: configure trust or set DATABASE_URL yourself"
  exit 1
fi
if [ "$(psql -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  log "creating database $DB"
  psql -h "$PGHOST_" -p "$PGPORT_" -U "$PGUSER_" -d postgres -qc "CREATE DATABASE \"$DB\"" >&2
fi
log "ready on $PGHOST_:$PGPORT_"
echo "export DATABASE_URL=postgres://$PGUSER_@$PGHOST_:$PGPORT_/$DB"
