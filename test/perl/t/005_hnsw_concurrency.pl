# omen_hnsw under concurrent inserts, deletes, index scans and VACUUM.
#
# Catches: errors, crashes or failed assertions when several sessions insert
# into, delete from, scan and vacuum one indexed table at once (pgbench
# reports failed or aborted clients; every k-NN query is checked in the
# script: 10 distinct rows, in ascending distance); lock-order deadlocks or
# hangs (pgbench runs for a bounded time and must finish); rows whose index
# entries get lost or become unreachable through the graph under concurrent
# link updates and VACUUM repairs (a full index-ordered scan must return
# every live row once); and a graph degraded by the concurrent changes
# (recall@10 afterwards below 0.9).  Once that was an entry point with no
# neighbours at all: inserts that met a deleted entry point at their own
# top level found no candidates, and such an element could become the
# entry point, so queries returned the few rows linked to it and then the
# sweep (recall 0.4 in one CI run); the graph check below finds that
# directly.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OmenTest;

my $dim = 16;
my $seconds = 15;

my $node = omen_node('hnsw_concurrency',
	conf => "autovacuum = off\njit = off\nmax_connections = 20");
my $log_offset = -s $node->logfile;

# setseed lasts for its session: seed in the session that draws the centres
$node->safe_psql('postgres',
	"SELECT setseed(0.51);\nCREATE EXTENSION omen;\n" . omen_clusters_sql($dim) . omen_hnsw_graph_sql());
$node->safe_psql('postgres', qq{
	SELECT setseed(0.52);
	CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 50) qid;
	CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 3000);
	CREATE INDEX items_hnsw ON items USING omen_hnsw (v);
	ANALYZE items;
	CREATE FUNCTION knn_failed(n bigint, nd bigint, nbad bigint) RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		RAISE EXCEPTION 'index k-NN query returned % rows (% distinct, % out of order), not 10 distinct in order',
			n, nd, nbad;
	END
	\$\$;
});

my $dir = $node->basedir;
my %scripts = (
	'insert.sql' => "INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 2);\n",
	# up to 3 random ids (some are gone already)
	'delete.sql' => q{\set r random(1, 1000000000)
DELETE FROM items WHERE id IN (SELECT 1 + x % (SELECT last_value FROM items_id_seq)
                               FROM unnest(ARRAY[:r, :r / 7, :r / 13]) x);
},
	# the 10 nearest rows of a random point through the index: 10 distinct
	# rows in ascending distance (they come from the first ef_search batch),
	# or the client fails
	'query.sql' => q{SET enable_seqscan = off;
WITH q AS MATERIALIZED (SELECT omen_rvec() AS v),
     r AS (SELECT id, v <-> (SELECT v FROM q) AS d FROM items ORDER BY v <-> (SELECT v FROM q) LIMIT 10)
SELECT count(*) AS n, count(DISTINCT id) AS nd, count(*) FILTER (WHERE d < pd) AS nbad
FROM (SELECT id, d, lag(d) OVER () AS pd FROM r) s \gset
\if :n != 10 or :nd != 10 or :nbad != 0
SELECT knn_failed(:n, :nd, :nbad);
\endif
},
	'vacuum.sql' => "VACUUM items;\nSELECT pg_sleep(0.5);\n",);
PostgreSQL::Test::Utils::append_to_file("$dir/$_", $scripts{$_}) for keys %scripts;

my @conn = ('-h', $node->host, '-p', $node->port);
my ($out, $err, $vout, $verr) = ('', '', '', '');
my $started = time;
my $mix = IPC::Run::start(
	[
		'pgbench', '-n', '-c', '4', '-j', '2', '-T', $seconds, @conn,
		'-f', "$dir/insert.sql\@4", '-f', "$dir/delete.sql\@2", '-f', "$dir/query.sql\@4",
		'postgres'
	],
	'>', \$out, '2>', \$err);
my $vac = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '1', '-T', $seconds, @conn, '-f', "$dir/vacuum.sql", 'postgres' ],
	'>', \$vout, '2>', \$verr);
$mix->finish;
$vac->finish;
my $elapsed = time - $started;
note "pgbench (mix):\n$out$err";
note "pgbench (vacuum):\n$vout$verr";

is($mix->result(0), 0, 'pgbench with 4 clients (insert, delete, k-NN query) exits 0');
is($err, '', 'no client reported an error');
like($out, qr/number of failed transactions: 0 /, 'no failed transactions');
cmp_ok($elapsed, '<=', $seconds + 30, "pgbench finished in bounded time (${elapsed}s)");
for my $s ('insert', 'delete', 'query')
{
	my ($n) = $out =~ /SQL script \d+: \S*\Q$s\E\.sql\n - weight: \d+ \(targets [^)]*\)\n - (\d+) transactions/;
	cmp_ok($n // 0, '>', 100, "the $s script ran many times (" . ($n // 0) . ')');
}
is($vac->result(0), 0, 'the VACUUM client exits 0');
is($verr, '', 'VACUUM reported no error');
my ($nvac) = $vout =~ /number of transactions actually processed: (\d+)/;
cmp_ok($nvac // 0, '>=', 3, 'VACUUM ran several times during the mix (' . ($nvac // 0) . ')');

my @problems = omen_log_problems($node, $log_offset);
is(scalar(@problems), 0, 'the server log shows no crash, PANIC or failed assertion')
  or diag(join("\n", @problems));

# no lost rows: before and after a final VACUUM, every live row comes out
# of a full index-ordered scan
my @q = ("(SELECT v FROM queries WHERE qid = 1)", "(SELECT v FROM queries WHERE qid = 2)",
	omen_vector_literal(1, $dim));
for my $i (0 .. $#q)
{
	omen_check_full_scan($node, table => 'items', index => 'items_hnsw', op => '<->',
		q => $q[$i], name => "after the mix, query $i");
}
# INDEX_CLEANUP ON: with dead rows on fewer than 2% of the heap's pages,
# a plain VACUUM may bypass the index pass (PostgreSQL 14+), leaving their
# TIDs in the index; the exact counts below need the index pass.
$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) items');
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
my $info = omen_index_info($node, 'items_hnsw');
is("$info->{heap_tids} heap TIDs, $info->{deleted_nodes} deleted nodes",
	"$rows heap TIDs, 0 deleted nodes",
	'after a final VACUUM the index holds exactly the live rows');
for my $i (0 .. $#q)
{
	omen_check_full_scan($node, table => 'items', index => 'items_hnsw', op => '<->',
		q => $q[$i], name => "after the final VACUUM, query $i");
}

# the graph is still good: the entry point is live and linked, and queries
# starting there can reach the rest
omen_hnsw_check_graph($node, index => 'items_hnsw', name => 'after the final VACUUM');
my $recall = omen_recall($node, table => 'items', index => 'items_hnsw',
	queries => 'queries', op => '<->', name => 'after the mix');
cmp_ok($recall, '>=', 0.9, sprintf('recall@10 after the concurrent mix is %.3f >= 0.9', $recall));

$node->stop;
done_testing();
