# OmenTest.pm: what omen's TAP tests share.
#
# Every node made here runs with wal_consistency_checking = 'generic', so a
# generic WAL record whose replay does not reproduce the page exactly stops
# crash recovery or the standby with a FATAL error, and the test fails.
#
# Run through scripts/test.sh, or by hand as an unprivileged user:
#   PATH=/usr/lib/postgresql/15/bin:$PATH TESTDIR=$(mktemp -d) \
#   PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
#   PERL5LIB=/usr/lib/postgresql/15/lib/pgxs/src/test/perl:test/perl prove test/perl/t/
package OmenTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';
use File::Basename qw(dirname);

our @EXPORT = qw(omen_node omen_standby omen_vectors_sql omen_vector_literal
  omen_clusters_sql omen_recall omen_check_full_scan omen_index_info
  omen_log_problems omen_diskann_info omen_diskann_nodes_sql omen_diskann_check_nodes
  omen_hnsw_graph_sql omen_hnsw_check_graph);

# A started node named $name with the extension installable.  %params go to
# PostgreSQL::Test::Cluster::init (allows_streaming => 1 gives wal_level =
# replica, so every change is WAL-logged); conf => "..." is appended to
# postgresql.conf.
sub omen_node
{
	my ($name, %params) = @_;
	my $conf = delete $params{conf} // '';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%params);
	$node->append_conf('postgresql.conf',
		"wal_consistency_checking = 'generic'\n$conf");
	$node->start;
	_check_wal_checking($node);
	return $node;
}

# A streaming standby of $primary (which needs allows_streaming => 1), made
# from a fresh base backup, started and checked like omen_node's nodes
sub omen_standby
{
	my ($primary, $name) = @_;
	my $backup = "${name}_backup";
	my $slot = "${name}_slot";

	# A physical slot keeps the primary's WAL until the standby has it: with
	# wal_consistency_checking every generic record carries page images, and
	# a burst of VACUUM and inserts wrote WAL faster than the walsender sent
	# it, so a checkpoint recycled a segment the standby still needed
	$primary->safe_psql('postgres',
		"SELECT pg_create_physical_replication_slot('$slot')");
	$primary->backup($backup);
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	$standby->append_conf('postgresql.conf', "primary_slot_name = '$slot'");
	$standby->start;
	_check_wal_checking($standby);
	return $standby;
}

sub _check_wal_checking
{
	my ($node) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 2;

	is($node->safe_psql('postgres', 'SHOW wal_consistency_checking'),
		'generic', $node->name . ': wal_consistency_checking is generic');
	return;
}

# SQL that inserts rows ids $from..$to into $table (id int, v vector) with
# $dim-dimensional vectors that depend only on the id, so two runs (or a
# primary and a recomputation) produce the same values.  Elements are
# multiples of 0.01 in [-100, 100], exact in float4 text form.
sub omen_vectors_sql
{
	my ($table, $from, $to, $dim) = @_;

	return qq{INSERT INTO $table (id, v)
SELECT i, (SELECT array_agg(round((100 * sin(i * 7.3 + j * 1.7))::numeric, 2)::real ORDER BY j)
           FROM generate_series(1, $dim) j)::vector
FROM generate_series($from, $to) i;};
}

# A quoted vector literal for query number $k: '[...]'
sub omen_vector_literal
{
	my ($k, $dim) = @_;
	my @x = map { sprintf('%.2f', 100 * cos($k * 3.1 + $_ * 0.9)) } 1 .. $dim;

	return "'[" . join(',', @x) . "]'";
}

# --- helpers for the index tests (omen_hnsw, omen_diskann) -----------------

# SQL that makes clustered random vectors: a table omen_centres of
# $opt{centres} (20) centres of $dim dimensions, uniform in
# [-$opt{spread}, $opt{spread}] (2), and a function omen_rvec() returning a
# point near a randomly chosen centre with Gaussian-ish noise (standard
# deviation 1 per dimension).  Call setseed() first for repeatable data.
sub omen_clusters_sql
{
	my ($dim, %opt) = @_;
	my $n = $opt{centres} // 20;
	my $spread = $opt{spread} // 2;

	return qq{
CREATE TABLE omen_centres (c int PRIMARY KEY, x real[]);
INSERT INTO omen_centres
SELECT c, array_agg(((random() * 2 - 1) * $spread)::real ORDER BY d)
FROM generate_series(1, $n) c, generate_series(1, $dim) d GROUP BY c;
CREATE FUNCTION omen_rvec() RETURNS vector LANGUAGE sql VOLATILE AS \$fn\$
	SELECT array_agg(x[d] + ((random() + random() + random() + random() - 2) * sqrt(3))::real
	                 ORDER BY d)::vector
	FROM omen_centres, generate_series(1, $dim) d
	WHERE c = (SELECT 1 + floor(random() * $n)::int)
\$fn\$;};
}

