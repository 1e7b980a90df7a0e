#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the deployment tests and print its URL on stdout.
#
#   scripts/start-postgres.sh [DIR] [PORT]     start (or find running) -> postgresql://... URL
#   scripts/start-postgres.sh stop [DIR]       stop it
#
# DIR defaults to /tmp/pysplay-pg, PORT to 55432. Needs Debian's postgresql package
# (apt-get install -y postgresql). As root the server runs as the 'postgres' user (PostgreSQL
# refuses to run as root). Tests read the URL from $PYSPLAY_PG_URL, e.g.
#   export PYSPLAY_PG_URL=$(scripts/start-postgres.sh)
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
    action=stop; dir=${2:-/tmp/pysplay-pg}
else
    action=start; dir=${1:-/tmp/pysplay-pg}
fi
port=${2:-55432}
[ "$action" = stop ] && port=0

bindir=""
for candidate in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then bindir=$candidate; fi
done
if [ -z "$bindir" ]; then
    echo "start-postgres: no PostgreSQL server found (apt-get install -y postgresql)" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$action" = stop ]; then
    [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    exit 0
fi

mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$dir/data" -A trust -U splay --no-sync >"$dir/initdb.log" 2>&1 || {
        echo "start-postgres: initdb failed, see $dir/initdb.log" >&2; exit 1; }
fi
if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >&2 || { echo "start-postgres: the server did not start, see $dir/server.log" >&2; exit 1; }
fi
port=$(head -n 4 "$dir/data/postmaster.pid" | tail -n 1)
as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U splay -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'splay_test'" | grep -q 1 ||
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U splay splay_test
echo "postgresql://splay@127.0.0.1:$port/splay_test"
