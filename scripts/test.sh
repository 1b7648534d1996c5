#!/bin/bash
# scripts/test.sh: THE test command (README's second command; .ci/run runs it).
#
# From the repo root, as root on Debian bookworm:  bash scripts/test.sh
#
# Installs missing packages, builds omen twice (-Werror, then with assertions,
# which is what gets installed and tested), then runs every suite, even after a
# failure:
#   unit     make -C test/unit check (SIMD kernels, standalone C)
#   regress  pg_regress (sql/*.sql against expected/*.out) on a throwaway cluster
#   pgtap    test/pgtap/*.sql with pg_prove on that cluster
#   tap      test/perl/t/*.pl (PostgreSQL::Test::Cluster: crash recovery,
#            streaming standby) with prove, as the postgres user
#   bench    omen-bench (bench/): build it with -Werror, then test/bench/t/*.t with
#            prove: unit tests, command line, end to end on a throwaway cluster
# Every server runs with wal_consistency_checking = 'generic'.  It prints each
# suite's result and ends with the line  Total: N passed, N failed  (suites),
# exiting non-zero if any failed.  Set OMEN_TEST_SUITES="regress pgtap" to run
# only some suites (the builds always run).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$OMEN_ROOT"

export PATH="$PG_BINDIR:$PATH"
export LC_ALL=C.UTF-8 LANG=C.UTF-8
# .../lib/pgxs, which holds src/test/perl and src/test/regress/pg_regress
PGXS_DIR=$("$PG_CONFIG" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/pgxs
jobs=$(nproc 2>/dev/null || echo 2)
logdir=$(mktemp -d "${TMPDIR:-/tmp}/omen-test.XXXXXX")
omen_on_exit "rm -rf '$logdir'"
started=$SECONDS

passed=0
failed=0
summary=()

# Record a suite's result: record NAME pass|fail|skip SECONDS [note]
record()
{
	local line
	line=$(printf '%-8s %-4s %4ss  %s' "$1" "$(tr a-z A-Z <<<"$2")" "$3" "${4:-}")
	summary+=("$line")
	case $2 in
		pass) passed=$((passed + 1)) ;;
		fail) failed=$((failed + 1)) ;;
	esac
	echo "--- $line"
}

want()
{
	[[ -z ${OMEN_TEST_SUITES:-} || " $OMEN_TEST_SUITES " == *" $1 "* ]]
}

banner()
{
	echo
	echo "=== $* ==="
}

# Run a build step quietly; on failure show its output.
#   build_step NAME "description" command...
build_step()
{
	local name=$1 log="$logdir/$1.log" t0=$SECONDS
	banner "$name: $2"
	shift 2
	if "$@" >"$log" 2>&1; then
		grep -E 'warning:' "$log" || true
		record "$name" pass $((SECONDS - t0))
		return 0
	fi
	tail -n 80 "$log"
	record "$name" fail $((SECONDS - t0)) "(output above)"
	return 1
}

# --- packages --------------------------------------------------------------
banner "deps: scripts/deps.sh"
if ! bash scripts/deps.sh; then
	echo "deps: could not install the packages in scripts/packages.txt"
	echo "Total: 0 passed, 1 failed"
	exit 1
fi

# --- builds ----------------------------------------------------------------
mk=(make -j"$jobs" PG_CONFIG="$PG_CONFIG")
build_werror()
{
	"${mk[@]}" clean && "${mk[@]}" OMEN_WERROR=1
}
build_assert_install()
{
	"${mk[@]}" clean && "${mk[@]}" OMEN_ASSERT=1 && "${mk[@]}" OMEN_ASSERT=1 install
}
build_step werror "make OMEN_WERROR=1 (warnings are errors)" build_werror
installed=0
if build_step install "make OMEN_ASSERT=1 && make install (the build the tests use)" build_assert_install; then
	installed=1
fi

# --- unit tests ------------------------------------------------------------
if want unit; then
	if [[ -f test/unit/Makefile ]]; then
		banner "unit: make -C test/unit check"
		t0=$SECONDS
		if make -C test/unit check; then
			record unit pass $((SECONDS - t0))
		else
			record unit fail $((SECONDS - t0))
		fi
	else
		record unit skip 0 "(no test/unit/Makefile)"
	fi
fi

# --- a throwaway cluster for pg_regress and pgTAP ---------------------------
cluster_ok=0
if want regress || want pgtap; then
	if [[ $installed -eq 1 ]]; then
		banner "cluster: throwaway PostgreSQL 15 (wal_consistency_checking = generic)"
		if cluster_start; then
			cluster_ok=1
			echo "PGHOST=$PGHOST PGPORT=$PGPORT"
		fi
	fi
fi
not_run_reason()
{
	if [[ $installed -ne 1 ]]; then echo "(not run: build/install failed)"; else echo "(not run: cluster did not start)"; fi
}

