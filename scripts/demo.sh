#!/bin/bash
# scripts/demo.sh: the demo (README's first command).
#
# From the repo root, as root on Debian bookworm:  bash scripts/demo.sh
#
# Installs what is missing, builds and installs omen, starts a throwaway
# PostgreSQL 15, loads the 60,000 Fashion-MNIST training images (784
# dimensions each) into fmnist_train(id, label, v vector(784)) and the 10,000
# test images into fmnist_test, then finds the 10 nearest training images of
# a few test images with an exact  ORDER BY v <-> q LIMIT 10  and times it.
# The cluster is removed at the end.  OMEN_DEMO_QUERIES sets how many test
# images are timed (default 20).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OMEN_ROOT"
export PATH="$PG_BINDIR:$PATH"

nqueries=${OMEN_DEMO_QUERIES:-20}
show_ids=(0 1 2)			# test images shown with their neighbours
data_dir=/usr/share/datasets/fashion-mnist
work=$(mktemp -d "${TMPDIR:-/tmp}/omen-demo.XXXXXX")
omen_on_exit "rm -rf '$work'"

step()
{
	echo
	echo "== $* =="
}

# Run quietly, show the output only if it fails
quiet()
{
	if ! "$@" >"$work/step.log" 2>&1; then
		tail -n 60 "$work/step.log"
		echo "demo: failed: $*" >&2
		exit 1
	fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

step "1/7  Packages (scripts/deps.sh)"
bash scripts/deps.sh

step "2/7  Build and install omen, and the Fashion-MNIST loader (bench/)"
quiet make PG_CONFIG="$PG_CONFIG" clean
quiet make -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
quiet make PG_CONFIG="$PG_CONFIG" install
quiet make -C bench
echo "omen installed into $("$PG_CONFIG" --pkglibdir); loader: bench/fmnist_load"
bench/fmnist_load -d "$data_dir" -s train -c
bench/fmnist_load -d "$data_dir" -s t10k -c

step "3/7  Start a throwaway PostgreSQL 15"
cluster_start shared_buffers=1GB maintenance_work_mem=1GB work_mem=64MB
echo "server: $(psql -XAtqc 'SELECT version()' | cut -d' ' -f1-2), socket $PGHOST, port $PGPORT"
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql <<'SQL'
CREATE EXTENSION omen;
CREATE TABLE fmnist_train (id int PRIMARY KEY, label int NOT NULL, v vector(784) NOT NULL)
  WITH (toast_tuple_target = 8160);  -- keep rows inline, uncompressed (README, "Storage")
CREATE TABLE fmnist_test (id int PRIMARY KEY, label int NOT NULL, v vector(784) NOT NULL)
  WITH (toast_tuple_target = 8160);
CREATE TABLE fmnist_labels (label int PRIMARY KEY, name text NOT NULL);
INSERT INTO fmnist_labels VALUES
	(0, 'T-shirt/top'), (1, 'Trouser'), (2, 'Pullover'), (3, 'Dress'), (4, 'Coat'),
	(5, 'Sandal'), (6, 'Shirt'), (7, 'Sneaker'), (8, 'Bag'), (9, 'Ankle boot');
SQL
echo "distance kernels in use: $(psql -XAtc 'SELECT omen_simd_level()')"

step "4/7  Load Fashion-MNIST: bench/fmnist_load | psql -c '\\copy ... from stdin'"
t0=$(now)
bench/fmnist_load -d "$data_dir" -s train | psql -c '\copy fmnist_train (id, label, v) FROM stdin'
t1=$(now)
bench/fmnist_load -d "$data_dir" -s t10k | psql -c '\copy fmnist_test (id, label, v) FROM stdin'
psql -c 'VACUUM ANALYZE fmnist_train, fmnist_test'
load_s=$(elapsed "$t0" "$t1")
train_rows=$(psql -At -c 'SELECT count(*) FROM fmnist_train')
test_rows=$(psql -At -c 'SELECT count(*) FROM fmnist_test')
psql <<'SQL'
\pset footer off
SELECT 'fmnist_train' AS "table", count(*) AS rows, min(vector_dims(v)) AS dims,
       pg_size_pretty(pg_total_relation_size('fmnist_train')) AS size
FROM fmnist_train
UNION ALL
SELECT 'fmnist_test', count(*), min(vector_dims(v)),
       pg_size_pretty(pg_total_relation_size('fmnist_test'))
FROM fmnist_test;
SQL
echo "loaded $train_rows training rows in $load_s s"

step "5/7  Exact nearest neighbours: ORDER BY v <-> q LIMIT 10 (no index: every row is compared)"
cat <<'TXT'
Each query below is, with q the test image's vector:
    SELECT id, label, v <-> q AS distance FROM fmnist_train ORDER BY v <-> q LIMIT 10
("Time" is psql's round trip for that query.)
TXT
# warm the cache so the first timing is not a disk read
psql -At -c 'SELECT count(*) FROM fmnist_train WHERE vector_dims(v) = 784' >/dev/null

for qid in "${show_ids[@]}"; do
	qlabel=$(psql -At -c "SELECT name FROM fmnist_test JOIN fmnist_labels USING (label) WHERE id = $qid")
	nn=$(psql -At -c "SELECT id FROM fmnist_train ORDER BY v <-> (SELECT v FROM fmnist_test WHERE id = $qid) LIMIT 1")
	echo
	echo "Test image $qid ($qlabel) and its nearest training image $nn:"
	paste -d' ' \
		<(bench/fmnist_load -d "$data_dir" -s t10k -o "$qid" -n 1 -a | sed 's/^/    |/; s/$/|/') \
		<(bench/fmnist_load -d "$data_dir" -s train -o "$nn" -n 1 -a | sed 's/^/   |/; s/$/|/')
	psql -v qid="$qid" <<'SQL'
\pset footer off
SELECT v AS q FROM fmnist_test WHERE id = :qid \gset
\echo
\echo The 10 training images closest to test image :qid:
\timing on
SELECT n.id, l.name AS label, round(n.distance::numeric, 1) AS distance
FROM (SELECT id, label, v <-> :'q' AS distance
      FROM fmnist_train
      ORDER BY v <-> :'q'
      LIMIT 10) n
JOIN fmnist_labels l USING (label)
ORDER BY n.distance, n.id;
\timing off
SQL
done

# Time nqueries queries (test images 0..n-1), output discarded; psql's
# \timing line is the client-side round trip of one query.
{
	for ((qid = 0; qid < nqueries; qid++)); do
		echo "SELECT v AS q FROM fmnist_test WHERE id = $qid \\gset"
		echo '\timing on'
		echo "SELECT id FROM fmnist_train ORDER BY v <-> :'q' LIMIT 10 \\g /dev/null"
		echo '\timing off'
	done
} >"$work/timed.sql"
psql -f "$work/timed.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n >"$work/times"
median_ms=$(awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }' "$work/times")
min_ms=$(head -n 1 "$work/times")
max_ms=$(tail -n 1 "$work/times")
timed=$(wc -l <"$work/times")

# How often the 10 neighbours share the query's label (a 10-NN classifier)
agree=$(psql -At <<SQL
SELECT round(100.0 * avg((n.label = q.label)::int), 1)
FROM (SELECT * FROM fmnist_test WHERE id < $nqueries) q,
     LATERAL (SELECT label FROM fmnist_train ORDER BY v <-> q.v LIMIT 10) n
SQL
)


# the exact answers, kept before any index exists, to measure recall
psql -c "CREATE TABLE demo_exact_nn AS
         SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM fmnist_train ORDER BY v <-> q.v LIMIT 10) s) AS ids
         FROM fmnist_test q WHERE q.id < $nqueries"
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# measure_index NAME CREATE-SQL INFO-SQL: build the index, show its shape
# and plan, time the queries twice in one session (the first pass pays for
# this backend's first touch of each shared-memory page it reads: minor
# page faults, which huge_pages avoids; the second is what a pooled
# connection sees), and measure recall.  Sets build_s, cold_ms, warm_ms,
# recall.
measure_index() {
	local name=$1 create=$2 info=$3 t0 t1
	t0=$(now)
	psql -c "$create"
	t1=$(now)
	build_s=$(elapsed "$t0" "$t1")
	psql <<SQL
\pset footer off
$info
EXPLAIN (COSTS OFF) SELECT id FROM fmnist_train ORDER BY v <-> (SELECT v FROM fmnist_test WHERE id = 0) LIMIT 10;
SQL
	cat "$work/timed.sql" "$work/timed.sql" >"$work/timed2.sql"
	psql -f "$work/timed2.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' >"$work/times_$name"
	cold_ms=$(head -n "$nqueries" "$work/times_$name" | median)
	warm_ms=$(tail -n "$nqueries" "$work/times_$name" | median)
	recall=$(psql -At <<SQL
SELECT round(avg((SELECT count(*) FROM unnest(i.ids) x WHERE x = ANY (e.ids))::numeric / 10), 3)
FROM (SELECT q.id, (SELECT array_agg(id) FROM (SELECT id FROM fmnist_train ORDER BY v <-> q.v LIMIT 10) s) AS ids
      FROM fmnist_test q WHERE q.id < $nqueries) i
JOIN demo_exact_nn e USING (id)
SQL
)
	psql -c "DROP INDEX $name"
}

