#!/bin/sh
# Initialise the cluster on first start, like the official image, then run postgres.
set -eu
bin=/usr/lib/postgresql/15/bin
if [ "${1:-}" = postgres ]; then
    shift
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
        user=${POSTGRES_USER:-postgres}
        pwfile=$(mktemp); printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"; chown postgres "$pwfile"
        su postgres -s /bin/sh -c "$bin/initdb -D '$PGDATA' -U '$user' --pwfile='$pwfile' --auth-host=scram-sha-256 --auth-local=trust" >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        db=${POSTGRES_DB:-$user}
        if [ "$db" != postgres ]; then
            su postgres -s /bin/sh -c "$bin/pg_ctl -D '$PGDATA' -o \"-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql\" -w start" >/dev/null
            psql -h /var/run/postgresql -U "$user" -d postgres -qc "CREATE DATABASE \"$db\" OWNER \"$user\""
            su postgres -s /bin/sh -c "$bin/pg_ctl -D '$PGDATA' -w stop" >/dev/null
        fi
    fi
    exec su postgres -s /bin/sh -c "exec $bin/postgres -D '$PGDATA' $*"
fi
exec "$@"
