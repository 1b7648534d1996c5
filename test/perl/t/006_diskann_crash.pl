# omen_diskann survives an immediate shutdown during concurrent inserts,
# while an index built empty trains its quantiser, and in the middle of
# VACUUM (during the IP-DiskANN deletes, and during the sweep that frees
# slots), and then answers like a freshly built index.
#
# Catches: an index page change that is not WAL-logged or whose generic WAL
# replay differs from the page written (wal_consistency_checking = 'generic'
# makes recovery FATAL, so the restart fails); committed rows whose index
# entries are lost after recovery (a full index-ordered scan misses them);
# a graph left damaged by a crash between the steps of an insert (node and
# vector written, backlinks, entry point), of the training (quantiser
# pages, meta page, codes) or of VACUUM (mark deleted, repair, empty the
# list; sweep: drop edges, free slots), seen as recall@10 more than a point
# below that of a fresh index on the same rows; an interrupted VACUUM whose
# leftovers the next VACUUM does not finish (a deleted node whose repair is
# unfinished, i.e. whose list is not empty, or a live node whose heap TID is
# dead, read from the raw node pages); nodes left without a code after the
# training was interrupted; a completed VACUUM whose work does not survive
# a crash; concurrent inserts that fail; and slots freed by the sweep that
# inserts do not reuse after a crash (the free space map is not WAL-logged).
# Crashes are timed by what omen_diskann_info shows (nodes in the index,
# trained, deleted nodes and free slots while VACUUM runs), not by sleeps.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OmenTest;

my $dim = 16;

# Pages changed after the last checkpoint stay in shared buffers until the
# crash (no background writer, no eviction), so a change that is not in the
# WAL is lost by the crash and shows after recovery.
my $node = omen_node('diskann_crash', allows_streaming => 1,
	conf => "autovacuum = off\njit = off\nmax_connections = 20\nmax_wal_size = '1GB'\n"
	  . "checkpoint_timeout = '1h'\nshared_buffers = '128MB'\nbgwriter_lru_maxpages = 0");

# centres and 100 held-out query vectors from one seeded session
$node->safe_psql('postgres', "CREATE EXTENSION omen;\n" . omen_diskann_nodes_sql());
$node->safe_psql('postgres', "SELECT setseed(0.61);\n" . omen_clusters_sql($dim) . q{
	CREATE TABLE queries AS SELECT qid, omen_rvec() AS v FROM generate_series(1, 100) qid;
});
my @q = map { omen_vector_literal($_, $dim) } 1 .. 2;
push @q, "(SELECT v FROM queries WHERE qid = 7)";

# Restart after an immediate shutdown; check (as tests) that the server came
# back through crash recovery with WAL replayed and nothing reported
sub crash_restart
{
	my ($step) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	$node->stop('immediate');
	my $offset = -s $node->logfile;
	ok($node->start(fail_ok => 1), "$step: the server restarts after the crash")
	  or die "$step: recovery failed, see " . $node->logfile;
	ok($node->log_contains(qr/database system was interrupted|not properly shut down/, $offset)
		  && $node->log_contains(qr/redo done/, $offset),
		"$step: crash recovery replayed WAL");
	my @problems = omen_log_problems($node, $offset);
	is(scalar(@problems), 0, "$step: no FATAL, PANIC or inconsistent page during recovery")
	  or diag(join("\n", @problems));
	return;
}

# recall@10 of $index on $table, and of a fresh index built on a copy of the
# rows: the first must be within 0.01 of the second
sub check_recall_like_fresh
{
	my ($step, $table, $index) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	$node->safe_psql('postgres', qq{
		DROP TABLE IF EXISTS fresh;
		CREATE TABLE fresh AS SELECT * FROM $table;
		CREATE INDEX fresh_dk ON fresh USING omen_diskann (v);
		ANALYZE fresh;
	});
	my $r = omen_recall($node, table => $table, index => $index,
		queries => 'queries', op => '<->', name => "$step: $index");
	my $rf = omen_recall($node, table => 'fresh', index => 'fresh_dk',
		queries => 'queries', op => '<->', name => "$step: fresh index");
	cmp_ok($r, '>=', $rf - 0.01,
		sprintf('%s: recall@10 of the recovered index %.3f is within 0.01 of a fresh one (%.3f)',
			$step, $r, $rf));
	return;
}