step "6/7  The same queries through an omen_diskann index (the default choice)"
cat <<'TXT'
    CREATE INDEX ON fmnist_train USING omen_diskann (v);   -- R = 32, L = 100, 2-bit codes
The planner now answers ORDER BY v <-> q LIMIT 10 from the graph: approximate,
so "recall" below is the share of the exact 10 neighbours the index returns.
The graph is walked on node pages holding 2-bit codes (0.25 bytes per
dimension); only the final candidates are re-scored with full vectors.
TXT
measure_index fmnist_train_diskann \
	'CREATE INDEX fmnist_train_diskann ON fmnist_train USING omen_diskann (v)' \
	"SELECT pg_size_pretty(pages * 8192::bigint) AS index_size,
	        pg_size_pretty(node_bytes) AS node_pages_only, live_nodes,
	        round(avg_degree::numeric, 1) AS avg_degree, code_bytes,
	        round(quantizer_error::numeric, 3) AS code_error
	 FROM omen_diskann_info('fmnist_train_diskann');"
dk_build_s=$build_s dk_cold_ms=$cold_ms dk_warm_ms=$warm_ms dk_recall=$recall

step "7/7  The same queries through an omen_hnsw index (read-optimised)"
cat <<'TXT'
    CREATE INDEX ON fmnist_train USING omen_hnsw (v);   -- m = 16, ef_construction = 64
