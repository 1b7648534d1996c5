#!/bin/bash
# omen_hnsw under heavy concurrent churn, repeated: the stress that found a
# graph whose entry point had no neighbours (recall@10 0.4 in one CI run of
# test/perl/t/005_hnsw_concurrency.pl; recall@10 0.90, 0.43 and 0.90 in
# three of 19 runs of the same stress by hand before the fix).
#   bash scripts/hnsw-churn.sh [RUNS [SECONDS [CLIENTS]]]      (default 10 30 6)
# Each run, on a throwaway cluster (autovacuum off): 3,000 rows of 16
# dimensions from 20 clusters (the TAP test's data) and an omen_hnsw index;
# then for SECONDS, CLIENTS pgbench clients inserting 2 rows, deleting up to
# 3 random ids and running a k-NN query (weights 4 / 4 / 2) while one more
# client runs VACUUM in a loop; then a final VACUUM, recall@10 of 50 queries
# against the exact answer, and the graph at rest (test/perl/hnsw_graph.sql):
# whether the entry point is live, how many live elements have an empty
# layer-0 list, and how many are reachable from the entry point.  One line
# per run; exits 1 if any run has recall@10 below 0.97, an entry point that
# is not live, an empty list, or under 99% of the live elements reachable.
# It uses the omen installed on this machine (make install first).  This is
# a benchmark-length run (about 45 s a run), not part of the tests.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -z ${OMEN_CHURN_INNER:-} ]]; then
	exec env OMEN_CHURN_INNER=1 bash "$here/cluster.sh" autovacuum=off jit=off \
		max_connections=40 -- bash "${BASH_SOURCE[0]}" "$@"
fi

runs=${1:-10}
seconds=${2:-30}
clients=${3:-6}
work=$(mktemp -d "${TMPDIR:-/tmp}/omen-churn.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

cat >"$work/insert.sql" <<'EOF'
INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 2);
EOF
cat >"$work/delete.sql" <<'EOF'
\set r random(1, 1000000000)
DELETE FROM items WHERE id IN (SELECT 1 + x % (SELECT last_value FROM items_id_seq)
                               FROM unnest(ARRAY[:r, :r / 7, :r / 13]) x);
EOF
cat >"$work/query.sql" <<'EOF'
SET enable_seqscan = off;
WITH q AS MATERIALIZED (SELECT omen_rvec() AS v)
SELECT id FROM items ORDER BY v <-> (SELECT v FROM q) LIMIT 10;
EOF
echo 'VACUUM items;' >"$work/vacuum.sql"

psql -qX -v ON_ERROR_STOP=1 -c 'DROP EXTENSION IF EXISTS omen CASCADE' -c 'CREATE EXTENSION omen' -f "$here/../test/perl/hnsw_graph.sql" >/dev/null
bad=0
for i in $(seq 1 "$runs"); do
	psql -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP TABLE IF EXISTS omen_centres, queries, items;
DROP FUNCTION IF EXISTS omen_rvec();
SELECT setseed(0.5 + $i / 1000.0);
CREATE TABLE omen_centres (c int PRIMARY KEY, x real[]);
INSERT INTO omen_centres
SELECT c, array_agg(((random() * 2 - 1) * 2)::real ORDER BY d)
FROM generate_series(1, 20) c, generate_series(1, 16) d GROUP BY c;
CREATE FUNCTION omen_rvec() RETURNS vector LANGUAGE sql VOLATILE AS \$fn\$
	SELECT array_agg(x[d] + ((random() + random() + random() + random() - 2) * sqrt(3))::real
	                 ORDER BY d)::vector
	FROM omen_centres, generate_series(1, 16) d
	WHERE c = (SELECT 1 + floor(random() * 20)::int)
\$fn\$;
CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 50) qid;
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector(16));
INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 3000);
CREATE INDEX items_hnsw ON items USING omen_hnsw (v);
ANALYZE items;
SQL
	pgbench -n -c "$clients" -j 2 -T "$seconds" -f "$work/insert.sql@4" \
		-f "$work/delete.sql@4" -f "$work/query.sql@2" >"$work/mix.out" 2>&1 &
	mix=$!
	pgbench -n -c 1 -T "$seconds" -f "$work/vacuum.sql" >"$work/vac.out" 2>&1 || bad=1
	wait "$mix" || bad=1
	psql -qX -c 'VACUUM items'
	line=$(psql -qXAt -F ' ' -v ON_ERROR_STOP=1 <<'SQL'
SET jit = off;
SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_seqscan = on;
CREATE TEMP TABLE ex AS SELECT q.qid, s.id FROM queries q,
	LATERAL (SELECT id FROM items ORDER BY v <-> q.v LIMIT 10) s;
SET enable_indexscan = on; SET enable_seqscan = off;
CREATE TEMP TABLE ap AS SELECT q.qid, s.id FROM queries q,
	LATERAL (SELECT id FROM items ORDER BY v <-> q.v LIMIT 10) s;
SELECT round((SELECT count(*) FROM ex JOIN ap USING (qid, id))::numeric
             / (SELECT count(*) FROM ex), 3), g.*
FROM omen_hnsw_graph_check('items_hnsw') g;
SQL
	)
	read -r recall entry_state live empty reached <<<"$line"
	vacs=$(grep -o 'actually processed: [0-9]*' "$work/vac.out" | grep -o '[0-9]*$' || echo '?')
	verdict=ok
	if awk -v r="$recall" -v l="$live" -v re="$reached" 'BEGIN { exit !(r < 0.97 || re < 0.99 * l) }' ||
		[[ $entry_state != 0 || $empty != 0 ]]; then
		verdict=BAD
		bad=1
	fi
	echo "run $i: recall@10 $recall, $live live, entry state $entry_state," \
		"$empty with an empty list, $reached reachable, $vacs VACUUMs: $verdict"
done
exit "$bad"
