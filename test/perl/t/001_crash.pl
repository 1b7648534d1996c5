# Crash recovery keeps every committed vector and no uncommitted one.
#
# Catches: WAL that does not cover a change to a table of vectors (or, once
# indexes are added below, to an index page), so that rows or index entries
# are lost, duplicated or wrong after an immediate shutdown; generic WAL
# records whose replay differs from the page written (wal_consistency_checking
# = 'generic' makes recovery FATAL, so the restart fails); and uncommitted
# rows that become visible after recovery.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OmenTest;

my $dim = 24;

# Index tests add a line here; each runs after the table is created.
my @index_ddl = (
	# "CREATE INDEX items_hnsw ON items USING omen_hnsw (v vector_l2_ops)",
);
# ... and make the compared queries use the index: 'SET enable_seqscan = off;'
my $query_settings = '';

# wal_level = replica, so even the table created below is WAL-logged
my $node = omen_node('crash', allows_streaming => 1);

$node->safe_psql('postgres', qq{
	CREATE EXTENSION omen;
	CREATE TABLE items (id int PRIMARY KEY, v vector($dim));
});
$node->safe_psql('postgres', $_) for @index_ddl;

# Some rows before a checkpoint, more after it, then updates and deletes:
# recovery replays the second half from WAL on top of the checkpointed first.
$node->safe_psql('postgres', omen_vectors_sql('items', 1, 2000, $dim));
$node->safe_psql('postgres', 'CHECKPOINT');
$node->safe_psql('postgres', omen_vectors_sql('items', 2001, 4000, $dim));
$node->safe_psql('postgres', q{
	UPDATE items SET v = v * v WHERE id % 7 = 0;
	DELETE FROM items WHERE id % 11 = 0;
});

my $q = omen_vector_literal(1, $dim);
my $queries = qq{$query_settings
	SELECT count(*), round(sum(v <-> $q)::numeric, 1) FROM items;
	SELECT md5(string_agg(id || ':' || v::text, ',' ORDER BY id)) FROM items;
	SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM items ORDER BY v <-> $q LIMIT 10) s;
	SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM items ORDER BY v <=> $q LIMIT 10) s;
};
my $before = $node->safe_psql('postgres', $queries);
my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
is($rows, 4000 - int(4000 / 11), 'committed rows are all there before the crash');

# A transaction in flight at the crash: its rows reach the WAL (the commit
# that follows flushes it) but must not survive recovery.
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe(omen_vectors_sql('items', 900001, 900100, $dim));
$open->query_safe('UPDATE items SET v = v + v WHERE id <= 100');
$node->safe_psql('postgres', 'CREATE TABLE flush_wal (x int); INSERT INTO flush_wal VALUES (1)');

my $log_offset = -s $node->logfile;
$node->stop('immediate');
$open->quit;
$node->start;
ok($node->log_contains(qr/database system was interrupted|not properly shut down/, $log_offset)
	  && $node->log_contains(qr/redo done/, $log_offset),
	'the server went through crash recovery and replayed WAL');

is($node->safe_psql('postgres', $queries), $before,
	'after crash recovery: count, distances, row text and nearest neighbours unchanged');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id > 900000'),
	'0', 'rows of the uncommitted transaction are gone');
is($node->safe_psql('postgres', 'SELECT count(*) FROM flush_wal'),
	'1', 'the transaction committed just before the crash survived');

# The recovered table (and its indexes) still take writes and answer queries.
$node->safe_psql('postgres', omen_vectors_sql('items', 5001, 5100, $dim));
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'), $rows + 100,
	'inserts after recovery work');
is( $node->safe_psql(
		'postgres', "SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5050) LIMIT 1"),
	'5050', 'a row is its own nearest neighbour after recovery');

# A second crash right after recovery replays the post-recovery WAL too.
my $after = $node->safe_psql('postgres', $queries);
$log_offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok($node->log_contains(qr/redo done/, $log_offset), 'second crash: WAL replayed');
is($node->safe_psql('postgres', $queries), $after, 'second crash recovery: results unchanged');

$node->stop;
done_testing();