# recall@k of an index: for every row (qid, v) of the table $a{queries},
# the k ids nearest to v under operator $a{op} from the index scan (LIMIT k,
# enable_seqscan off) against the exact answer (sequential scan and sort).
# Checks (as tests) that the approximate query's plan scans $a{index} and
# the exact one scans no index, and that the index returned k rows for each
# query.  $a{settings}: SQL run first (e.g. SET omen.hnsw_ef_search = 100).
# Returns the recall, a number in [0, 1].
sub omen_recall
{
	my ($node, %a) = @_;
	my $db = $a{db} // 'postgres';
	my $k = $a{k} // 10;
	my $settings = $a{settings} // '';
	my $name = $a{name} // "recall of $a{index}";
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my $knn = "SELECT q.qid, s.id FROM $a{queries} q, LATERAL "
	  . "(SELECT id FROM $a{table} ORDER BY v $a{op} q.v LIMIT $k) s";
	my $exact_settings =
	  'SET jit = off; SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_seqscan = on;';
	my $index_settings = "$settings\nSET jit = off; SET enable_indexscan = on; SET enable_seqscan = off;";

	like($node->safe_psql($db, "$index_settings\nEXPLAIN (COSTS OFF) $knn"),
		qr/Index Scan using $a{index} on /, "$name: the k-NN query scans $a{index}");
	unlike($node->safe_psql($db, "$exact_settings\nEXPLAIN (COSTS OFF) $knn"),
		qr/Index/, "$name: the exact query scans no index");

	my ($nq, $exact, $approx, $hits) = split /\|/, $node->safe_psql(
		$db, qq{
$exact_settings
CREATE TEMP TABLE omen_exact AS $knn;
$index_settings
CREATE TEMP TABLE omen_approx AS $knn;
SELECT (SELECT count(*) FROM $a{queries}), (SELECT count(*) FROM omen_exact),
       (SELECT count(*) FROM omen_approx),
       (SELECT count(*) FROM omen_exact JOIN omen_approx USING (qid, id));
});
	is($approx, $nq * $k, "$name: the index returned $k rows for each of $nq queries");
	return $exact > 0 ? $hits / $exact : 0;
}

# Check (as tests) that a full index-ordered scan of $table (ORDER BY v $op
# $q, no LIMIT, omen.max_scan_tuples = -1, enable_seqscan off) through
# $index returns every row of the table exactly once.
sub omen_check_full_scan
{
	my ($node, %a) = @_;
	my $db = $a{db} // 'postgres';
	my $table = $a{table};
	my $name = $a{name} // "full scan of $a{index}";
	my $scan = "SELECT id FROM $table ORDER BY v $a{op} $a{q}";
	my $settings = 'SET jit = off; SET enable_seqscan = off; SET enable_bitmapscan = off; '
	  . 'SET omen.max_scan_tuples = -1;';
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	like($node->safe_psql($db, "$settings\nEXPLAIN (COSTS OFF) $scan"),
		qr/Index Scan using $a{index} on /, "$name: the scan uses $a{index}");
	my ($rows, $found, $distinct, $missing) = split /\|/, $node->safe_psql(
		$db, qq{
$settings
CREATE TEMP TABLE omen_found AS $scan;
RESET enable_seqscan;
SELECT (SELECT count(*) FROM $table), (SELECT count(*) FROM omen_found),
       (SELECT count(DISTINCT id) FROM omen_found),
       (SELECT count(*) FROM $table t WHERE NOT EXISTS
          (SELECT 1 FROM omen_found f WHERE f.id = t.id));
});
	ok($rows > 0, "$name: the table has rows ($rows)");
	is("found $found, distinct $distinct, missing $missing",
		"found $rows, distinct $rows, missing 0",
		"$name: every one of the $rows rows comes out of the index exactly once");
	return $rows;
}

