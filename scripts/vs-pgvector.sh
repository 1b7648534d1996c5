#!/bin/bash
# scripts/vs-pgvector.sh: omen_hnsw and pgvector's HNSW side by side on one
# throwaway server, in the same hour, on the same table layout.
#
#   bash scripts/vs-pgvector.sh [ROUNDS]         (default 3)
#
# Needs pgvector built and installed for this PostgreSQL 15 (Debian has no
# package for it; the script exits 2 and says so when vector.control is
# missing).  Through scripts/bench.sh (which builds omen and omen-bench and
# starts the server), it loads the dataset into two databases: omen's
# (postgres) and one with CREATE EXTENSION vector.  It builds
# omen_hnsw WITH (storage = half, codes = sq8) and pgvector's hnsw (m = 16,
# ef_construction = 64), then runs ROUNDS alternated rounds of one-client
# sweeps over ef_search.  Each omen-bench table shows recall@10 and
# queries/s.  JSON lines go to $VS_JSON (default bench/vs-pgvector.jsonl).
#
# Settings, with their defaults:
#   VS_DATASET=fmnist  VS_QUERIES=1000
#   VS_OMEN_INDEX="USING omen_hnsw (v vector_l2_ops) WITH (storage = half, codes = sq8)"
#   VS_OMEN_SWEEP=omen.hnsw_ef_search=12,16,20,24,32,40,64
#   VS_PGV_SWEEP=hnsw.ef_search=10,16,20,24,32,40,64
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 0
fi

# Outside the server: hand ourselves to bench.sh
if [[ -z ${VS_INSIDE:-} ]]; then
	. "$here/lib.sh"
	if [[ ! -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]]; then
		echo "vs-pgvector.sh: pgvector is not installed for $("$PG_CONFIG" --version) (no vector.control); build and install pgvector 0.8 first" >&2
		exit 2
	fi
	VS_INSIDE=1 exec bash "$here/bench.sh" --script "${BASH_SOURCE[0]}" "$@"
fi

rounds=${1:-3}
ds=${VS_DATASET:-fmnist}
nq=${VS_QUERIES:-1000}
json=${VS_JSON:-bench/vs-pgvector.jsonl}
omen_index=${VS_OMEN_INDEX:-"USING omen_hnsw (v vector_l2_ops) WITH (storage = half, codes = sq8)"}
omen_sweep=${VS_OMEN_SWEEP:-omen.hnsw_ef_search=12,16,20,24,32,40,64}
pgv_sweep=${VS_PGV_SWEEP:-hnsw.ef_search=10,16,20,24,32,40,64}
pgv="host=$PGHOST port=$PGPORT user=$PGUSER dbname=omen_vs_pgvector"
common=(-d "$ds" --queries "$nq" --passes 2 --clients 1 --no-exact --no-floor --json "$json")

# The index omen-bench built on its table in database $1, by access method
IndexOf()
{
	psql -XAt -d "$1" -c "SELECT i.indexrelid::regclass FROM pg_index i
		JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid
		JOIN pg_am a ON a.oid = x.relam
		WHERE t.relname LIKE 'omen_bench_%' AND a.amname IN ($2) LIMIT 1"
}

psql -XAtq -c "CREATE DATABASE omen_vs_pgvector"
psql -XAtq -d omen_vs_pgvector -c "CREATE EXTENSION vector"
echo "vs-pgvector: pgvector $(psql -XAt -d omen_vs_pgvector -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'"), $rounds rounds, JSON lines to $json"

for r in $(seq "$rounds"); do
	if [[ $r == 1 ]]; then
		omen_use=(--index "CREATE INDEX ON %t $omen_index")
		pgv_use=(--index "CREATE INDEX ON %t USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 64)")
	else
		omen_use=(--use-index "$omen_name")
		pgv_use=(--use-index "$pgv_name")
	fi
	echo "== round $r: omen"
	bench/omen-bench run "${common[@]}" "${omen_use[@]}" --sweep "$omen_sweep"
	echo "== round $r: pgvector"
	bench/omen-bench run -c "$pgv" "${common[@]}" "${pgv_use[@]}" --sweep "$pgv_sweep"
	if [[ $r == 1 ]]; then
		omen_name=$(IndexOf postgres "'omen_hnsw', 'omen_diskann'")
		pgv_name=$(IndexOf omen_vs_pgvector "'hnsw'")
	fi
done
