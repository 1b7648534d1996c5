# test/bench/tap.sh: TAP helpers for the shell tests in t/ (source it).
#   ok COND_STATUS "name"         ok if the status is 0
#   is GOT WANT "name"            string equality
#   like GOT REGEX "name"         bash regex match
#   run_cmd OUT_VAR CMD...        run, capture stdout+stderr into $OUT_VAR, status in $rc
#   done_testing                  print the plan, exit non-zero if anything failed
_tap_n=0
_tap_failed=0

ok()
{
	_tap_n=$((_tap_n + 1))
	if [[ $1 -eq 0 ]]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}

diag()
{
	printf '%s\n' "$@" | sed 's/^/# /' >&2
}

is()
{
	if [[ $1 == "$2" ]]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want: '$2'"
	fi
}

like()
{
	if [[ $1 =~ $2 ]]; then
		ok 0 "$3"
	else
		ok 1 "$3"
		diag "got:  '$1'" "want match of: $2"
	fi
}

# run_cmd VAR cmd...: output (stdout and stderr) into VAR, exit status into rc
run_cmd()
{
	local __var=$1
	shift
	local __out
	__out=$("$@" 2>&1)
	rc=$?
	printf -v "$__var" '%s' "$__out"
}

done_testing()
{
	echo "1..$_tap_n"
	[[ $_tap_failed -eq 0 ]]
}
