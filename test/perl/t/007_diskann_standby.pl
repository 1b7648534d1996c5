# A streaming standby answers omen_diskann index scans exactly as its
# primary does, through cycles of DELETE, VACUUM (IP-DiskANN deletes, and
# sweeps that free slots) and INSERT (which reuse the freed slots), and
# through the training of an index created empty; an unlogged table's
# omen_diskann index comes back empty and usable after a crash.
#
# Catches: index page changes that are not WAL-logged, or whose generic WAL
# replay differs from the primary's page (wal_consistency_checking =
# 'generic' stops the standby with FATAL, and the test stops), seen as
# different nearest neighbours (ids and distances, in order), a different
# full index-ordered scan, or a different omen_diskann_info (pages, live,
# deleted and free nodes, degree, entry point, quantiser and its error) on
# the standby; standby scans that fail while VACUUM's records are replayed
# under them; for 2-bit codes with l2, 1-bit codes with cosine and full
# vectors in the nodes (quantization_bits = 0) with l1.  Also live rows
# that no full index-ordered scan returns.  And an unlogged index whose
# init fork is missing or not WAL-logged: after an immediate shutdown of the
# primary, or on the promoted standby (which has only what the WAL
# carried), its main fork is not reset to an empty, valid index.  And an
# index whose every row is deleted: the entry point must go and come back.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OmenTest;

my $dim = 16;

my $primary = omen_node('primary', allows_streaming => 1,
	conf => "autovacuum = off\njit = off\nmax_wal_size = '1GB'");
my $standby = omen_standby($primary, 'standby');
# standby scans run while VACUUM is replayed: let replay wait for them
# rather than cancel them
$standby->append_conf('postgresql.conf', 'max_standby_streaming_delay = -1');
$standby->reload;

$primary->safe_psql('postgres', "CREATE EXTENSION omen;");
$primary->safe_psql('postgres', "SELECT setseed(0.71);\n" . omen_clusters_sql($dim) . qq{
	CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 5) qid;
	CREATE TABLE items (id int PRIMARY KEY, v vector($dim));
	INSERT INTO items SELECT i, omen_rvec() FROM generate_series(1, 3000) i;
	CREATE INDEX items_l2 ON items USING omen_diskann (v vector_l2_ops)
		WITH (max_neighbors = 16, build_list_size = 50);
	CREATE INDEX items_cos ON items USING omen_diskann (v vector_cosine_ops)
		WITH (quantization_bits = 1);
	CREATE INDEX items_l1 ON items USING omen_diskann (v vector_l1_ops)
		WITH (quantization_bits = 0);
	ANALYZE items;
	-- created empty: its quantiser is trained by an insert, later
	CREATE TABLE grow (id int PRIMARY KEY, v vector($dim));
	CREATE INDEX grow_l2 ON grow USING omen_diskann (v vector_l2_ops);
});

my %index_of = ('<->' => 'items_l2', '<=>' => 'items_cos', '<+>' => 'items_l1');
my @indexes = ((sort values %index_of), 'grow_l2');
my $settings = "SET jit = off; SET enable_seqscan = off; SET enable_bitmapscan = off; SET omen.max_scan_tuples = -1;\n";

# The compared answers: for each query vector and operator the 10 nearest
# rows (ids and distances) from the index; for the first query vector the
# whole index-ordered scan (row count and a checksum of the id sequence);
# the same for grow; and omen_diskann_info of every index
sub knn_sql
{
	my ($table, $label, $op, $k) = @_;
	my $q = "(SELECT v FROM queries WHERE qid = $k)";
	my $sql = "SELECT '$label $k $op', string_agg(id || ':' || round(d::numeric, 4), ' ') FROM "
	  . "(SELECT id, v $op $q AS d FROM $table ORDER BY v $op $q LIMIT 10) s;\n";
	$sql .= "SELECT '$label full $op', count(*), md5(string_agg(id::text, ',')) FROM "
	  . "(SELECT id FROM $table ORDER BY v $op $q) s;\n"
	  if $k == 1;
	return $sql;
}
my $queries = $settings;
my $top10 = $settings;
for my $k (1 .. 5)
{
	for my $op (sort keys %index_of)
	{
		my $sql = knn_sql('items', 'items', $op, $k);
		$queries .= $sql;
		$top10 .= $sql =~ s/^.* full .*\n//mr;
	}
	$queries .= knn_sql('grow', 'grow', '<->', $k);
}
$queries .= "SELECT '$_', * FROM omen_diskann_info('$_');\n" for @indexes;

