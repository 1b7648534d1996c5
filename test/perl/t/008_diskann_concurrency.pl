# omen_diskann under concurrent inserts, deletes, index scans and VACUUM,
# on an index built on rows and on one created on an empty table, whose
# first 1000 rows arrive from concurrent sessions without codes and whose
# quantiser is trained while the other sessions go on.
#
# Catches: errors, crashes or failed assertions when several sessions insert
# into, delete from, scan and vacuum indexed tables at once (pgbench reports
# failed or aborted clients; every k-NN query is checked in the script: as
# many distinct rows as the table has, up to 10, in ascending distance);
# lock-order deadlocks or hangs (pgbench runs for a bounded time and must
# finish); rows whose index entries get lost under concurrent list updates,
# slot reuse and VACUUM repairs and sweeps (a full index-ordered scan must
# return every live row once; after a VACUUM the live nodes must be exactly
# the table's rows); a training that runs more than once, never, or leaves
# nodes without codes when inserts race with it (trained, no uncoded node
# after a VACUUM); and a graph degraded by the concurrent changes
# (recall@10 afterwards below 0.9).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OmenTest;

my $dim = 16;
my $seconds = 15;

my $node = omen_node('diskann_concurrency',
	conf => "autovacuum = off\njit = off\nmax_connections = 20");
my $log_offset = -s $node->logfile;

$node->safe_psql('postgres', "CREATE EXTENSION omen;\n" . omen_diskann_nodes_sql());
$node->safe_psql('postgres', "SELECT setseed(0.81);\n" . omen_clusters_sql($dim) . qq{
	CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 50) qid;
	CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 3000);
	CREATE INDEX items_dk ON items USING omen_diskann (v);
	ANALYZE items;
	CREATE TABLE grow (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	CREATE INDEX grow_dk ON grow USING omen_diskann (v);
	CREATE FUNCTION knn_failed(t text, n bigint, nd bigint, nbad bigint, want bigint)
		RETURNS void LANGUAGE plpgsql AS \$\$
	BEGIN
		RAISE EXCEPTION 'index k-NN query on % returned % rows (% distinct, % out of order), not % distinct in order',
			t, n, nd, nbad, want;
	END
	\$\$;
});
is( $node->safe_psql('postgres',
		"SELECT trained, live_nodes FROM omen_diskann_info('grow_dk')"),
	'f|0', 'the index created on the empty table has no quantiser and no node');

# For each table: the nearest rows of a random point through the index,
# counted in the same statement (one snapshot) as the rows the table has:
# min(10, rows) distinct rows in ascending distance, or the client fails
sub query_sql
{
	my ($t) = @_;
	return qq{WITH q AS MATERIALIZED (SELECT omen_rvec() AS v),
     r AS (SELECT id, v <-> (SELECT v FROM q) AS d FROM $t ORDER BY v <-> (SELECT v FROM q) LIMIT 10)
SELECT count(*) AS n, count(DISTINCT id) AS nd, count(*) FILTER (WHERE d < pd) AS nbad,
       (SELECT least(count(*), 10) FROM $t) AS want
FROM (SELECT id, d, lag(d) OVER () AS pd FROM r) s \\gset
\\if :n != :want or :nd != :want or :nbad != 0
SELECT knn_failed('$t', :n, :nd, :nbad, :want);
\\endif
};
}

my $dir = $node->basedir;
my %scripts = (
	'insert.sql' => "INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 2);\n"
	  . "INSERT INTO grow (v) SELECT omen_rvec() FROM generate_series(1, 2);\n",
	# up to 3 random ids of each table (some are gone already)
	'delete.sql' => q{\set r random(1, 1000000000)
DELETE FROM items WHERE id IN (SELECT 1 + x % (SELECT last_value FROM items_id_seq)
                               FROM unnest(ARRAY[:r, :r / 7, :r / 13]) x);
DELETE FROM grow WHERE id IN (SELECT 1 + x % (SELECT last_value FROM grow_id_seq)
                              FROM unnest(ARRAY[:r, :r / 7, :r / 13]) x);
},
	'query.sql' => "SET enable_seqscan = off;\n" . query_sql('items') . query_sql('grow'),
	'vacuum.sql' => "VACUUM items;\nVACUUM grow;\nSELECT pg_sleep(0.5);\n",);
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

# watch grow's index while pgbench runs: it must be trained in the middle
# of the run, with the clients going on
my ($untrained_seen, $trained_at, $polls) = (0, undef, 0);
while ($mix->pumpable && time - $started < $seconds + 60)
{
	$mix->pump_nb;
	$vac->pump_nb;
	my ($trained, $nodes) = split /\|/, $node->safe_psql('postgres',
		"SELECT trained, live_nodes + deleted_nodes FROM omen_diskann_info('grow_dk')");
	$polls++;
	$untrained_seen = 1 if $trained eq 'f' && $nodes > 0;
	$trained_at //= $nodes if $trained eq 't';
	usleep(100_000);
}
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
ok($untrained_seen && defined $trained_at,
	'grow_dk: seen with nodes and no quantiser, then trained, while the clients ran ('
	  . ($trained_at // 'never') . " nodes when first seen trained, $polls polls)");

my @problems = omen_log_problems($node, $log_offset);
is(scalar(@problems), 0, 'the server log shows no crash, PANIC or failed assertion')
  or diag(join("\n", @problems));

# no lost rows: before and after a final VACUUM, every live row comes out
# of a full index-ordered scan; then the index is still good
my @q = ("(SELECT v FROM queries WHERE qid = 1)", "(SELECT v FROM queries WHERE qid = 2)",
	omen_vector_literal(1, $dim));
for my $t ('items', 'grow')
{
	for my $i (0 .. $#q)
	{
		omen_check_full_scan($node, table => $t, index => "${t}_dk", op => '<->',
			q => $q[$i], name => "$t after the mix, query $i");
	}
	# INDEX_CLEANUP ON: with dead rows on fewer than 2% of the heap's pages,
	# a plain VACUUM may bypass the index pass (PostgreSQL 14+), leaving their
	# TIDs in the index; the exact counts below need the index pass.
	$node->safe_psql('postgres', "VACUUM (INDEX_CLEANUP ON) $t");
	my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
	my $info = omen_diskann_info($node, "${t}_dk");
	is("$info->{live_nodes} live nodes, trained $info->{trained}, $info->{uncoded_nodes} uncoded",
		"$rows live nodes, trained t, 0 uncoded",
		"$t: after a final VACUUM one live node per row, every node coded");
	my $nodes = omen_diskann_check_nodes($node, table => $t, index => "${t}_dk",
		name => "$t after the final VACUUM");
	is($nodes->{uncoded}, 0, "$t: no node tuple lacks its code");
	note "$t: $info->{live_nodes} live, $info->{deleted_nodes} deleted, $info->{free_slots} free, "
	  . "$nodes->{dangling} edges to free slots, quantiser error $info->{quantizer_error}";
	for my $i (0 .. $#q)
	{
		omen_check_full_scan($node, table => $t, index => "${t}_dk", op => '<->',
			q => $q[$i], name => "$t after the final VACUUM, query $i");
	}
	my $recall = omen_recall($node, table => $t, index => "${t}_dk",
		queries => 'queries', op => '<->', name => "$t after the mix");
	cmp_ok($recall, '>=', 0.9, sprintf('%s: recall@10 after the concurrent mix is %.3f >= 0.9', $t, $recall));
}

$node->stop;
done_testing();
