#!/bin/bash
# scripts/bench.sh: run omen-bench against a throwaway PostgreSQL 15.
#
# From the repo root, as root on Debian bookworm:
#   bash scripts/bench.sh COMMAND [OPTIONS]      (the omen-bench arguments)
#   bash scripts/bench.sh exact --queries 200 --clients 1
#   bash scripts/bench.sh run -d synth:n=1m,dim=128 \
#       --index "CREATE INDEX ON %t USING omen_hnsw (v vector_l2_ops) WITH (m=16)" \
#       --sweep omen.hnsw_ef_search=10,20,40,80 --json bench/results.jsonl --plot bench/plots
#
# Installs missing packages (scripts/deps.sh), builds and installs omen
# (optimised, no assertions), builds bench/omen-bench, starts a throwaway
# cluster with benchmark settings, creates the extension, runs
#   bench/omen-bench ARGS...
# and removes the cluster.  Benchmark settings: shared_buffers=2GB,
# maintenance_work_mem=2GB, max_parallel_maintenance_workers=2, work_mem=64MB,
# effective_cache_size=8GB, jit=off, and wal_consistency_checking off (the
# test clusters turn it on; it writes a full page image with every generic
# WAL record, which would make index writes look slow).  Add or override
# server settings with OMEN_BENCH_SETTINGS="name=value ...".
# OMEN_BENCH_SKIP_BUILD=1 skips the omen build and install (omen-bench is
# always rebuilt if its sources changed).
#   bash scripts/bench.sh --script FILE [ARGS]
# runs `bash FILE ARGS` on the throwaway server instead of one omen-bench
# command (scripts/vs-pgvector.sh uses it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OMEN_ROOT"
export PATH="$PG_BINDIR:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/omen-bench.XXXXXX")
omen_on_exit "rm -rf '$work'"

# Run quietly, show the output only if it fails
quiet()
{
	if ! "$@" >"$work/step.log" 2>&1; then
		tail -n 60 "$work/step.log"
		echo "bench.sh: failed: $*" >&2
		exit 1
	fi
}

case "${1:-}" in
	-h | --help | help | "")
		sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		echo
		if [[ -x bench/omen-bench ]]; then bench/omen-bench --help; fi
		exit 0
		;;
esac

bash scripts/deps.sh >"$work/deps.log" 2>&1 || { cat "$work/deps.log"; exit 1; }
if [[ ${OMEN_BENCH_SKIP_BUILD:-0} != 1 ]]; then
	echo "bench.sh: building and installing omen (optimised, no assertions)" >&2
	quiet make PG_CONFIG="$PG_CONFIG" clean
	quiet make -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
	quiet make PG_CONFIG="$PG_CONFIG" install
fi
quiet make -C bench PG_CONFIG="$PG_CONFIG" omen-bench

settings=(shared_buffers=2GB maintenance_work_mem=2GB max_parallel_maintenance_workers=2
	work_mem=64MB effective_cache_size=8GB jit=off)
# shellcheck disable=SC2206
settings+=(${OMEN_BENCH_SETTINGS:-})
cluster_start "${settings[@]}"
# cluster_start insists on wal_consistency_checking = generic; benchmarks want it off
psql -XAtq -c "ALTER SYSTEM SET wal_consistency_checking = ''" -c 'SELECT pg_reload_conf()' >/dev/null
psql -XAtq -c 'CREATE EXTENSION IF NOT EXISTS omen' >/dev/null
echo "bench.sh: throwaway server PGHOST=$PGHOST PGPORT=$PGPORT (${settings[*]}, wal_consistency_checking off)" >&2

status=0
if [[ ${1:-} == --script ]]; then
	shift
	bash "$@" || status=$?
else
	bench/omen-bench "$@" || status=$?
fi
exit "$status"
