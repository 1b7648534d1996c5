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
# ef_construction = 64), timed by psql on every CPU, each VS_BUILDS times in
# turn, every build after a CHECKPOINT and a sync: on a server just started
# and loaded the first builds run slower (omen's 7.1 then 6.9, 6.3, 5.7 s in
# one such run), and one build each, omen's first, favoured pgvector.  Then
# it runs ROUNDS
# alternated rounds of one-client sweeps over ef_search.  Each omen-bench table shows recall@10 and
# queries/s.  JSON lines go to $VS_JSON (default bench/vs-pgvector.jsonl).
#
# Each round measures both forms of the statement: LIMIT $2 (a parameter,
# so PostgreSQL plans every execution again) and LIMIT 10 written into it
# (--const-limit: after five executions the plan is cached).  With two or
# more CPUs the server's processes run on the last CPU and omen-bench on the
# first: client and server sharing a CPU made one-client figures jump
# between runs (omen_hnsw at ef_search 20: 3,400 and 5,900 queries/s).
#
# And each with the client waiting for results in two ways (VS_WAIT):
# asleep in poll(), as libpq does (block), and on a busy CPU (spin,
# omen-bench --spin).  On this VM a client CPU that went idle for more than
# about 0.15 ms costs about 0.07 ms to wake again, once per query and the
# same for both extensions; spin takes that cost out, so its ratio is
# closer to the ratio of the servers' own work.
#
# Each round ends with VS_CLIENTS' other counts (default: 2), sleeping
# clients only, with no pinning: with as many clients as CPUs, the CPUs
# stay busy and nobody waits to be woken.
#
# VS_PIN=same puts the one client on the server's CPU instead: a client
# that sleeps there is woken by the server's process on the same CPU, with
# no idle CPU to wake (a context switch each way, as on a laptop or in a
# container with one CPU); VS_PIN=0 leaves both to the scheduler.
#
# VS_HALTPOLL=NS sets the guest's halt polling
# (/sys/module/haltpoll/parameters/guest_halt_poll_ns, root) for the run
# and restores it after.  This machine boots with it at 0, so an idle CPU
# halts at once and costs a VM exit to wake; the kernel's default is
# 200000 (poll up to 0.2 ms first), which is closer to bare metal.
#
# Settings, with their defaults:
#   VS_DATASET=fmnist  VS_QUERIES=1000  VS_LIMIT="param const"  VS_WAIT="block spin"
#   VS_CLIENTS="1 2"  VS_PIN=1  VS_BUILDS=2 (builds of each index, alternated;
#   the queries use the last)
#   VS_OMEN_INDEX="USING omen_hnsw (v vector_l2_ops) WITH (storage = half, codes = sq8)"
#   VS_OMEN_SWEEP=omen.hnsw_ef_search=12,16,20,24,32,40,64
#   VS_PGV_SWEEP=hnsw.ef_search=10,16,20,24,32,40,64
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
	exit 0
fi

# Outside the server: hand ourselves to bench.sh
if [[ -z ${VS_INSIDE:-} ]]; then
	. "$here/lib.sh"
	if [[ ! -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]]; then
		echo "vs-pgvector.sh: pgvector is not installed for $("$PG_CONFIG" --version) (no vector.control); build and install pgvector 0.8 first" >&2
		exit 2
	fi
	if [[ -z ${VS_HALTPOLL:-} ]]; then
		VS_INSIDE=1 exec bash "$here/bench.sh" --script "${BASH_SOURCE[0]}" "$@"
	fi
	# The guest's halt polling for this run only (a KVM guest's haltpoll
	# cpuidle driver; root), restored on the way out
	hp=/sys/module/haltpoll/parameters/guest_halt_poll_ns
	if [[ ! -w $hp ]]; then
		echo "vs-pgvector.sh: VS_HALTPOLL needs a writable $hp (a KVM guest with the haltpoll cpuidle driver, as root)" >&2
		exit 2
	fi
	old_hp=$(cat "$hp")
	trap 'echo "$old_hp" > "$hp"' EXIT
	echo "$VS_HALTPOLL" > "$hp"
	echo "vs-pgvector: guest_halt_poll_ns = $(cat "$hp") for this run (was $old_hp)"
	VS_INSIDE=1 bash "$here/bench.sh" --script "${BASH_SOURCE[0]}" "$@"
	exit $?
fi