# Wait until the standby has replayed all of the primary's WAL; fail at
# once, with the standby's complaints, if it stopped (a FATAL replay error,
# e.g. wal_consistency_checking's "inconsistent page found")
sub catch_up
{
	my $target = $primary->lsn('insert');
	for (my $i = 0; $i < 1800; $i++)
	{
		my ($ret, $out) = $standby->psql('postgres',
			"SELECT pg_last_wal_replay_lsn() >= '$target'");
		if ($ret != 0)
		{
			my @problems = omen_log_problems($standby, 0);
			die "the standby stopped replaying:\n" . join("\n", @problems) . "\n";
		}
		return if $out eq 't';
		usleep(100_000);
	}
	die "the standby did not catch up with $target";
}

# Both nodes plan each query with its index
catch_up();
for my $node ($primary, $standby)
{
	for my $op (sort keys %index_of)
	{
		like(
			$node->safe_psql('postgres',
				"${settings}EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v $op "
				  . "(SELECT v FROM queries WHERE qid = 1) LIMIT 10"),
			qr/Index Scan using $index_of{$op} /,
			$node->name . ": ORDER BY v $op q LIMIT 10 scans $index_of{$op}");
	}
}

# Compare primary and standby; check that the answers are not trivially
# equal: every query got 10 rows and a full scan returns every row
sub check_replay
{
	my ($step) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	catch_up();
	my $on_primary = $primary->safe_psql('postgres', $queries);
	my $on_standby = $standby->safe_psql('postgres', $queries);
	is($on_standby, $on_primary, "$step: the standby's indexes answer as the primary's");

	my ($rows, $grow) = split /\|/, $primary->safe_psql('postgres',
		'SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM grow)');
	my @knn = $on_primary =~ /^items \d+ <[-=+]>\|(.*)$/mg;
	my @full = $on_primary =~ /^items full <[-=+]>\|(\d+)\|/mg;
	is(scalar(grep { scalar(split / /) == 10 } @knn) . ' of ' . scalar(@knn),
		'15 of 15', "$step: 10 neighbours for each query vector and operator");
	is("@full", "$rows $rows $rows",
		"$step: full index scans (l1, cosine, l2) return all $rows rows");
	my ($gfull) = $on_primary =~ /^grow full <->\|(\d+)\|/m;
	is($gfull, $grow, "$step: a full scan of grow returns all $grow rows");
	return;
}

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is in recovery');
check_replay('initial build');

# An index created empty: 600 rows are written without codes, then 600
# more take it past 1000 nodes, and an insert trains the quantiser and
# codes every node
$primary->safe_psql('postgres',
	"SELECT setseed(0.72);\nINSERT INTO grow SELECT i, omen_rvec() FROM generate_series(1, 600) i");
check_replay('grow, untrained');
is($primary->safe_psql('postgres', "SELECT trained FROM omen_diskann_info('grow_l2')"),
	'f', 'grow: 600 rows, no quantiser yet');
$primary->safe_psql('postgres',
	"SELECT setseed(0.73);\nINSERT INTO grow SELECT i, omen_rvec() FROM generate_series(601, 1200) i");
check_replay('grow, trained');
is( $primary->safe_psql(
		'postgres', "SELECT trained, uncoded_nodes FROM omen_diskann_info('grow_l2')"),
	't|0', 'grow: 1200 rows, the quantiser is trained and every node coded');