# --- pg_regress ------------------------------------------------------------
if want regress; then
	banner "regress: make installcheck"
	t0=$SECONDS
	rm -f regression.diffs
	if [[ $cluster_ok -ne 1 ]]; then
		record regress fail 0 "$(not_run_reason)"
	elif "${mk[@]}" installcheck; then
		record regress pass $((SECONDS - t0))
	else
		if [[ -f regression.diffs ]]; then
			echo "--- regression.diffs (first 300 lines):"
			head -n 300 regression.diffs
		fi
		record regress fail $((SECONDS - t0)) "(diffs above; results/ and regression.diffs kept)"
	fi
fi

# --- pgTAP -----------------------------------------------------------------
if want pgtap; then
	shopt -s nullglob
	pgtap_files=(test/pgtap/*.sql)
	shopt -u nullglob
	banner "pgtap: pg_prove test/pgtap/*.sql"
	t0=$SECONDS
	if [[ ${#pgtap_files[@]} -eq 0 ]]; then
		record pgtap skip 0 "(no test/pgtap/*.sql)"
	elif [[ $cluster_ok -ne 1 ]]; then
		record pgtap fail 0 "$(not_run_reason)"
	elif psql -XqAt -c 'CREATE DATABASE omen_pgtap' &&
		pg_prove --ext .sql --dbname omen_pgtap --failures --comments "${pgtap_files[@]}"; then
		record pgtap pass $((SECONDS - t0))
	else
		record pgtap fail $((SECONDS - t0))
	fi
fi
cluster_stop

# --- Perl TAP (PostgreSQL::Test::Cluster) ----------------------------------
if want tap; then
	shopt -s nullglob
	tap_files=(test/perl/t/*.pl)
	shopt -u nullglob
	banner "tap: prove test/perl/t/*.pl (as postgres)"
	t0=$SECONDS
	if [[ ${#tap_files[@]} -eq 0 ]]; then
		record tap skip 0 "(no test/perl/t/*.pl)"
	elif [[ $installed -ne 1 ]]; then
		record tap fail 0 "(not run: build/install failed)"
	else
		# The framework runs initdb itself, so prove runs as postgres, on a copy
		# of test/perl it can read and a scratch TESTDIR it can write.
		tapdir=$(mktemp -d "${TMPDIR:-/tmp}/omen-tap.XXXXXX")
		omen_on_exit "rm -rf '$tapdir'"
		cp -r test/perl "$tapdir/perl"
		echo "wal_consistency_checking = 'generic'" >"$tapdir/temp.conf"
		# the framework's socket directories go here too, so nothing is left
		# in /tmp when a failed test keeps its temporary files
		mkdir "$tapdir/tmp"
		chown -R postgres: "$tapdir"
		chmod 755 "$tapdir"
		(cd "$tapdir" && as_postgres env \
			PATH="$PATH" \
			TESTDIR="$tapdir" \
			TMPDIR="$tapdir/tmp" \
			PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
			TEMP_CONFIG="$tapdir/temp.conf" \
			PERL5LIB="$PGXS_DIR/src/test/perl:$tapdir/perl" \
			prove --timer "${tap_files[@]/#test\//}") 2>&1 | tee "$logdir/prove.out"
		if [[ ${PIPESTATUS[0]} -eq 0 ]]; then
			record tap pass $((SECONDS - t0))
		else
			# the logs of the failed test files: test output, then each node's server log
			failed_tap=$(sed -n '/^Test Summary Report/,$p' "$logdir/prove.out" |
				grep -oE '^perl/t/[^ ]+\.pl' | xargs -r -n1 basename | sed 's/\.pl$//')
			for t in $failed_tap; do
				for f in "$tapdir/tmp_check/log/regress_log_$t" "$tapdir/tmp_check/log/${t}_"*.log; do
					[[ -f $f ]] || continue
					echo "--- tail of ${f#"$tapdir"/}:"
					tail -n 60 "$f"
				done
			done
			rm -rf test/perl/tmp_check
			mkdir -p test/perl/tmp_check
			cp -r "$tapdir/tmp_check/log" test/perl/tmp_check/ 2>/dev/null || true
			record tap fail $((SECONDS - t0)) "(log tails above; all logs in test/perl/tmp_check/log)"
		fi
	fi
fi

# --- omen-bench --------------------------------------------------------------
if want bench; then
	banner "bench: make -C test/bench check (omen-bench: build, unit, command line, end to end)"
	t0=$SECONDS
	if [[ $installed -ne 1 ]]; then
		record bench fail 0 "(not run: build/install failed)"
	elif make -C test/bench PG_CONFIG="$PG_CONFIG" CFLAGS="-O2 -g -Werror" check; then
		record bench pass $((SECONDS - t0))
	else
		record bench fail $((SECONDS - t0))
	fi
fi

# --- summary ---------------------------------------------------------------
echo
echo "=== summary ($((SECONDS - started))s) ==="
printf '%s\n' "${summary[@]}"
_omen_run_exit
echo "Total: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