# omen_hnsw_info($index) as a hash reference
sub omen_index_info
{
	my ($node, $index, $db) = @_;
	my @cols = qw(pages live_nodes deleted_nodes heap_tids max_level entry_level
	  avg_degree_layer0 dimensions m ef_construction storage metric size_bytes);
	my @vals = split /\|/, $node->safe_psql($db // 'postgres',
		'SELECT ' . join(', ', @cols) . " FROM omen_hnsw_info('$index')");
	my %info;
	@info{@cols} = @vals;
	return \%info;
}

# Lines of $node's server log from byte $offset on that report a problem:
# FATAL or PANIC, a failed assertion, a crashed backend, or a page whose
# replay differs from the original (wal_consistency_checking)
sub omen_log_problems
{
	my ($node, $offset) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile, $offset);

	# A connection refused while the server starts or stops (a standby's WAL
	# receiver, a client polling) logs a FATAL that is not a problem.
	return grep { !/the database system is (not yet accepting connections|starting up|shutting down)/ }
	  grep { /FATAL|PANIC|TRAP|terminated by signal|inconsistent page/ }
	  split /\n/, $log;
}

# --- omen_diskann -----------------------------------------------------------

# omen_diskann_info($index) as a hash reference
sub omen_diskann_info
{
	my ($node, $index, $db) = @_;
	my @cols = qw(pages node_pages vector_pages live_nodes deleted_nodes free_slots
	  avg_degree dimensions max_neighbors build_list_size alpha quantization_bits
	  code_bytes trained uncoded_nodes quantizer_error entry_live metric node_bytes
	  coarse_centres);
	my @vals = split /\|/, $node->safe_psql($db // 'postgres',
		'SELECT ' . join(', ', @cols) . " FROM omen_diskann_info('$index')"), -1;
	my %info;
	@info{@cols} = @vals;
	return \%info;
}

# SQL (hnsw_graph.sql) that creates pageinspect and the functions
# omen_hnsw_entry(index) and omen_hnsw_elements(index): an omen_hnsw index's
# entry point and its element tuples with their layer-0 lists, read from
# the raw pages.  (Superuser only: get_raw_page.)
sub omen_hnsw_graph_sql
{
	return PostgreSQL::Test::Utils::slurp_file(dirname(__FILE__) . '/hnsw_graph.sql');
}

# Check (as tests) the graph of an omen_hnsw index at rest: the entry point
# is a live element; no live element has an empty layer-0 list; and at
# least 99% of the live elements are reachable from the entry point over
# layer-0 edges (the scan's sweep finds any others, but a graph that
# queries start in and cannot leave shows up here).  Needs
# omen_hnsw_graph_sql.  Returns the number of live elements.
sub omen_hnsw_check_graph
{
	my ($node, %a) = @_;
	my $db = $a{db} // 'postgres';
	my $name = $a{name} // "graph of $a{index}";
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my ($entry_state, $live, $empty, $reached) = split /\|/,
	  $node->safe_psql($db, "SELECT * FROM omen_hnsw_graph_check('$a{index}')"), -1;
	is($entry_state, '0', "$name: the entry point is a live element");
	is($empty, 0, "$name: every live element has layer-0 neighbours ($live live)");
	cmp_ok($reached, '>=', 0.99 * $live,
		"$name: $reached of $live live elements are reachable from the entry point");
	return $live;
}