# VACUUM on the primary while the standby replays it and runs the top-10
# queries in a loop: scans under the replay of VACUUM's records must keep
# working.  The loop goes on until the standby has replayed all of the
# VACUUM.
sub vacuum_with_standby_scans
{
	my ($step) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my $vac = $primary->background_psql('postgres');
	my $mon = $primary->background_psql('postgres');
	my $scan = $standby->background_psql('postgres', on_error_stop => 0);
	$vac->query_until(qr/vacuum-started/, "\\echo vacuum-started\nVACUUM items;\n");
	my ($seen, $target, $during, $after) = (0, undef, 0, 0);
	for (my $i = 0; $i < 10000; $i++)
	{
		if (!defined $target)
		{
			my $running = $mon->query_safe(
				"SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'items'::regclass");
			$seen ||= $running > 0;
			$target = $mon->query_safe('SELECT pg_current_wal_insert_lsn()')
			  if $seen && $running == 0;
		}
		my $check = defined $target
		  ? "SELECT 'replayed', pg_last_wal_replay_lsn() >= '$target';" : '';
		my $out = $scan->query($top10 . $check);
		defined $target ? $after++ : $during++;
		last if $check && $out =~ /^replayed\|t$/m;
	}
	my $errors = $scan->{stderr};
	$scan->quit;
	$mon->quit;
	$vac->quit;
	ok($seen && defined $target, "$step: VACUUM ran and finished on the primary");
	is($errors, '',
		"$step: $during rounds of standby scans during VACUUM and $after after it, without errors");
	return;
}

my $next_id = 100000;
my ($swept, $reused, $free_before) = (0, 0, 0);
for my $i (1 .. 4)
{
	# cycle 2 deletes 40% of the rows at once (likely the entry point too):
	# more than 20% deleted, so VACUUM sweeps; the id % 7 deletes of cycles
	# 1, 3 and 4 add up past 20% again by cycle 4
	my $where = $i == 2 ? 'random() < 0.4' : "id % 7 = $i % 7";
	$primary->safe_psql('postgres', "SELECT setseed(0.7 + $i / 100.0);\nDELETE FROM items WHERE $where");
	check_replay("cycle $i, delete");

	vacuum_with_standby_scans("cycle $i, vacuum");
	check_replay("cycle $i, vacuum");
	my $free = $primary->safe_psql('postgres', "SELECT free_slots FROM omen_diskann_info('items_l2')");
	$swept++ if $free > $free_before;

	$primary->safe_psql('postgres', "SELECT setseed(0.8 + $i / 100.0);\n"
		  . "INSERT INTO items SELECT i, omen_rvec() FROM generate_series($next_id, $next_id + 399) i");
	$next_id += 1000;
	check_replay("cycle $i, insert");
	$free_before = $primary->safe_psql('postgres',
		"SELECT free_slots FROM omen_diskann_info('items_l2')");
	$reused += $free - $free_before;
}
cmp_ok($swept, '>=', 2, "VACUUM swept deleted nodes into free slots in $swept of the 4 cycles (items_l2)");
cmp_ok($reused, '>', 0, "inserts on the primary reused $reused freed slots");

# Every row of grow deleted: VACUUM deletes every node, so the entry point
# goes, and sweeps them all into free slots; the next insert becomes the
# entry point in a free slot, and the others link to it
$primary->safe_psql('postgres', 'DELETE FROM grow');
$primary->safe_psql('postgres', 'VACUUM grow');
check_replay('grow, all rows deleted');
is( $primary->safe_psql(
		'postgres', "SELECT live_nodes, deleted_nodes, free_slots, entry_live FROM omen_diskann_info('grow_l2')"),
	'0|0|1200|f', 'grow: every node is a free slot, no entry point');
$primary->safe_psql('postgres',
	"SELECT setseed(0.77);\nINSERT INTO grow SELECT i, omen_rvec() FROM generate_series(2001, 2300) i");