rounds=${1:-3}
ds=${VS_DATASET:-fmnist}
nq=${VS_QUERIES:-1000}
json=${VS_JSON:-bench/vs-pgvector.jsonl}
omen_index=${VS_OMEN_INDEX:-"USING omen_hnsw (v vector_l2_ops) WITH (storage = half, codes = sq8)"}
omen_sweep=${VS_OMEN_SWEEP:-omen.hnsw_ef_search=12,16,20,24,32,40,64}
pgv_sweep=${VS_PGV_SWEEP:-hnsw.ef_search=10,16,20,24,32,40,64}
pgv="host=$PGHOST port=$PGPORT user=$PGUSER dbname=omen_vs_pgvector"
common=(-d "$ds" --queries "$nq" --passes 2 --no-exact --no-floor --json "$json")
limits=${VS_LIMIT:-param const}
waits=${VS_WAIT:-block spin}
nclients=${VS_CLIENTS:-1 2}
ncpu=$(nproc)

# Load both databases and build both indexes first, on every CPU (the
# builds use parallel workers), timed by psql
psql -XAtq -c "CREATE DATABASE omen_vs_pgvector"
psql -XAtq -d omen_vs_pgvector -c "CREATE EXTENSION vector"
bench/omen-bench load -d "$ds"
bench/omen-bench load -c "$pgv" -d "$ds"
table=$(psql -XAt -c "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'omen_bench_%'
	AND obj_description(oid, 'pg_class') LIKE 'omen-bench:%' ORDER BY relname LIMIT 1")
# Each build starts after a checkpoint and a sync, so neither pays for
# writing out the tables just loaded or the index built before it
Build()
{
	local t0 t1
	psql -XAtq -d "$1" -c "DROP INDEX IF EXISTS $4" -c CHECKPOINT
	sync
	t0=$(date +%s.%N)
	psql -XAtq -d "$1" -c "SET maintenance_work_mem = '2GB'" -c "$2"
	t1=$(date +%s.%N)
	echo "vs-pgvector: built $3 in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s," \
		"$(psql -XAt -d "$1" -c "SELECT pg_size_pretty(pg_relation_size('$4'))")"
}
for b in $(seq "${VS_BUILDS:-2}"); do
	Build postgres "CREATE INDEX omen_vs_idx ON $table $omen_index" "omen ($omen_index)" omen_vs_idx
	Build omen_vs_pgvector "CREATE INDEX pgv_vs_idx ON $table USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 64)" \
		"pgvector hnsw (m = 16, ef_construction = 64)" pgv_vs_idx
done

# Put the server's processes (the postmaster, its children, and every
# backend forked later) on CPUs $1
pm=$(head -1 "$(psql -XAt -c 'SHOW data_directory')/postmaster.pid")
ServerCpus()
{
	local pid
	for pid in $pm $(pgrep -P "$pm"); do
		taskset -a -c -p "$1" "$pid" >/dev/null
	done
}

echo "vs-pgvector: pgvector $(psql -XAt -d omen_vs_pgvector -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'"), $rounds rounds, JSON lines to $json"

for r in $(seq "$rounds"); do
	for nc in $nclients; do
		client=()
		if [[ $nc == 1 && ${VS_PIN:-1} == 1 && $ncpu -ge 2 ]]; then
			ServerCpus $((ncpu - 1))
			client=(taskset -c 0)
			echo "vs-pgvector: server on CPU $((ncpu - 1)), omen-bench on CPU 0"
		elif [[ $nc == 1 && ${VS_PIN:-1} == same ]]; then
			ServerCpus $((ncpu - 1))
			client=(taskset -c $((ncpu - 1)))
			echo "vs-pgvector: server and omen-bench on CPU $((ncpu - 1))"
		else
			ServerCpus "0-$((ncpu - 1))"
		fi
		for limit in $limits; do
			for wait in $waits; do
				# spinning clients would take the CPUs the server needs
				[[ $nc -gt 1 && $wait == spin ]] && continue
				opts=(--clients "$nc")
				[[ $limit == const ]] && opts+=(--const-limit)
				[[ $wait == spin ]] && opts+=(--spin)
				tag="LIMIT $limit, $wait"
				[[ $nc -gt 1 ]] && tag+=", $nc clients"
				echo "== round $r, $tag: omen"
				"${client[@]}" bench/omen-bench run "${common[@]}" "${opts[@]}" --use-index omen_vs_idx \
					--label "omen, $tag" --sweep "$omen_sweep"
				echo "== round $r, $tag: pgvector"
				"${client[@]}" bench/omen-bench run -c "$pgv" "${common[@]}" "${opts[@]}" --use-index pgv_vs_idx \
					--label "pgvector, $tag" --sweep "$pgv_sweep"
			done
		done
	done
done