# SQL that creates pageinspect and a function omen_diskann_nodes(index)
# returning every node tuple of an omen_diskann index, read from the raw
# node pages (layout of diskann.h, little-endian): its tid, state (0 live,
# 1 deleted, 2 free), flags (1 coded), count, heap TID and neighbour list.
# (Superuser only: get_raw_page.)
sub omen_diskann_nodes_sql
{
	return q{
CREATE EXTENSION IF NOT EXISTS pageinspect;
CREATE FUNCTION omen_u16(p bytea, o int) RETURNS int IMMUTABLE STRICT LANGUAGE sql
	AS 'SELECT get_byte(p, o) + 256 * get_byte(p, o + 1)';
CREATE FUNCTION omen_tid_at(p bytea, o int) RETURNS tid IMMUTABLE STRICT LANGUAGE sql
	AS $$SELECT format('(%s,%s)', omen_u16(p, o)::bigint * 65536 + omen_u16(p, o + 2),
	                   omen_u16(p, o + 4))::tid$$;
CREATE FUNCTION omen_diskann_nodes(idx regclass)
	RETURNS TABLE (tid tid, state int, flags int, count int, heaptid tid, neighbors tid[])
	LANGUAGE sql AS $$
WITH pages AS (
	SELECT b, get_raw_page(idx::text, b) AS p
	FROM generate_series(1, (pg_relation_size(idx) / current_setting('block_size')::int)::int - 1) b),
node_pages AS (
	-- pd_lower > 0 (not new) and the special space's kind is DISKANN_PAGE_NODE
	SELECT b, p FROM pages WHERE omen_u16(p, 12) > 0 AND omen_u16(p, omen_u16(p, 16) + 4) = 3),
items AS (
	SELECT b, o, p, omen_u16(p, 24 + 4 * (o - 1)) AS lo, omen_u16(p, 26 + 4 * (o - 1)) AS hi
	FROM node_pages, generate_series(1, (omen_u16(p, 12) - 24) / 4) o),
tuples AS (
	-- ItemIdData: lp_off 15 bits, lp_flags 2 bits (1 = LP_NORMAL), lp_len
	SELECT b, o, p, lo & 32767 AS t FROM items WHERE (lo >> 15) | ((hi & 1) << 1) = 1)
SELECT format('(%s,%s)', b, o)::tid, get_byte(p, t), get_byte(p, t + 1), omen_u16(p, t + 2),
       omen_tid_at(p, t + 4),
       ARRAY(SELECT omen_tid_at(p, t + 16 + 6 * i) FROM generate_series(0, omen_u16(p, t + 2) - 1) i)
FROM tuples
$$;
};
}

# Check (as tests) the node tuples of omen_diskann index $a{index} on
# $a{table} right after a VACUUM (omen_diskann_nodes_sql must have run):
# the live nodes' heap TIDs are exactly the table's rows, each once (no dead
# heap TID left, no row missing), and no deleted node has a non-empty list
# (an unfinished IP-DiskANN repair).  Returns a hash reference of counts:
# live, deleted, free, unfinished (deleted, list not empty), dangling
# (edges from live or deleted nodes to a free or missing slot), uncoded
# (live or deleted nodes without a code).
sub omen_diskann_check_nodes
{
	my ($node, %a) = @_;
	my $db = $a{db} // 'postgres';
	my $name = $a{name} // "nodes of $a{index}";
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my ($live, $deleted, $free, $unfinished, $dangling, $uncoded, $dead_tids, $missing, $dups) =
	  split /\|/, $node->safe_psql(
		$db, qq{
CREATE TEMP TABLE omen_nodes AS SELECT * FROM omen_diskann_nodes('$a{index}');
SELECT count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1),
       count(*) FILTER (WHERE state = 2), count(*) FILTER (WHERE state = 1 AND count > 0),
       (SELECT count(*) FROM omen_nodes n, unnest(n.neighbors) e(t)
        WHERE n.state <> 2 AND NOT EXISTS
          (SELECT 1 FROM omen_nodes m WHERE m.tid = e.t AND m.state <> 2)),
       count(*) FILTER (WHERE state <> 2 AND flags & 1 = 0),
       (SELECT count(*) FROM omen_nodes n WHERE n.state = 0 AND NOT EXISTS
          (SELECT 1 FROM $a{table} t WHERE t.ctid = n.heaptid)),
       (SELECT count(*) FROM $a{table} t WHERE NOT EXISTS
          (SELECT 1 FROM omen_nodes n WHERE n.state = 0 AND n.heaptid = t.ctid)),
       (SELECT count(*) FROM (SELECT heaptid FROM omen_nodes WHERE state = 0
                              GROUP BY heaptid HAVING count(*) > 1) d)
FROM omen_nodes;
});
	is("$dead_tids dead heap TIDs, $missing rows missing, $dups duplicated",
		'0 dead heap TIDs, 0 rows missing, 0 duplicated',
		"$name: the live nodes are exactly the table's rows ($live)");
	is($unfinished, 0, "$name: no deleted node has an unfinished repair ($deleted deleted)");
	return {
		live => $live,
		deleted => $deleted,
		free => $free,
		unfinished => $unfinished,
		dangling => $dangling,
		uncoded => $uncoded
	};
}

1;
