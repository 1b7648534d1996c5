#!/bin/bash
# Run a command against a throwaway PostgreSQL 15 cluster, then remove it.
#   bash scripts/cluster.sh [name=value ...] [-- command args...]
# Settings name=value go to postgresql.conf (wal_consistency_checking =
# 'generic' is always on).  The command sees PGHOST/PGPORT/PGUSER/PGDATABASE;
# without one, an interactive psql starts.  The cluster is stopped and deleted
# when the command ends.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

settings=()
while [[ $# -gt 0 ]]; do
	if [[ $1 == -- ]]; then
		shift
		break
	fi
	settings+=("$1")
	shift
done
[[ $# -gt 0 ]] || set -- "$PG_BINDIR/psql"

cluster_start "${settings[@]}"
echo "cluster: PGHOST=$PGHOST PGPORT=$PGPORT (log $OMEN_CLUSTER_LOG)" >&2
status=0
"$@" || status=$?
exit "$status"
