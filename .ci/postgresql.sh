#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the test suite and print its
# SQLAlchemy URL (the only line on stdout; everything else goes to stderr):
#
#   url=$(.ci/postgresql.sh)   # postgresql+psycopg://irtcat:irtcat@127.0.0.1:PORT/irtcat_test
#
# Installs Debian's postgresql package if no server is present, then makes a
# fresh cluster in a new /tmp directory: trust auth, listening only on
# 127.0.0.1 on the first free port from 55432, unix socket in that directory,
# role irtcat (password irtcat) owning database irtcat_test. The server is
# left running; each run makes a new cluster. Needs root (apt, runuser);
# does not use systemd or pg_ctlcluster.
set -euo pipefail

servers() { compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V || true; }

if [[ -z $(servers) ]]; then
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2; }
    apt_install || { apt-get update -q >&2 && apt_install; }
fi
server=$(servers | tail -n 1)   # the newest version
[[ -n $server ]] || { echo >&2 "no PostgreSQL server under /usr/lib/postgresql"; exit 1; }
bin=${server%/postgres}

port=55432   # first port nothing answers on
while (: </dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done

# /tmp rather than $TMPDIR: postgres must reach it and socket paths are short.
dir=$(mktemp -d /tmp/irtcat-pg.XXXXXX)
chown postgres: "$dir"
as_postgres() { runuser -u postgres -- "$@"; }   # initdb and postgres refuse root

as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >&2
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off   # throwaway data
EOF
# Another server may take the port between the probe and the start: try the next ones.
for attempt in 1 2 3 4 5; do
    while (: </dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -o "-p $port" -w start >&2 && break
    [[ $attempt == 5 ]] && { cat "$dir/log" >&2; exit 1; }
    port=$((port + 1))
done

"$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE irtcat LOGIN PASSWORD 'irtcat'" \
    -c "CREATE DATABASE irtcat_test OWNER irtcat" >&2

echo >&2 "$("$bin/postgres" -V) running in $dir (stop: runuser -u postgres -- $bin/pg_ctl -D $dir/data stop)"
echo "postgresql+psycopg://irtcat:irtcat@127.0.0.1:$port/irtcat_test"
