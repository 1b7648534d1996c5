# omen_diskann under a stream of deletes and inserts keeps the recall and
# the size of a freshly built index.
#
# 20,000 clustered vectors, an index built on them, then 10 rounds of:
# delete 10% of the rows, VACUUM, insert as many new rows.  At the end the
# index is compared with one built fresh on a copy of the final rows.
#
# Catches: a graph that degrades as IP-DiskANN deletes repair it in place
# and inserts reuse freed slots (recall@10 over 100 queries more than 2
# points below the fresh build's); space that deletes free but inserts do
# not reuse, or a sweep that never runs (index more than 1.3 times the
# fresh build's size); VACUUM that leaves dead rows in the index or loses
# live ones (live nodes differ from the table's rows after a VACUUM, or a
# live node's heap TID is not a row of the table); deleted nodes whose
# repair is left unfinished.  Per-round recall, size and node counts are
# printed (note) so a regression shows where it starts.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OmenTest;

my $dim = 16;
my $nrows = 20000;
my $rounds = 10;

my $node = omen_node('diskann_stream',
	conf => "autovacuum = off\njit = off\nshared_buffers = '128MB'\nmax_wal_size = '1GB'");
my $log_offset = -s $node->logfile;

# centres, rows and 100 held-out queries from one seeded session
$node->safe_psql('postgres', "CREATE EXTENSION omen;\n" . omen_diskann_nodes_sql());
$node->safe_psql('postgres', "SELECT setseed(0.91);\n" . omen_clusters_sql($dim) . qq{
	CREATE TABLE items (id int PRIMARY KEY, v vector($dim));
	INSERT INTO items SELECT i, omen_rvec() FROM generate_series(1, $nrows) i;
	CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 100) qid;
	CREATE INDEX items_dk ON items USING omen_diskann (v vector_l2_ops);
	ANALYZE items;
});

my $size_sql = "SELECT pg_relation_size('items_dk')";

sub round_note
{
	my ($what, $recall) = @_;
	my $info = omen_diskann_info($node, 'items_dk');
	note sprintf(
		'%-9s recall@10 %.3f, %6.2f MB (%d pages: %d node, %d vector), '
		  . '%d live, %d deleted, %d free slots, avg degree %.1f',
		$what, $recall, $node->safe_psql('postgres', $size_sql) / 1048576,
		$info->{pages}, $info->{node_pages}, $info->{vector_pages},
		$info->{live_nodes}, $info->{deleted_nodes}, $info->{free_slots},
		$info->{avg_degree});
	return $info;
}

my $recall0 = omen_recall($node, table => 'items', index => 'items_dk',
	queries => 'queries', op => '<->', name => 'after the build');
my $info0 = round_note('build', $recall0);
is($info0->{trained}, 't', 'the index built on 20000 rows has a quantiser');

my $next_id = $nrows + 1;
my ($swept, $reused) = (0, 0);
for my $round (1 .. $rounds)
{
	# delete 10% (seeded), VACUUM, insert as many new rows
	my $deleted = $node->safe_psql('postgres', qq{
		SELECT setseed(0.5 + $round / 100.0) \\gset
		WITH d AS (DELETE FROM items WHERE random() < 0.1 RETURNING 1) SELECT count(*) FROM d;
	});
	$node->safe_psql('postgres', 'VACUUM items');
	my $vac = omen_diskann_info($node, 'items_dk');
	is($vac->{live_nodes}, $nrows - $deleted,
		"round $round: after VACUUM the index has one live node per row ($deleted rows deleted)");
	$swept++ if $vac->{free_slots} > 0 && $vac->{deleted_nodes} == 0;

	my $last = $next_id + $deleted - 1;
	$node->safe_psql('postgres', qq{
		SELECT setseed(0.7 + $round / 100.0);
		INSERT INTO items SELECT i, omen_rvec() FROM generate_series($next_id, $last) i;
	});
	$next_id = $last + 1;
	my $after = omen_diskann_info($node, 'items_dk');
	$reused += $vac->{free_slots} - $after->{free_slots};

	my $r = omen_recall($node, table => 'items', index => 'items_dk',
		queries => 'queries', op => '<->', name => "round $round");
	round_note("round $round", $r);
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), $nrows,
	"the table has $nrows rows after the rounds");
cmp_ok($swept, '>', 0, "the sweep freed slots in $swept of the $rounds VACUUMs");
cmp_ok($reused, '>', 0, "inserts reused $reused freed slots");

# a final VACUUM: no dead row, no unfinished delete, every row indexed once
$node->safe_psql('postgres', 'VACUUM items');
my $nodes = omen_diskann_check_nodes($node, table => 'items', index => 'items_dk',
	name => 'after the rounds and a VACUUM');
note "nodes: $nodes->{live} live, $nodes->{deleted} deleted, $nodes->{free} free, "
  . "$nodes->{dangling} edges to free slots, $nodes->{uncoded} uncoded";
omen_check_full_scan($node, table => 'items', index => 'items_dk', op => '<->',
	q => '(SELECT v FROM queries WHERE qid = 1)', name => 'after the rounds');

# the same rows, indexed from scratch
$node->safe_psql('postgres', q{
	CREATE TABLE fresh AS SELECT * FROM items;
	CREATE INDEX fresh_dk ON fresh USING omen_diskann (v vector_l2_ops);
	ANALYZE fresh;
});
my $recall = omen_recall($node, table => 'items', index => 'items_dk',
	queries => 'queries', op => '<->', name => 'after the rounds');
my $recall_fresh = omen_recall($node, table => 'fresh', index => 'fresh_dk',
	queries => 'queries', op => '<->', name => 'fresh build');
my $size = $node->safe_psql('postgres', $size_sql);
my $size_fresh = $node->safe_psql('postgres', "SELECT pg_relation_size('fresh_dk')");
my $fresh = omen_diskann_info($node, 'fresh_dk');
note sprintf('fresh     recall@10 %.3f, %6.2f MB (%d pages: %d node, %d vector), avg degree %.1f',
	$recall_fresh, $size_fresh / 1048576, $fresh->{pages}, $fresh->{node_pages},
	$fresh->{vector_pages}, $fresh->{avg_degree});

cmp_ok($recall, '>=', $recall_fresh - 0.02,
	sprintf('recall@10 after %d rounds (%.3f) is within 2 points of a fresh build (%.3f)',
		$rounds, $recall, $recall_fresh));
cmp_ok($size, '<=', 1.3 * $size_fresh,
	sprintf('the index after %d rounds (%.2f MB) is at most 1.3 times a fresh build (%.2f MB): %.2fx',
		$rounds, $size / 1048576, $size_fresh / 1048576, $size / $size_fresh));

my @problems = omen_log_problems($node, $log_offset);
is(scalar(@problems), 0, 'the server log shows no crash, PANIC or failed assertion')
  or diag(join("\n", @problems));

$node->stop;
done_testing();
