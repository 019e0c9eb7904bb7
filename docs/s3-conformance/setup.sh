#!/bin/bash
# Start a fresh orbit serve on loopback and write s3tests.conf for ceph/s3-tests.
set -euo pipefail
BIN=${ORBIT_BIN:-${CARGO_TARGET_DIR:-target}/debug/orbit}
RUN=${S3TESTS_RUN:-/tmp/s3tests-run}
S3PORT=${S3PORT:-18000}; ADMINPORT=${ADMINPORT:-18001}
[ -f $RUN/orbit.pid ] && kill $(cat $RUN/orbit.pid) 2>/dev/null && sleep 1 || true
rm -rf $RUN/data; mkdir -p $RUN/data
export ORBIT_ROOT_ACCESS_KEY=ORBITROOTS3TESTS0001 ORBIT_ROOT_SECRET_KEY=orbit-s3tests-root-secret-0123456789abcdef
RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 $BIN serve --data-dir $RUN/data --s3-addr 127.0.0.1:$S3PORT \
  --admin-addr 127.0.0.1:$ADMINPORT > $RUN/orbit.log 2>&1 &
echo $! > $RUN/orbit.pid
for i in $(seq 100); do curl -sf http://127.0.0.1:$ADMINPORT/health >/dev/null && break; sleep 0.2; done
export ORBIT_ADMIN_URL=http://127.0.0.1:$ADMINPORT ORBIT_ACCESS_KEY=$ORBIT_ROOT_ACCESS_KEY ORBIT_SECRET_KEY=$ORBIT_ROOT_SECRET_KEY
key() { $BIN key create --tenant $1 --user $2 --output json; }
$BIN tenant create s3main --output json >/dev/null
$BIN tenant create testx --output json >/dev/null
$BIN user create --tenant s3main main --role read-write --output json >/dev/null
$BIN user create --tenant s3main alt --role read-write --output json >/dev/null
$BIN user create --tenant testx tenanteduser --role read-write --output json >/dev/null
M=$(key s3main main); A=$(key s3main alt); T=$(key testx tenanteduser)
j() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
cat > $RUN/s3tests.conf <<CONF
[DEFAULT]
host = 127.0.0.1
port = $S3PORT
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = s3t-{random}-
iam name prefix = s3-tests-
iam path prefix = /s3-tests/

[s3 main]
display_name = main
user_id = main
email = main@example.com
api_name = default
access_key = $(j "$M" access_key_id)
secret_key = $(j "$M" secret_access_key)

[s3 alt]
display_name = alt
email = alt@example.com
user_id = alt
access_key = $(j "$A" access_key_id)
secret_key = $(j "$A" secret_access_key)

[s3 tenant]
display_name = tenanteduser
user_id = tenanteduser
access_key = $(j "$T" access_key_id)
secret_key = $(j "$T" secret_access_key)
email = tenanteduser@example.com
tenant = testx

[iam]
email = s3@example.com
user_id = iam
access_key = $(j "$M" access_key_id)
secret_key = $(j "$M" secret_access_key)
display_name = iam

[iam root]
access_key = $(j "$M" access_key_id)
secret_key = $(j "$M" secret_access_key)
user_id = root
email = root@example.com

[iam alt root]
access_key = $(j "$A" access_key_id)
secret_key = $(j "$A" secret_access_key)
user_id = altroot
email = altroot@example.com
CONF
echo ready
