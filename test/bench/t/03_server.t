#!/bin/bash
# omen-bench end to end against a throwaway cluster (scripts/lib.sh), on tiny
# data: a 2,000 x 16 synthetic set and a small table of "the user's".
# Checks: exact-scan recall is 1.0 (also after every streaming round, against
# fresh ground truth), every JSON line is well-formed (perl's JSON::PP), the
# EXPLAIN check says when the index is not used, bad input gets one line and
# a non-zero exit, the user's table is never changed, only omen_bench_*
# tables with the tool's comment are dropped, plots are real PNGs.
# Needs root (the server runs as postgres) and omen installed.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tap.sh"
root=$(cd "$here/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
	echo "1..0 # SKIP needs root to start a throwaway server as postgres"
	exit 0
fi
. "$root/scripts/lib.sh"
export PATH="$PG_BINDIR:$PATH"
ob=$root/bench/omen-bench
scratch=$(mktemp -d "${TMPDIR:-/tmp}/omen-bench-e2e.XXXXXX")
omen_on_exit "rm -rf '$scratch'"
export OMEN_BENCH_CACHE=$scratch/cache

if ! cluster_start >"$scratch/cluster.log" 2>&1; then
	cat "$scratch/cluster.log" >&2
	ok 1 "a throwaway cluster starts"
	done_testing
	exit 1
fi
sql() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
if ! sql -c 'CREATE EXTENSION omen' 2>"$scratch/ext.log"; then
	cat "$scratch/ext.log" >&2
	ok 1 "CREATE EXTENSION omen (is omen installed? make install)"
	done_testing
	exit 1
fi

# jsel FILE CONDITION FIELD: FIELD of each JSON line where the perl CONDITION
# on $o holds (booleans print as 1/0)
jsel()
{
	perl -MJSON::PP -ne 'my $o = decode_json($_); print $o->{'"$3"'} // "null", "\n" if '"$2"';' "$1"
}

json=$scratch/run.jsonl
plots=$scratch/plots
syn=synth:n=2000,dim=16

# --- a full run: floor, exact, an index the plan cannot use ---------------
run_cmd out "$ob" run -d $syn -q 50 -k 10 --clients 1,2 \
	--index "CREATE INDEX ON %t USING btree (v)" --json "$json" --plot "$plots"
is "$rc" 0 "run on $syn exits 0"
[[ $rc -eq 0 ]] || diag "$out"
nlines=$(wc -l <"$json")
nparsed=$(perl -MJSON::PP -ne 'eval { decode_json($_); 1 } and $n++; END { print $n + 0 }' "$json")
ok $(( nlines > 0 && nlines == nparsed ? 0 : 1 )) "every JSON line is well-formed JSON ($nparsed of $nlines)"
kinds=$(jsel "$json" 1 kind | sort -u | tr '\n' ' ')
is "$kinds" "build floor gt load query server " "JSON kinds: server, gt, load, floor, query, build"
is "$(jsel "$json" '$o->{kind} eq "query" && $o->{label} eq "exact"' recall | tr '\n' ' ')" "1 1 " \
	"exact scan recall@10 is 1.0 with 1 and 2 clients"
is "$(jsel "$json" '$o->{label} eq "exact"' plan | sort -u)" "Seq Scan" "exact scan plan is a Seq Scan"
is "$(jsel "$json" '$o->{label} eq "exact"' plan_as_expected | sort -u)" "1" "exact scan: plan as expected"
is "$(jsel "$json" '$o->{kind} eq "query" && $o->{label} eq "btree"' plan_as_expected | sort -u)" "0" \
	"btree on v: the JSON says the plan is not the index"
like "$out" "WARNING: the plan does not use index omen_bench_synth_2000x16_v_idx \(it is: Seq Scan\)" \
	"btree on v: the run says the index is not used"
is "$(jsel "$json" '$o->{kind} eq "query" && $o->{label} eq "btree"' recall | sort -u)" "1" \
	"btree run (really a seq scan) has recall 1.0 too"
floor=$(jsel "$json" '$o->{kind} eq "floor" && $o->{clients} == 1' qps)
perl -e "exit !($floor > 100)"
ok $? "round-trip floor measured: $floor statements/s"
like "$(jsel "$json" '$o->{kind} eq "build"' index_bytes)" "^[1-9][0-9]*$" "build: index size reported"
like "$out" "table omen_bench_synth_2000x16: created by omen-bench" "says which table it created"
is "$(sql -c "SELECT count(*), obj_description('omen_bench_synth_2000x16'::regclass, 'pg_class') LIKE 'omen-bench:%',
	(SELECT reloptions::text FROM pg_class WHERE relname = 'omen_bench_synth_2000x16'),
	(SELECT count(*) FROM pg_index WHERE indrelid = 'omen_bench_synth_2000x16'::regclass AND indisprimary)
	FROM omen_bench_synth_2000x16")" "2000|t|{toast_tuple_target=8160}|1" \
	"table: 2000 rows, tool's comment, toast_tuple_target = 8160, primary key"
is "$(head -c 4 "$plots/recall-qps.png" | od -An -c | tr -d ' ')" "211PNG" "recall-qps.png is a PNG"

# --- reuse, settings, bad input --------------------------------------------
run_cmd out "$ob" exact -d $syn -q 20 --clients 1 --no-floor --set max_parallel_workers_per_gather=0 -o -
is "$rc" 0 "exact again exits 0"
like "$out" "already holds this dataset .* reusing it" "the loaded table is reused"
is "$(grep '"kind":"query"' <<<"$out" | perl -MJSON::PP -ne 'print decode_json($_)->{recall}')" "1" \
	"exact with -o -: the JSON line on stdout has recall 1"

for m in ip cosine; do
	run_cmd out "$ob" exact -d $syn -q 20 --clients 1 --no-floor -m $m -o "$scratch/$m.jsonl"
	is "$rc:$(jsel "$scratch/$m.jsonl" '$o->{kind} eq "query"' recall)" "0:1" "exact scan recall is 1.0 with --metric $m"
done

run_cmd out "$ob" exact -d $syn -q 20 --clients 1 --set omen.no_such_setting=1
is "$rc" 1 "unknown setting: exit 1"
like "$out" "the server has no setting \"omen.no_such_setting\"" "unknown setting: says so"
is "$(grep -c . <<<"$out" | tr -d ' ')" "$(grep -c '^server:\|^generated\|^== \|^ground truth\|^table \|the server has no setting' <<<"$out")" \
	"unknown setting: the error is one line among the normal ones"
run_cmd out "$ob" run -d $syn -q 20 --clients 1 --no-exact --no-floor --use-index omen_bench_synth_2000x16_v_idx \
	--sweep nosuch_setting=1,2
is "$rc" 1 "unknown sweep setting: exit 1"
like "$out" "no setting \"nosuch_setting\"" "unknown sweep setting: says so"
run_cmd out "$ob" exact -d $syn -q 20 --clients 1 --set enable_seqscan=maybe
is "$rc" 1 "bad setting value: exit 1"
like "$out" "cannot set enable_seqscan = 'maybe'" "bad setting value: says so"
run_cmd out "$ob" run -d $syn -q 20 --clients 1 --no-exact --no-floor --use-index no_such_index
is "$rc" 1 "nonexistent index: exit 1"
like "$out" "index \"no_such_index\" does not exist on table omen_bench_synth_2000x16" "nonexistent index: says so"
run_cmd out "$ob" run -d $syn -q 20 --clients 1 --no-exact --no-floor --index "CREATE INDEX ON %t USING no_such_am (v)"
is "$rc" 1 "unknown access method: exit 1"
like "$out" "CREATE INDEX failed: access method \"no_such_am\" does not exist" "unknown access method: says so"
sql -c "CREATE INDEX bench_test_btree ON omen_bench_synth_2000x16 (v)"
run_cmd out "$ob" run -d $syn -q 20 --clients 1 --no-exact --no-floor --use-index bench_test_btree \
	--sweep enable_seqscan=on,off --verbose
is "$rc" 0 "sweep over an existing index exits 0"
is "$(grep -c '^btree ' <<<"$out")" "2" "sweep: one row per value"
like "$out" "Limit" "--verbose prints the plans"

sql -c 'CREATE TABLE omen_bench_mine (id int)'
run_cmd out "$ob" exact -d $syn -q 20 --clients 1 --name mine
is "$rc" 1 "a table with the prefix not made by omen-bench: exit 1"
like "$out" "omen_bench_mine exists but omen-bench did not create it" "...and it says so"
is "$(sql -c "SELECT to_regclass('omen_bench_mine') IS NOT NULL")" "t" "...and leaves it alone"

# --- an omen index, if this build has one (a table this small needs
# enable_seqscan = off for the planner to take it) ------------------------
if [[ $(sql -c "SELECT count(*) FROM pg_am WHERE amname = 'omen_hnsw'") == 1 ]]; then
	run_cmd out "$ob" run -d $syn -q 50 --clients 1 --no-floor --no-exact \
		--index "CREATE INDEX ON %t USING omen_hnsw (v vector_l2_ops)" --set enable_seqscan=off \
		-o "$scratch/hnsw.jsonl"
	is "$rc" 0 "omen_hnsw: run exits 0"
	is "$(jsel "$scratch/hnsw.jsonl" '$o->{kind} eq "query"' plan_as_expected)" "1" "omen_hnsw: the plan uses the index"
	r=$(jsel "$scratch/hnsw.jsonl" '$o->{kind} eq "query"' recall)
	perl -e "exit !($r >= 0.5)"
	ok $? "omen_hnsw: recall@10 $r"
	# LIMIT 10 written into the statement: the same rows, so the same recall
	hidx=$(sql -c "SELECT c.relname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
		WHERE a.amname = 'omen_hnsw' AND c.relname LIKE 'omen_bench_synth_2000x16%' LIMIT 1")
	run_cmd out "$ob" run -d $syn -q 50 --clients 1 --no-floor --no-exact --const-limit \
		--use-index "$hidx" --set enable_seqscan=off -o "$scratch/hnswc.jsonl"
	is "$rc" 0 "--const-limit: run exits 0"
	is "$(jsel "$scratch/hnswc.jsonl" '$o->{kind} eq "query"' const_limit)" "1" "--const-limit: the JSON line says so"
	is "$(jsel "$scratch/hnswc.jsonl" '$o->{kind} eq "query"' plan_as_expected)" "1" "--const-limit: the plan uses the index"
	is "$(jsel "$scratch/hnswc.jsonl" '$o->{kind} eq "query"' recall)" "$r" "--const-limit: the same recall@10 ($r)"
	# waiting for results on a busy CPU: the same rows again, floor included
	run_cmd out "$ob" run -d $syn -q 50 --clients 1 --no-exact --spin \
		--use-index "$hidx" --set enable_seqscan=off -o "$scratch/hnsws.jsonl"
	is "$rc" 0 "--spin: run exits 0"
	is "$(jsel "$scratch/hnsws.jsonl" '$o->{kind} eq "query"' spin)" "1" "--spin: the query line says so"
	is "$(jsel "$scratch/hnsws.jsonl" '$o->{kind} eq "floor"' spin)" "1" "--spin: the floor line says so"
	is "$(jsel "$scratch/hnsws.jsonl" '$o->{kind} eq "query"' recall)" "$r" "--spin: the same recall@10 ($r)"
	is "$(jsel "$scratch/hnsw.jsonl" '$o->{kind} eq "query"' spin)" "0" "without --spin the line says spin false"
else
	echo "ok $((++_tap_n)) # SKIP omen_hnsw is not in this build"
fi

# --- the user's own table: only read ----------------------------------------
sql <<'SQL'
CREATE TABLE items (item_id bigint PRIMARY KEY, emb vector(8));
INSERT INTO items SELECT i * 3, ARRAY(SELECT round(sin(i * j) * 10) FROM generate_series(1, 8) j)::real[]::vector
FROM generate_series(1, 300) i;
CREATE INDEX items_emb_idx ON items (emb);
SQL
before=$(sql -c "SELECT md5(string_agg(item_id || ':' || emb::text, ',' ORDER BY item_id)) FROM items")
ntables=$(sql -c "SELECT count(*) FROM pg_class WHERE relkind = 'r'")
run_cmd out "$ob" exact -d table:items.emb,id=item_id --in-place -q 20 --clients 1 -o "$scratch/items.jsonl"
is "$rc" 0 "in place on the user's table: exit 0"
[[ $rc -eq 0 ]] || diag "$out"
is "$(jsel "$scratch/items.jsonl" '$o->{kind} eq "query"' recall)" "1" "in place: exact recall 1.0 (ids are item_id, with ties)"
like "$out" "table items: yours, queried in place" "in place: says the table is only read"
run_cmd out "$ob" run -d table:items.emb,id=item_id --in-place -q 20 --clients 1 --index "CREATE INDEX ON %t (emb)"
is "$rc" 2 "in place: --index refused (it would change the user's table)"
run_cmd out "$ob" run -d table:items.emb,id=item_id --in-place -q 20 --clients 1 --no-floor --use-index items_emb_idx -o "$scratch/items2.jsonl"
is "$(jsel "$scratch/items2.jsonl" '$o->{kind} eq "query" && $o->{label} ne "exact"' plan_as_expected)" "0" \
	"in place: --use-index of a btree: reported as not used"
is "$(sql -c "SELECT md5(string_agg(item_id || ':' || emb::text, ',' ORDER BY item_id)) FROM items")" "$before" \
	"the user's table is unchanged"
is "$(sql -c "SELECT count(*) FROM pg_class WHERE relkind = 'r'")" "$ntables" "in place: no table created"
run_cmd out "$ob" exact -d table:items.emb,id=item_id -q 20 --clients 1 --no-floor -o "$scratch/items3.jsonl"
is "$(jsel "$scratch/items3.jsonl" '$o->{kind} eq "query"' recall)" "1" "copy of the user's table: exact recall 1.0"
is "$(sql -c 'SELECT count(*) FROM omen_bench_copy_items')" "300" "copy of the user's table: omen_bench_copy_items, 300 rows"

# --- write workloads ----------------------------------------------------------
run_cmd out "$ob" insert -d $syn -q 20 --rows 100 --clients 1,2 --index "CREATE INDEX ON %t (id)" -o "$scratch/ins.jsonl"
is "$rc" 0 "insert workload exits 0"
is "$(jsel "$scratch/ins.jsonl" '$o->{kind} eq "insert"' clients | tr '\n' ' ')" "1 2 " "insert: one client, then two"
is "$(jsel "$scratch/ins.jsonl" '$o->{kind} eq "delete"' rows)" "200" "insert: the 200 inserted rows deleted again"
is "$(sql -c 'SELECT count(*), max(id) FROM omen_bench_synth_2000x16')" "2000|1999" "insert: the table is back to its rows"
like "$(sql -c "SELECT obj_description('omen_bench_synth_2000x16'::regclass, 'pg_class')")" "changed by the insert workload" \
	"insert: the table is marked changed"

run_cmd out "$ob" stream -d $syn -q 30 --rounds 2 --fraction 0.2 -o "$scratch/stream.jsonl" --plot "$plots"
is "$rc" 0 "stream (no index) exits 0"
like "$out" "table omen_bench_synth_2000x16: dropped \(omen-bench made it; it held other or changed data\)" \
	"stream: the changed table is loaded again"
is "$(jsel "$scratch/stream.jsonl" '$o->{kind} eq "stream"' round | tr '\n' ' ')" "0 1 2 " "stream: rounds 0, 1, 2"
is "$(jsel "$scratch/stream.jsonl" '$o->{kind} eq "stream"' recall | tr '\n' ' ')" "1 1 1 " \
	"stream: exact recall 1.0 after every round against fresh ground truth"
is "$(sql -c 'SELECT count(*), count(DISTINCT id), max(id) FROM omen_bench_synth_2000x16')" "2000|2000|2799" \
	"stream: 2000 live rows, 2 x 400 replaced with new ids up to 2799"
is "$(head -c 4 "$plots/stream-recall.png" | od -An -c | tr -d ' ')" "211PNG" "stream-recall.png is a PNG"
run_cmd out "$ob" stream -d table:items.emb,id=item_id -q 10 --rounds 3 --fraction 0.5 -o "$scratch/stream2.jsonl"
is "$(jsel "$scratch/stream2.jsonl" '$o->{kind} eq "stream"' recall | tr '\n' ' ')" "1 1 1 1 " \
	"stream on a copied table (deleted vectors come back under new ids): recall 1.0"
is "$(sql -c "SELECT md5(string_agg(v::text, ';' ORDER BY v::text)) FROM omen_bench_copy_items")" \
	"$(sql -c "SELECT md5(string_agg(emb::text, ';' ORDER BY emb::text)) FROM items")" \
	"stream on a copied table: after 3 rounds the live vectors are the table's vectors again"

run_cmd out "$ob" plot "$json" "$scratch/stream.jsonl" --plot "$scratch/replot"
is "$rc" 0 "plot from JSON lines files exits 0"
is "$(ls "$scratch/replot" | grep -c 'png$')" "2" "plot: recall-qps.png and stream-recall.png"

# --- clean --------------------------------------------------------------------
run_cmd out "$ob" clean
is "$rc" 0 "clean exits 0"
like "$out" "dropped table omen_bench_synth_2000x16" "clean drops the tool's tables"
like "$out" "left alone: table omen_bench_mine" "clean leaves a look-alike table"
is "$(sql -c "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")" \
	"items,omen_bench_mine" "after clean: only the user's tables are left"

done_testing