check_replay('grow, refilled');
is( $primary->safe_psql(
		'postgres', "SELECT live_nodes, deleted_nodes, free_slots, entry_live FROM omen_diskann_info('grow_l2')"),
	'300|0|900|t', 'grow: 300 new rows in freed slots, a live entry point');
is( $primary->safe_psql(
		'postgres', q{SET enable_seqscan = off;
		SELECT count(*) FROM grow g WHERE g.id = (SELECT id FROM grow ORDER BY v <-> g.v LIMIT 1)}),
	'300', 'grow: every new row is its own nearest neighbour through the index');

###########################################################################
# unlogged table: the index is reset from its init fork after a crash
###########################################################################

$primary->safe_psql('postgres', qq{
	SELECT setseed(0.74);
	CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, v vector($dim));
	INSERT INTO ul SELECT i, omen_rvec() FROM generate_series(1, 500) i;
	CREATE INDEX ul_dk ON ul USING omen_diskann (v);
	INSERT INTO ul SELECT i, omen_rvec() FROM generate_series(501, 700) i;
	ANALYZE ul;
});
omen_check_full_scan($primary, table => 'ul', index => 'ul_dk', op => '<->',
	q => '(SELECT v FROM queries WHERE qid = 1)', name => 'unlogged, before the crash');

# no checkpoint since CREATE INDEX: the init fork comes back from WAL
my $offset = -s $primary->logfile;
$primary->stop('immediate');
ok($primary->start(fail_ok => 1), 'the primary restarts after an immediate shutdown')
  or die 'primary did not restart, see ' . $primary->logfile;
ok($primary->log_contains(qr/redo done/, $offset), 'the primary went through crash recovery');
my @problems = omen_log_problems($primary, $offset);
is(scalar(@problems), 0, 'no FATAL, PANIC or inconsistent page on the primary')
  or diag(join("\n", @problems));

my $empty = "pages, live_nodes, deleted_nodes, free_slots, entry_live, dimensions";
is($primary->safe_psql('postgres', 'SELECT count(*) FROM ul'), '0',
	'unlogged: the table is empty after the crash');
is($primary->safe_psql('postgres', "SELECT $empty FROM omen_diskann_info('ul_dk')"),
	"1|0|0|0|f|$dim", 'unlogged: the index is reset to an empty index (its init fork)');
$primary->safe_psql('postgres',
	"SELECT setseed(0.75);\nINSERT INTO ul SELECT i, omen_rvec() FROM generate_series(1, 300) i");
omen_check_full_scan($primary, table => 'ul', index => 'ul_dk', op => '<->',
	q => '(SELECT v FROM queries WHERE qid = 2)', name => 'unlogged, after the crash');
is( $primary->safe_psql(
		'postgres', q{SET enable_seqscan = off;
		SELECT count(*) FROM ul u WHERE u.id = (SELECT id FROM ul ORDER BY v <-> u.v LIMIT 1)}),
	'300', 'unlogged: every row is its own nearest neighbour through the index');

# the standby follows the restarted primary and still answers the same
check_replay('after the primary\'s crash');

# The standby got the unlogged index's init fork only through WAL (its main
# fork is never replicated): once promoted, it must have an empty, usable
# index
$primary->stop;
$standby->promote;
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ul'), '0',
	'unlogged, promoted standby: the table is empty');
is($standby->safe_psql('postgres', "SELECT $empty FROM omen_diskann_info('ul_dk')"),
	"1|0|0|0|f|$dim", 'unlogged, promoted standby: the index is an empty index (the replicated init fork)');
$standby->safe_psql('postgres',
	"SELECT setseed(0.76);\nINSERT INTO ul SELECT i, omen_rvec() FROM generate_series(1, 300) i");
omen_check_full_scan($standby, table => 'ul', index => 'ul_dk', op => '<->',
	q => '(SELECT v FROM queries WHERE qid = 3)', name => 'unlogged, promoted standby');

$standby->stop;
done_testing();