TXT
measure_index fmnist_train_hnsw \
	'CREATE INDEX fmnist_train_hnsw ON fmnist_train USING omen_hnsw (v)' \
	"SELECT pg_size_pretty(size_bytes) AS index_size, live_nodes, max_level,
	        round(avg_degree_layer0::numeric, 1) AS avg_degree
	 FROM omen_hnsw_info('fmnist_train_hnsw');"
hn_build_s=$build_s hn_cold_ms=$cold_ms hn_warm_ms=$warm_ms hn_recall=$recall

cat <<'TXT'

    CREATE INDEX ON fmnist_train USING omen_hnsw (v) WITH (storage = half, codes = sq8);
The same graph, with vectors kept as 16-bit floats and the walk reading an
8-bit code per dimension; each batch of results is re-scored with the
stored vectors, so rows still come nearest first.
TXT
measure_index fmnist_train_hnsw_sq8 \
	'CREATE INDEX fmnist_train_hnsw_sq8 ON fmnist_train USING omen_hnsw (v) WITH (storage = half, codes = sq8)' \
	"SELECT pg_size_pretty(size_bytes) AS index_size, live_nodes, storage, codes
	 FROM omen_hnsw_info('fmnist_train_hnsw_sq8');"

echo
echo "== Summary =="
printf '  %-34s %s\n' \
	"vectors loaded" "$train_rows training + $test_rows test images, 784 dimensions each" \
	"load time (60,000 rows, \\copy)" "$load_s s ($(awk -v n="$train_rows" -v s="$load_s" 'BEGIN { printf "%d", n / s }') rows/s)" \
	"exact 10-NN query, median" "$median_ms ms over $timed queries (min $min_ms, max $max_ms)" \
	"neighbours with the query's label" "$agree% (over the same $nqueries queries)" \
	"omen_diskann build (R=32, L=100)" "$dk_build_s s" \
	"  10-NN query, median" "$dk_warm_ms ms (omen.diskann_search_list_size = 100; first pass in a new session: $dk_cold_ms ms)" \
	"  recall@10" "$dk_recall (over the same $nqueries queries)" \
	"omen_hnsw build (m=16, ef_c=64)" "$hn_build_s s" \
	"  10-NN query, median" "$hn_warm_ms ms (omen.hnsw_ef_search = 40; first pass in a new session: $hn_cold_ms ms)" \
	"  recall@10" "$hn_recall (over the same $nqueries queries)" \
	"omen_hnsw, half + sq8 codes, build" "$build_s s" \
	"  10-NN query, median" "$warm_ms ms (omen.hnsw_ef_search = 40; first pass in a new session: $cold_ms ms)" \
	"  recall@10" "$recall (over the same $nqueries queries)" \
	"distance kernels" "$(psql -At -c 'SELECT omen_simd_level()')"
echo
echo "The cluster is removed now; scripts/cluster.sh starts one to try queries by hand."
