#!/usr/bin/env bash
# A real S3 server for tests and benchmarks: a minimal single-node Ceph
# (1 monitor, 1 RAM-backed "memstore" OSD, radosgw with the beast frontend),
# every daemon bound to 127.0.0.1 only.
#
#   bash scripts/s3-test-server.sh [start]   # prints `export S3_...` on stdout
#   bash scripts/s3-test-server.sh stop
#   eval "$(bash scripts/s3-test-server.sh start | grep ^export)"
#
# Environment (all optional):
#   S3_TEST_DIR          data dir                  (default $PWD/.s3-ceph)
#   S3_TEST_PORT         radosgw port              (default 7480)
#   S3_TEST_MON_PORT     monitor port (msgr v2)    (default 40100)
#   S3_BUCKET            bucket to create          (default bxchange-test)
#   S3_ACCESS_KEY_ID     S3 access key             (default TESTKEY)
#   S3_SECRET_ACCESS_KEY S3 secret                 (default TESTSECRET)
#   MEMSTORE_BYTES       RAM the OSD may hold      (default 4 GiB)
#   S3_TEST_TIMEOUT      seconds per readiness wait (default 90)
#
# Progress goes to stderr; only the export line goes to stdout. `start` is
# idempotent: when radosgw already answers on the port with the credentials,
# it only ensures the bucket and prints the exports.
#
# Two traps of Ceph 16 (Debian 12) that this script avoids:
# - the OSD stays "booting" forever unless `ceph-osd --mkfs --osd-uuid` gets
#   the same uuid as `ceph osd new`;
# - radosgw dies with "get_initial_auth_request returned -13" unless
#   `ms client mode = crc` and `ms mon client mode = crc` are set.
# And one speed-up: with the default paxos timings every map change (each pool
# radosgw creates) costs about a second, `start` took 15 s; with a short
# `paxos propose interval` it takes about 1.3 s. Pools get 8 PGs, not 32.
set -euo pipefail

CMD=${1:-start}
D=${S3_TEST_DIR:-$PWD/.s3-ceph}
PORT=${S3_TEST_PORT:-7480}
MON_PORT=${S3_TEST_MON_PORT:-40100}
BUCKET=${S3_BUCKET:-bxchange-test}
KEY=${S3_ACCESS_KEY_ID:-TESTKEY}
SECRET=${S3_SECRET_ACCESS_KEY:-TESTSECRET}
REGION=us-east-1
MEMSTORE=${MEMSTORE_BYTES:-4294967296}
WAIT=${S3_TEST_TIMEOUT:-90}
ENDPOINT="http://127.0.0.1:$PORT"
CONF="$D/ceph.conf"
RESP=$(mktemp)
trap 'rm -f "$RESP"' EXIT

log() { printf 's3-test-server: %s\n' "$*" >&2; }