# Full index-ordered scans with the three query vectors
sub check_full_scans
{
	my ($step, $table, $index) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	for my $i (0 .. $#q)
	{
		omen_check_full_scan($node, table => $table, index => $index, op => '<->',
			q => $q[$i], name => "$step, query $i");
	}
	return;
}

# pgbench: 4 clients insert 3 rows per transaction into $table; one
# transaction in 6 rolls back (its index entries stay behind, pointing at
# dead rows).  Returns the harness and references to its output.
sub start_inserts
{
	my ($table) = @_;
	my $dir = $node->basedir;
	PostgreSQL::Test::Utils::append_to_file("$dir/insert_$table.sql",
		"INSERT INTO $table (v) SELECT omen_rvec() FROM generate_series(1, 3);\n");
	PostgreSQL::Test::Utils::append_to_file("$dir/rollback_$table.sql",
		"BEGIN;\nINSERT INTO $table (v) SELECT omen_rvec() FROM generate_series(1, 3);\nROLLBACK;\n");
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '4', '-j', '2', '-T', '120',
			'-h', $node->host, '-p', $node->port,
			'-f', "$dir/insert_$table.sql\@5", '-f', "$dir/rollback_$table.sql\@1", 'postgres'
		],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Poll omen_diskann_info($index) (every 10 ms, up to a minute) while $bench
# runs until $ready->(info) holds; returns that info
sub wait_for_info
{
	my ($bench, $index, $ready, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($info, $seen) = ({}, 0);

	for (my $i = 0; $i < 6000 && !$seen; $i++)
	{
		$bench->pump_nb;
		last unless $bench->pumpable;    # pgbench gave up
		$info = omen_diskann_info($node, $index);
		$seen = $ready->($info);
		usleep(10_000) unless $seen;
	}
	ok($seen, "$what ($info->{live_nodes} live nodes, trained $info->{trained})");
	return $info;
}

###########################################################################
# (a) crash during a stream of concurrent inserts
###########################################################################

$node->safe_psql('postgres', qq{
	SELECT setseed(0.62);
	CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 2000);
	CREATE INDEX items_dk ON items USING omen_diskann (v);
	ANALYZE items;
});

my ($bench, $out, $err) = start_inserts('items');
# once rows flow, a checkpoint in the middle of the stream: recovery starts
# at its redo point, inside inserts that are half done
wait_for_info($bench, 'items_dk', sub { $_[0]->{live_nodes} >= 2300 },
	'(a) concurrent inserts are running');
$node->safe_psql('postgres', 'CHECKPOINT');
my $at_checkpoint = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
my $nodes_at_checkpoint = omen_diskann_info($node, 'items_dk')->{live_nodes};
wait_for_info($bench, 'items_dk', sub { $_[0]->{live_nodes} >= $nodes_at_checkpoint + 600 },
	'(a) inserts go on after the checkpoint');
my $committed = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
$bench->pump_nb;
my $err_before = $$err;
crash_restart('(a) crash during inserts');
$bench->finish;    # its clients lost their connections
is($err_before, '', '(a) no pgbench client failed before the crash');
note "pgbench after the crash: $$err";

my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
cmp_ok($rows, '>=', $committed,
	"(a) every row committed before the crash is there ($rows >= $committed)");
cmp_ok($rows, '>', $at_checkpoint,
	"(a) rows inserted after the checkpoint were replayed ($rows > $at_checkpoint)");
check_full_scans('(a) after recovery', 'items', 'items_dk');
# (not compared: the recall before VACUUM, while about a tenth of the
# nodes are rows that rolled back and take places in the search list)
my $r = omen_recall($node, table => 'items', index => 'items_dk', queries => 'queries',
	op => '<->', name => '(a) after recovery, before VACUUM');
note sprintf('(a) recall@10 after recovery, before VACUUM: %.3f', $r);

# VACUUM removes the nodes of the rolled-back rows (and of rows whose
# transaction the crash aborted); then the index holds the same rows as a
# fresh one
# INDEX_CLEANUP ON: with dead rows on fewer than 2% of the heap's pages,
# a plain VACUUM may bypass the index pass (PostgreSQL 14+), leaving their
# TIDs in the index; the exact counts below need the index pass.
$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) items');
my $info = omen_diskann_info($node, 'items_dk');
is($info->{live_nodes}, $rows, '(a) after VACUUM the index has one live node per row');
omen_diskann_check_nodes($node, table => 'items', index => 'items_dk',
	name => '(a) after VACUUM');
check_recall_like_fresh('(a) after recovery and VACUUM', 'items', 'items_dk');

