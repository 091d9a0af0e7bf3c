# Sourced by the bench scripts that need PostgreSQL: a private cluster in a
# work directory (initdb and pg_ctl from Debian's postgresql package), on a
# free loopback port, fsync on as in production, run as the postgres user
# when the script runs as root. Needs bench/ports.sh sourced first.
#
#   pg_start DIR   initdb in DIR and start; sets pgbin, pgdata, pg_port
#   pg_createdb NAME -> prints the database's URL
#   pg_stop        stops it (safe to call when it never started)

pgbin="${KADENZ_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); fi
pgdata=""
pg_port=""

pg_start() {
	[ -x "$pgbin/initdb" ] || { echo "$(basename "$0"): PostgreSQL's initdb not found; install postgresql" >&2; return 1; }
	pgdata="$1"
	mkdir -p "$pgdata" && chmod 700 "$pgdata"
	[ ${#as_pg[@]} -eq 0 ] || chown postgres "$pgdata"
	pg_port="$(free_port)"
	"${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres -A trust >"$pgdata.initdb.log" 2>&1
	"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
		-o "-p $pg_port -k $pgdata -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}

pg_createdb() {
	"${as_pg[@]}" "$pgbin/createdb" -h "$pgdata" -p "$pg_port" -U postgres "$1"
	echo "postgres://postgres@127.0.0.1:$pg_port/$1?sslmode=disable"
}

pg_stop() {
	[ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1
	return 0
}
