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

our @EXPORT = qw(omen_node omen_standby omen_vectors_sql omen_vector_literal);

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

	$primary->backup($backup);
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
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

1;