# the recovered index takes inserts and finds them
$node->safe_psql('postgres', 'INSERT INTO items (v) SELECT omen_rvec() FROM generate_series(1, 200)');
is( $node->safe_psql(
		'postgres', q{SET enable_seqscan = off;
		SELECT count(*) FROM items i WHERE i.id > (SELECT max(id) - 200 FROM items)
		AND i.id = (SELECT id FROM items ORDER BY v <-> i.v LIMIT 1)}),
	'200', '(a) rows inserted after recovery are each their own nearest neighbour');
omen_check_full_scan($node, table => 'items', index => 'items_dk', op => '<->',
	q => $q[0], name => '(a) after more inserts');

###########################################################################
# (a2) crash while concurrent inserts train the quantiser of an index
# created on an empty table
###########################################################################

$node->safe_psql('postgres', qq{
	CREATE TABLE grow (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	CREATE INDEX grow_dk ON grow USING omen_diskann (v);
});
is(omen_diskann_info($node, 'grow_dk')->{trained}, 'f', '(a2) the empty index has no quantiser');
($bench, $out, $err) = start_inserts('grow');
# crash as soon as the quantiser is there, preferably while nodes still
# wait for their codes
my $at_crash = wait_for_info($bench, 'grow_dk', sub { $_[0]->{trained} eq 't' },
	'(a2) the concurrent inserts trained the quantiser');
note "(a2) at the crash: $at_crash->{live_nodes} live nodes, $at_crash->{uncoded_nodes} without a code";
$committed = $node->safe_psql('postgres', 'SELECT count(*) FROM grow');
$bench->pump_nb;
$err_before = $$err;
crash_restart('(a2) crash during the training');
$bench->finish;
is($err_before, '', '(a2) no pgbench client failed before the crash');

$rows = $node->safe_psql('postgres', 'SELECT count(*) FROM grow');
cmp_ok($rows, '>=', $committed,
	"(a2) every row committed before the crash is there ($rows >= $committed)");
$info = omen_diskann_info($node, 'grow_dk');
note "(a2) after recovery: trained $info->{trained}, $info->{live_nodes} live nodes, "
  . "$info->{uncoded_nodes} without a code";
check_full_scans('(a2) after recovery', 'grow', 'grow_dk');

# VACUUM trains the quantiser if the crash lost the training, and codes
# every node the interrupted training left without a code
$node->safe_psql('postgres', 'VACUUM grow');
$info = omen_diskann_info($node, 'grow_dk');
is("trained $info->{trained}, $info->{uncoded_nodes} uncoded, $info->{live_nodes} live",
	"trained t, 0 uncoded, $rows live",
	'(a2) after VACUUM the quantiser is trained and every node has its code');
# trained from the vectors then in the index: one coarse centre per 40
cmp_ok($info->{coarse_centres}, '>=', 25,
	"(a2) the quantiser has coarse centres ($info->{coarse_centres})");
my $n = omen_diskann_check_nodes($node, table => 'grow', index => 'grow_dk',
	name => '(a2) after VACUUM');
is($n->{uncoded}, 0, '(a2) no node tuple lacks its code');
$node->safe_psql('postgres', 'INSERT INTO grow (v) SELECT omen_rvec() FROM generate_series(1, 300)');
check_full_scans('(a2) after more inserts', 'grow', 'grow_dk');
check_recall_like_fresh('(a2) after more inserts', 'grow', 'grow_dk');

###########################################################################
# (b) crashes in the middle of VACUUM
###########################################################################

my $nchurn = 6000;
$node->safe_psql('postgres', qq{
	SELECT setseed(0.63);
	CREATE TABLE churn (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v vector($dim));
	INSERT INTO churn (v) SELECT omen_rvec() FROM generate_series(1, $nchurn);
	CREATE INDEX churn_dk ON churn USING omen_diskann (v);
	ANALYZE churn;
});
my $before = omen_diskann_info($node, 'churn_dk');
is("$before->{live_nodes} live, $before->{deleted_nodes} deleted, $before->{free_slots} free",
	"$nchurn live, 0 deleted, 0 free", "(b) the index holds all $nchurn rows");

# Start a slowed-down VACUUM (cost-based delay) and crash as soon as
# omen_diskann_info, polled from another session while VACUUM is in its
# index phase, satisfies $ready->(info)
sub crash_during_vacuum
{
	my ($step, $ready) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my $vac = $node->background_psql('postgres', on_error_stop => 0);
	$vac->query_safe("SET vacuum_cost_delay = '1ms'; SET vacuum_cost_limit = 1;");
	$vac->query_until(qr/vacuum-started/, "\\echo vacuum-started\nVACUUM churn;\n");
	my $mon = $node->background_psql('postgres');
	my ($seen, $state) = (0, '');
	for (my $i = 0; $i < 6000 && !$seen; $i++)
	{
		my ($phase, @vals) = split /\|/, $mon->query_safe(q{
			SELECT coalesce((SELECT phase FROM pg_stat_progress_vacuum
			                 WHERE relid = 'churn'::regclass), 'none'),
			       live_nodes, deleted_nodes, free_slots
			FROM omen_diskann_info('churn_dk')});
		my %info;
		@info{qw(live_nodes deleted_nodes free_slots)} = @vals;
		$state = "$phase: $vals[0] live, $vals[1] deleted, $vals[2] free";
		$seen = $phase eq 'vacuuming indexes' && $ready->(\%info);
		usleep(10_000) unless $seen;
	}
	ok($seen, "$step: VACUUM reached the state to crash in ($state)");
	# a commit flushes the WAL written so far, so recovery gets to (at
	# least) the state seen
	$mon->query_safe('SELECT txid_current()') if $seen;
	crash_restart($step);
	# both sessions lost their server; the VACUUM one has exited
	eval { $mon->quit };
	eval { $vac->quit };
	return;
}

# Crash 1: 15% of the rows deleted (no sweep: deleted nodes stay below
# 20%), crash once pass 2 has deleted (marked and repaired) a third of them
my $ndel1 = $node->safe_psql('postgres',
	'WITH d AS (DELETE FROM churn WHERE id % 100 < 15 RETURNING 1) SELECT count(*) FROM d');
$node->safe_psql('postgres', 'CHECKPOINT');
my $live = $nchurn - $ndel1;
crash_during_vacuum('(b) crash 1, during the deletes',
	sub { $_[0]->{deleted_nodes} >= $ndel1 / 3 });
my $mid = omen_diskann_info($node, 'churn_dk');
my ($unfinished) = $node->safe_psql('postgres',
	"SELECT count(*) FROM omen_diskann_nodes('churn_dk') WHERE state = 1 AND count > 0");
note "(b) after crash 1: $mid->{live_nodes} live, $mid->{deleted_nodes} deleted "
  . "($unfinished with an unfinished repair)";
cmp_ok($mid->{deleted_nodes}, '<', $ndel1,
	"(b) crash 1 left VACUUM unfinished ($mid->{deleted_nodes} of $ndel1 nodes deleted)");
is($node->safe_psql('postgres', 'SELECT count(*) FROM churn'), $live,
	'(b) crash 1: the table has its rows');
check_full_scans('(b) crash 1', 'churn', 'churn_dk');

# VACUUM to the end finishes the deletes
$node->safe_psql('postgres', 'VACUUM churn');
my $after = omen_diskann_info($node, 'churn_dk');
is("$after->{live_nodes} live, $after->{deleted_nodes} deleted, $after->{free_slots} free",
	"$live live, $ndel1 deleted, 0 free",
	'(b) the VACUUM after crash 1 deleted the rest (no sweep below 20%)');
omen_diskann_check_nodes($node, table => 'churn', index => 'churn_dk',
	name => '(b) after crash 1 and a VACUUM');
check_recall_like_fresh('(b) after crash 1 and a VACUUM', 'churn', 'churn_dk');

# Crash 2: 7% more deleted (22% in all): this VACUUM deletes them and
# sweeps; crash once some slots are free and some deleted nodes are not yet
my $ndel2 = $node->safe_psql('postgres',
	'WITH d AS (DELETE FROM churn WHERE id % 100 BETWEEN 15 AND 21 RETURNING 1) SELECT count(*) FROM d');
$node->safe_psql('postgres', 'CHECKPOINT');
$live -= $ndel2;
crash_during_vacuum('(b) crash 2, during the sweep',
	sub { $_[0]->{free_slots} > 0 && $_[0]->{deleted_nodes} > 0 });
my $mid2 = omen_diskann_info($node, 'churn_dk');
($unfinished) = $node->safe_psql('postgres',
	"SELECT count(*) FROM omen_diskann_nodes('churn_dk') WHERE state = 1 AND count > 0");
note "(b) after crash 2: $mid2->{live_nodes} live, $mid2->{deleted_nodes} deleted "
  . "($unfinished with an unfinished repair), $mid2->{free_slots} free";
cmp_ok($mid2->{deleted_nodes}, '>', 0,
	"(b) crash 2 left VACUUM unfinished ($mid2->{deleted_nodes} deleted nodes remain)");
cmp_ok($mid2->{free_slots}, '>', 0,
	"(b) crash 2 came after the sweep had freed slots ($mid2->{free_slots})");
check_full_scans('(b) crash 2', 'churn', 'churn_dk');

# VACUUM again, to the end: it finishes what the interrupted one left;
# then crash at once: what VACUUM did must come back from the WAL
$node->safe_psql('postgres', 'VACUUM churn');
# VACUUM commits without a transaction ID, so its WAL is flushed only by
# the WAL writer, up to 0.2 s later; an immediate stop before then loses
# its tail (a consistent, earlier index).  A commit with one flushes it.
$node->safe_psql('postgres', 'SELECT pg_current_xact_id()');
$after = omen_diskann_info($node, 'churn_dk');
my $nodes = omen_diskann_check_nodes($node, table => 'churn', index => 'churn_dk',
	name => '(b) after crash 2 and a VACUUM');
note "(b) after crash 2 and a VACUUM: $after->{live_nodes} live, $after->{deleted_nodes} deleted, "
  . "$after->{free_slots} free slots, $nodes->{dangling} edges to free slots";
is($after->{live_nodes}, $live, '(b) VACUUM after the crashes leaves one live node per row');
cmp_ok($after->{free_slots}, '>', 0, "(b) the sweep freed slots ($after->{free_slots})");
crash_restart('(b) crash right after a complete VACUUM');
is_deeply(omen_diskann_info($node, 'churn_dk'), $after,
	'(b) after recovery omen_diskann_info is what it was after VACUUM');
is($after->{entry_live}, 't', '(b) the entry point is a live node');
check_full_scans('(b) after VACUUM', 'churn', 'churn_dk');
check_recall_like_fresh('(b) after VACUUM', 'churn', 'churn_dk');

###########################################################################
# (c) crash while concurrent inserts reuse the freed slots
###########################################################################

# The slots VACUUM freed take the new rows, even though the crash lost the
# free space map (it is not WAL-logged): a VACUUM after the crash has to
# find the free slots again.  Concurrent inserts fill them, and the server
# crashes when about half are taken (a reused slot's node and vector are
# rewritten in place).
$node->safe_psql('postgres', 'VACUUM churn');
my $refill = $after->{free_slots};
($bench, $out, $err) = start_inserts('churn');
wait_for_info($bench, 'churn_dk', sub { $_[0]->{free_slots} <= $refill / 2 },
	"(c) concurrent inserts take half of the $refill free slots");
$committed = $node->safe_psql('postgres', 'SELECT count(*) FROM churn');
$bench->pump_nb;
$err_before = $$err;
crash_restart('(c) crash while inserts reuse slots');
$bench->finish;
is($err_before, '', '(c) no pgbench client failed before the crash');
$rows = $node->safe_psql('postgres', 'SELECT count(*) FROM churn');
cmp_ok($rows, '>=', $committed,
	"(c) every row committed before the crash is there ($rows >= $committed)");
check_full_scans('(c) after recovery', 'churn', 'churn_dk');

# VACUUM (the rolled-back rows' nodes), then one session fills the slots
# still free: every one of its rows takes a freed slot, no new page.  (The
# pages are compared with this point, not with before the stream: pgbench
# may use up the free slots and append pages before the crash lands.)
# INDEX_CLEANUP ON: no bypass of the index pass (see above)
$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) churn');
$info = omen_diskann_info($node, 'churn_dk');
is($info->{live_nodes}, $rows, '(c) after VACUUM the index has one live node per row');
omen_diskann_check_nodes($node, table => 'churn', index => 'churn_dk',
	name => '(c) after VACUUM');
my $left = $info->{free_slots};
$node->safe_psql('postgres', qq{
	SELECT setseed(0.64);
	INSERT INTO churn (v) SELECT omen_rvec() FROM generate_series(1, $left);
});
my $full = omen_diskann_info($node, 'churn_dk');
is("$full->{free_slots} free slots, $full->{node_pages} node pages, $full->{vector_pages} vector pages",
	"0 free slots, $info->{node_pages} node pages, $info->{vector_pages} vector pages",
	"(c) $left inserts after the crash filled the $left free slots and added no page");
crash_restart('(c) crash after refilling');
check_full_scans('(c) after refilling', 'churn', 'churn_dk');
check_recall_like_fresh('(c) after refilling', 'churn', 'churn_dk');

$node->stop;
done_testing();
