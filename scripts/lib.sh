# scripts/lib.sh: shell helpers shared by test.sh, demo.sh and the benchmarks.
# Source it from bash:  . "$(dirname "$0")/lib.sh"
#
# Throwaway clusters:
#   cluster_start [name=value ...]
#       initdb a temporary cluster owned by the postgres user and start it on a
#       free port, unix socket only (listen_addresses = ''), with
#       wal_consistency_checking = 'generic' and fsync = off.  Each name=value
#       is a server setting appended to postgresql.conf (e.g.
#       shared_buffers=1GB maintenance_work_mem=2GB); later ones win.
#       Exports PGHOST PGPORT PGUSER PGDATABASE for psql, pg_regress and libpq,
#       and OMEN_CLUSTER_DIR / OMEN_CLUSTER_LOG.  The cluster is stopped and
#       its directory removed when the script exits, however it exits.
#   cluster_stop
#       do that now.
# Clean-up:
#   omen_on_exit 'command'   run command when the script exits (last first).

OMEN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BINDIR=/usr/lib/postgresql/15/bin
if [[ -x $PG_CONFIG ]]; then
	PG_BINDIR=$("$PG_CONFIG" --bindir)
fi
export PG_CONFIG

_omen_exit_cmds=()

# Register a command to run at exit; run in reverse order of registration
omen_on_exit()
{
	_omen_exit_cmds+=("$1")
}

_omen_run_exit()
{
	local i
	for ((i = ${#_omen_exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_omen_exit_cmds[i]}" || true
	done
	_omen_exit_cmds=()
}
trap _omen_run_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command as the postgres user (the server refuses to run as root)
as_postgres()
{
	if [[ $(id -un) == postgres ]]; then
		"$@"
	elif [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		sudo -u postgres -- "$@"
	fi
}

# A TCP port nothing on this machine listens on
_omen_free_port()
{
	local port tries
	for ((tries = 0; tries < 200; tries++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "cluster: no free port found" >&2
	return 1
}

cluster_start()
{
	local dir port opt name value
	if [[ -n ${OMEN_CLUSTER_DIR:-} ]]; then
		echo "cluster: already running in $OMEN_CLUSTER_DIR" >&2
		return 1
	fi
	id postgres >/dev/null 2>&1 || { echo "cluster: no postgres user (is postgresql-15 installed? run scripts/deps.sh)" >&2; return 1; }
	dir=$(mktemp -d "${TMPDIR:-/tmp}/omen-cluster.XXXXXX")
	OMEN_CLUSTER_DIR=$dir
	OMEN_CLUSTER_LOG=$dir/server.log
	omen_on_exit cluster_stop
	chmod 700 "$dir"
	mkdir "$dir/sock"
	chown -R postgres: "$dir" 2>/dev/null || true
	port=$(_omen_free_port)

	as_postgres "$PG_BINDIR/initdb" -D "$dir/data" -A trust -U postgres \
		-E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
		echo "cluster: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		return 1
	}
	{
		echo "# added by scripts/lib.sh cluster_start"
		echo "port = $port"
		echo "unix_socket_directories = '$dir/sock'"
		echo "listen_addresses = ''"
		echo "wal_consistency_checking = 'generic'"
		echo "fsync = off"
		echo "lc_messages = 'C'"
		for opt in "$@"; do
			name=${opt%%=*}
			value=${opt#*=}
			[[ $opt == *=* && -n $name ]] || { echo "cluster: bad setting '$opt' (want name=value)" >&2; return 1; }
			echo "$name = '${value//\'/\'\'}'"
		done
	} >>"$dir/data/postgresql.conf"

	if ! as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$OMEN_CLUSTER_LOG" \
		-w -t 120 start >/dev/null; then
		echo "cluster: server did not start; log:" >&2
		tail -n 30 "$OMEN_CLUSTER_LOG" >&2
		return 1
	fi
	export OMEN_CLUSTER_DIR OMEN_CLUSTER_LOG
	export PGHOST=$dir/sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
	# wal_consistency_checking is what turns a replay bug into a failure: insist
	if [[ $("$PG_BINDIR/psql" -XAtqc 'SHOW wal_consistency_checking') != generic ]]; then
		echo "cluster: wal_consistency_checking is not 'generic'" >&2
		return 1
	fi
}

cluster_stop()
{
	local dir=${OMEN_CLUSTER_DIR:-}
	[[ -n $dir ]] || return 0
	if [[ -f $dir/data/postmaster.pid ]]; then
		as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	unset OMEN_CLUSTER_DIR OMEN_CLUSTER_LOG PGHOST PGPORT PGUSER PGDATABASE
}