dump_logs() {
  local f
  for f in "$D"/log/*; do
    [ -f "$f" ] || continue
    printf '\n===== tail of %s =====\n' "$f" >&2
    tail -n 20 "$f" >&2 || true
  done
}

STARTED_HERE=0
die() {
  log "ERROR: $*"
  [ -d "$D/log" ] && dump_logs
  # Leave no half-started cluster behind (the logs stay in $D/log).
  if [ "$STARTED_HERE" = 1 ]; then STARTED_HERE=0; stop_daemons; fi
  exit 1
}

# ---------------------------------------------------------------- packages
ensure_packages() {
  local missing=0 tool
  for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  local pkgs="radosgw ceph-mon ceph-osd"
  command -v curl >/dev/null 2>&1 || { missing=1; pkgs="$pkgs curl ca-certificates"; }
  [ "$missing" = 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "Ceph packages are missing and we are not root (need: apt-get install $pkgs)"
    sudo="sudo -n"
  fi
  log "installing $pkgs (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2 || die "apt-get update failed"
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $pkgs >&2 || die "apt-get install $pkgs failed"
}

# ---------------------------------------------------------------- S3 probes
# Anonymous GET / answers 200 on radosgw (empty bucket list).
rgw_answers() { curl -s -o /dev/null -m 3 "$ENDPOINT/"; }

# Signed request (AWS SigV4, curl >= 7.75). Prints the HTTP status.
s3_curl() {
  local method=$1 path=$2 how
  if [ "$method" = HEAD ]; then how=(-I); else how=(-X "$method"); fi
  curl -s -m 10 -o "$RESP" -w '%{http_code}' "${how[@]}" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$KEY:$SECRET" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$ENDPOINT$path" 2>/dev/null || true
}

credentials_work() { [ "$(s3_curl GET /)" = 200 ] && grep -q ListAllMyBucketsResult "$RESP"; }

ensure_bucket() {
  local code
  code=$(s3_curl PUT "/$BUCKET")
  case "$code" in
    200) ;;
    409) grep -q BucketAlreadyOwnedByYou "$RESP" 2>/dev/null \
           || die "bucket $BUCKET exists and belongs to someone else: $(cat "$RESP" 2>/dev/null)";;
    *) die "creating bucket $BUCKET answered HTTP $code: $(cat "$RESP" 2>/dev/null)";;
  esac
  [ "$(s3_curl HEAD "/$BUCKET")" = 200 ] || die "bucket $BUCKET is not there after its creation"
}

print_exports() {
  echo "export S3_ENDPOINT=$ENDPOINT S3_REGION=$REGION S3_BUCKET=$BUCKET S3_ACCESS_KEY_ID=$KEY S3_SECRET_ACCESS_KEY=$SECRET S3_FORCE_PATH_STYLE=true"
}

create_user() {
  local out
  if ! out=$(timeout 30 radosgw-admin -c "$CONF" user info --uid=test 2>/dev/null); then
    timeout 30 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
      --access-key="$KEY" --secret="$SECRET" >/dev/null 2>>"$D/log/radosgw-admin.err" \
      || die "radosgw-admin user create failed"
  elif ! grep -q "\"$KEY\"" <<<"$out"; then
    timeout 30 radosgw-admin -c "$CONF" key create --uid=test --key-type=s3 \
      --access-key="$KEY" --secret="$SECRET" >/dev/null 2>>"$D/log/radosgw-admin.err" \
      || die "radosgw-admin key create failed"
  fi
}

# ---------------------------------------------------------------- daemons
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemons() {
  local name pidfile pid i
  for name in rgw osd mon; do
    pidfile="$D/run/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
      log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -ge "$secs" ] && die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
}

osd_up() { timeout 5 ceph -c "$CONF" osd stat 2>/dev/null | grep -q ' 1 up'; }

fresh_cluster() {
  # Only wipe a directory that is ours (or empty / absent).
  if [ -e "$D" ] && [ ! -f "$CONF" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ]; then
    die "$D exists, is not empty and holds no ceph.conf: refusing to wipe it (set S3_TEST_DIR)"
  fi
  [ -d "$D/run" ] && stop_daemons
  rm -rf "$D"
  mkdir -p "$D/mon" "$D/osd0" "$D/rgw" "$D/run" "$D/log"

  port_free "$PORT" || die "port $PORT is taken by something that is not a radosgw with our credentials"
  port_free "$MON_PORT" || die "monitor port $MON_PORT is taken (set S3_TEST_MON_PORT)"

  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# without these, radosgw fails: "send_auth_request get_initial_auth_request returned -13"
ms mon client mode = crc
ms client mode = crc
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
mon allow pool size one = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
# a single monitor: commit map changes at once (pool creations are then much faster)
paxos propose interval = 0.05
paxos min wait = 0.01
[mon.a]
mon data = $D/mon
[osd.0]
osd data = $D/osd0
osd objectstore = memstore
memstore device bytes = $MEMSTORE
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
EOF

  STARTED_HERE=1
  log "starting monitor on 127.0.0.1:$MON_PORT"
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null 2>>"$D/log/setup.err" \
    || die "monmaptool failed"
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$D/monmap" </dev/null >>"$D/log/setup.err" 2>&1 || die "ceph-mon --mkfs failed"
  ceph-mon -c "$CONF" -i a --pid-file "$D/run/mon.pid" </dev/null >>"$D/log/mon.out" 2>&1 || die "ceph-mon failed to start"

  log "creating and starting the memstore OSD ($MEMSTORE bytes)"
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  # Trap 1: the uuid given to `osd new` must be the one given to `--mkfs --osd-uuid`.
  local start=$SECONDS
  until timeout 10 ceph -c "$CONF" osd new "$osd_uuid" >/dev/null 2>>"$D/log/setup.err"; do
    [ $((SECONDS - start)) -ge "$WAIT" ] && die "the monitor did not accept 'osd new' within ${WAIT}s"
    sleep 0.5
  done
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" </dev/null >>"$D/log/setup.err" 2>&1 || die "ceph-osd --mkfs failed"
  ceph-osd -c "$CONF" -i 0 --pid-file "$D/run/osd.pid" </dev/null >>"$D/log/osd.out" 2>&1 || die "ceph-osd failed to start"
  wait_for "$WAIT" "the OSD to be up" osd_up

  log "starting radosgw on $ENDPOINT"
  setsid radosgw -c "$CONF" -n client.rgw.a -f </dev/null >"$D/log/rgw.out" 2>&1 &
  echo $! >"$D/run/rgw.pid"
  wait_for "$WAIT" "radosgw to answer on $ENDPOINT" rgw_answers
  pid_alive "$D/run/rgw.pid" || die "radosgw exited"
}

start() {
  local t0=$SECONDS
  if rgw_answers; then
    if ! credentials_work; then
      # Ours, but the user is missing (an earlier start died half-way)?
      [ -f "$CONF" ] && pid_alive "$D/run/rgw.pid" && create_user
      credentials_work || die "something answers on $ENDPOINT but refuses $KEY (not our radosgw? set S3_TEST_PORT)"
    fi
    log "radosgw already answers on $ENDPOINT"
    ensure_bucket
    print_exports
    return 0
  fi
  ensure_packages
  fresh_cluster
  log "creating the S3 user $KEY"
  create_user
  wait_for 30 "the credentials of $KEY to work" credentials_work
  ensure_bucket
  log "ready in $((SECONDS - t0))s: $ENDPOINT bucket=$BUCKET pids mon=$(cat "$D/run/mon.pid") osd=$(cat "$D/run/osd.pid") rgw=$(cat "$D/run/rgw.pid")"
  print_exports
}

case "$CMD" in
  start) start ;;
  stop)
    if [ -d "$D/run" ]; then stop_daemons; else log "nothing to stop in $D"; fi ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
