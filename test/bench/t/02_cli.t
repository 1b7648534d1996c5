#!/bin/bash
# omen-bench's command line without a server: help, bad input (one clear line
# and a non-zero exit each), ground truth and its cache on a tiny set.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tap.sh"
ob=$here/../../bench/omen-bench
scratch=$(mktemp -d "${TMPDIR:-/tmp}/omen-bench-cli.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export OMEN_BENCH_CACHE=$scratch/cache
# no server may be reached by accident
export PGHOST=$scratch/nosocket PGPORT=1

run_cmd out "$ob" --help
is "$rc" 0 "--help exits 0"
like "$out" "usage: omen-bench COMMAND" "--help shows the usage"
like "$out" "--sweep NAME=V1,V2" "--help documents --sweep"

run_cmd out "$ob"
is "$rc" 2 "no command: exit 2"
like "$out" "no command given" "no command: says so"

run_cmd out "$ob" frobnicate
is "$rc" 2 "unknown command: exit 2"
is "$(wc -l <<<"$out")" 1 "unknown command: one line"

run_cmd out "$ob" gt -d nonsense
is "$rc" 2 "unknown dataset: exit 2"
like "$out" "unknown dataset \"nonsense\": use fmnist" "unknown dataset: says which exist"

run_cmd out "$ob" gt -d "fmnist:dir=$scratch/none"
is "$rc" 1 "missing Fashion-MNIST files: exit 1"
is "$(wc -l <<<"$out")" 1 "missing dataset: one line"
like "$out" "cannot open.*dataset-fashion-mnist" "missing dataset: names the file and the package to install"

run_cmd out "$ob" exact -d synth:n=100,dim=4 --conn "host=$scratch/nosocket port=1"
is "$rc" 1 "failing connection: exit 1"
is "$(wc -l <<<"$out")" 1 "failing connection: one line"
like "$out" "cannot connect to the server .*give --conn" "failing connection: says what to do"

run_cmd out "$ob" run -k 0
is "$rc" 2 "--k 0: exit 2"
run_cmd out "$ob" run --clients 1,x
like "$out" "--clients wants a whole number" "bad --clients list refused"
run_cmd out "$ob" run --set foo
like "$out" "--set wants NAME=VALUE" "--set without = refused"
run_cmd out "$ob" run --index "CREATE INDEX ON t (v)" --use-index x
like "$out" "not both" "--index with --use-index refused"
run_cmd out "$ob" stream --in-place -d table:t.v
like "$out" "never runs --in-place" "stream --in-place refused"
run_cmd out "$ob" plot
like "$out" "plot wants JSON lines files" "plot without input refused"
printf '{"kind":"query",}\n' >"$scratch/bad.jsonl"
run_cmd out "$ob" plot "$scratch/bad.jsonl" --plot "$scratch/p"
is "$rc" 1 "plot of a malformed line: exit 1"
like "$out" "bad.jsonl:1: not an omen-bench JSON line" "plot names the bad line"

# ground truth without a server
run_cmd out "$ob" gt -d synth:n=500,dim=8,seed=3 -q 20 -k 5
is "$rc" 0 "gt on synth:n=500,dim=8: exit 0"
like "$out" "computed with omen's kernels, saved to $scratch/cache/gt-" "gt: computed and saved in the cache"
run_cmd out "$ob" gt -d synth:n=500,dim=8,seed=3 -q 10 -k 5
like "$out" "cached in $scratch/cache/gt-" "gt: 10 queries served from the 20-query cache"
run_cmd out "$ob" gt -d synth:n=500,dim=8,seed=4 -q 10
like "$out" "computed with" "gt: another seed is not served from the cache"
run_cmd out "$ob" gt -d synth:n=500,dim=8,seed=3 -q 10 -m cosine
like "$out" "computed with" "gt: another metric is not served from the cache"
run_cmd out "$ob" gt -d synth:n=50,dim=8 -k 60
is "$rc" 2 "gt: k larger than the rows refused"
run_cmd out "$ob" gt -d synth:n=500,dim=8,seed=3 -q 10 -o - --quiet
like "$out" '"kind":"gt".*"cached":true' "gt -o -: a JSON line on stdout"

done_testing
