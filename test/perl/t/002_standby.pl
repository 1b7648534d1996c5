# A streaming standby returns the same answers as its primary.
#
# Catches: changes to vector tables (and, once indexes are added below, index
# pages) that are not WAL-logged or whose redo differs from what the primary
# wrote (wal_consistency_checking = 'generic' stops the standby with FATAL on a
# mismatch, and catch-up then times out), through cycles of DELETE, VACUUM and
# INSERT as in PostgreSQL's contrib/bloom t/001_wal.pl.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OmenTest;

my $dim = 16;

# Index tests add a line here; each runs after the table is created.
my @index_ddl = (
	# "CREATE INDEX items_hnsw ON items USING omen_hnsw (v vector_l2_ops)",
);
# ... and make the compared queries use the index: 'SET enable_seqscan = off;'
my $query_settings = '';

my $primary = omen_node('primary', allows_streaming => 1);
my $standby = omen_standby($primary, 'standby');

$primary->safe_psql('postgres', qq{
	CREATE EXTENSION omen;
	CREATE TABLE items (id int, v vector($dim));
});
$primary->safe_psql('postgres', $_) for @index_ddl;
$primary->safe_psql('postgres', omen_vectors_sql('items', 1, 3000, $dim));

# The same queries on both nodes: counts, an order-independent checksum of
# all rows, and the 10 nearest neighbours under each distance for a few
# query vectors.
my $queries = "$query_settings\nSELECT count(*), md5(string_agg(id || ':' || v::text, ',' ORDER BY id)) FROM items;\n";
for my $k (1 .. 3)
{
	my $q = omen_vector_literal($k, $dim);
	for my $op ('<->', '<#>', '<=>', '<+>')
	{
		$queries .= "SELECT '$op', string_agg(id || ':' || round(d::numeric, 3), ' ') FROM "
		  . "(SELECT id, v $op $q AS d FROM items ORDER BY v $op $q LIMIT 10) s;\n";
	}
}

# Compare the query results of primary and standby, and make sure they are
# not trivially equal (the table is not empty)
sub check_replay
{
	my ($step, $expect_rows) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	$primary->wait_for_catchup($standby);
	my $on_primary = $primary->safe_psql('postgres', $queries);
	my $on_standby = $standby->safe_psql('postgres', $queries);
	is($on_standby, $on_primary, "$step: standby answers as the primary does");
	like($on_primary, qr/^$expect_rows\|/, "$step: primary has $expect_rows rows");
	return;
}

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is in recovery (replaying the primary\'s WAL)');
check_replay('initial', 3000);

my $rows = 3000;
for my $i (1 .. 10)
{
	$primary->safe_psql('postgres', "DELETE FROM items WHERE id % 10 = $i % 10;");
	$rows = $primary->safe_psql('postgres', 'SELECT count(*) FROM items');
	check_replay("delete $i", $rows);

	$primary->safe_psql('postgres', 'VACUUM items;');
	check_replay("vacuum $i", $rows);

	my ($from, $to) = (100000 + $i * 1000, 100000 + $i * 1000 + 299);
	$primary->safe_psql('postgres', omen_vectors_sql('items', $from, $to, $dim));
	$rows += 300;
	check_replay("insert $i", $rows);
}

$standby->stop;
$primary->stop;
done_testing();
