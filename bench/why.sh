#!/usr/bin/env bash
# homing why vs Sisimai: reading the bounce corpus (see bench/README.md, "Reading bounces").
#
#   homing:  target/release/homing why --json CORPUS        one process, every message
#   Sisimai: perl -MSisimai: Sisimai->make(FILE) per file    one process, every file
#
# Usage: bench/why.sh [--help]
# Environment (defaults in brackets):
#   RUNS [5] runs of each tool (median reported)   PASSES [1] times each process reads the corpus
#   CORPUS [../shared/bounce-corpus/emails, from the repository root]
#   BUILD [1] (0 = use the binary already built)  HOMING_BIN [target/release/homing]
# Installs Debian's libsisimai-perl when it is missing (as root, or with sudo).
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
RUNS=${RUNS:-5}; PASSES=${PASSES:-1}; BUILD=${BUILD:-1}
CORPUS=${CORPUS:-$ROOT/../shared/bounce-corpus/emails}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOMING_BIN=${HOMING_BIN:-$TARGET_DIR/release/homing}

case "${1:-}" in
  -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

say() { printf '[why-bench %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { say "FAILED: $*" >&2; exit 1; }
positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || fail "$1=$2: give a whole number of at least 1"; }
positive RUNS "$RUNS"; positive PASSES "$PASSES"

if [ ! -d "$CORPUS" ]; then
  cat >&2 <<EOF

  *** The bounce corpus is not there: $CORPUS
  *** bench/why.sh reads the corpus from outside the repository (../shared/bounce-corpus/emails
  *** next to the checkout); point CORPUS at a directory of bounce messages to use another one.

EOF
  exit 1
fi
CORPUS=$(cd "$CORPUS" && pwd)

# The same files for both tools: what `homing why DIR` reads (regular files, recursively,
# hidden entries skipped; the corpus has no Maildir tmp/).
mapfile -t FILES < <(cd "$CORPUS" && find . -name '.*' ! -name . -prune -o -type f -print | sort | sed "s|^\.|$CORPUS|")
[ ${#FILES[@]} -gt 0 ] || fail "no files in $CORPUS"

install_sisimai() {
  perl -MSisimai -e 1 2>/dev/null && return 0
  say "Sisimai is missing: apt-get install libsisimai-perl"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "libsisimai-perl is not installed; install it as root: apt-get install libsisimai-perl"
    sudo=sudo
  fi
  { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends libsisimai-perl; } \
    > /tmp/why-bench-apt.log 2>&1 || { tail -20 /tmp/why-bench-apt.log; fail "apt-get install libsisimai-perl failed (log /tmp/why-bench-apt.log)"; }
  perl -MSisimai -e 1 || fail "Sisimai still does not load after installing libsisimai-perl"
}

build() {
  if [ "$BUILD" = 0 ]; then say "BUILD=0: using $HOMING_BIN as built"; return 0; fi
  if command -v cargo >/dev/null; then
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin homing) || fail "cargo build --release failed"
  elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    say "cargo is not on root's PATH: building as $SUDO_USER"
    sudo -u "$SUDO_USER" -H bash -lc "cd '$ROOT' && cargo build --release --quiet --bin homing" || fail "cargo build --release failed"
  else
    say "cargo not found: using $HOMING_BIN as built"
  fi
  [ -x "$HOMING_BIN" ] || fail "$HOMING_BIN missing: cargo build --release"
}

# Sisimai: one perl process, Sisimai->make on every file, PASSES times; prints how many
# files it read and how many results (one per recipient) it gave.
SISIMAI='
use strict; use warnings; use Sisimai;
my $passes = shift @ARGV;
chomp(my @files = <STDIN>);
my ($files, $results) = (0, 0);
for (1 .. $passes) {
  for my $f (@files) {
    my $data = Sisimai->make($f);
    $files++;
    $results += scalar @$data if $data;
  }
}
print "$files $results\n";
'

now() { date +%s%N; }
WORK=$(mktemp -d /tmp/why-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# run_homing: prints "nanoseconds messages"
run_homing() {
  local dirs=() i t0 t1 rc=0
  for ((i = 0; i < PASSES; i++)); do dirs+=("$CORPUS"); done
  t0=$(now)
  "$HOMING_BIN" why --json "${dirs[@]}" > "$WORK/homing.json" 2> "$WORK/homing.err" || rc=$?
  t1=$(now)
  # Exit 1 means some message could not be read; it is reported below, not fatal.
  [ $rc -le 1 ] || { tail -5 "$WORK/homing.err"; fail "homing why exited with $rc"; }
  echo "$((t1 - t0)) $(wc -l < "$WORK/homing.json")"
}

run_sisimai() {
  local t0 t1 out
  t0=$(now)
  out=$(printf '%s\n' "${FILES[@]}" | perl -e "$SISIMAI" "$PASSES" 2> "$WORK/sisimai.err") \
    || { tail -5 "$WORK/sisimai.err"; fail "perl -MSisimai failed"; }
  t1=$(now)
  echo "$((t1 - t0)) ${out%% *}"
}

main() {
  install_sisimai
  build
  local load bytes
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  bytes=$(cat "${FILES[@]}" | wc -c)
  say "corpus $CORPUS: ${#FILES[@]} files, $((bytes / 1024)) KiB; RUNS=$RUNS PASSES=$PASSES"
  say "homing $("$HOMING_BIN" --version | awk '{print $NF}') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')), $HOMING_BIN"
  say "Sisimai $(perl -MSisimai -e 'print Sisimai->version'), perl $(perl -e 'print $^V')"
  say "machine: $(nproc) cores; load average now: $load"
  awk -v l="${load%% *}" 'BEGIN { exit !(l > 1.0) }' \
    && say "WARNING: the machine is busy (load ${load%% *}): other work skews the figures"

  say "warm-up: one run of each (page cache, and the two outputs checked)"
  local h s
  h=$(run_homing); s=$(run_sisimai)
  local errors
  errors=$(grep -c '"error":' "$WORK/homing.json" || true)
  [ "$errors" = 0 ] || say "note: homing could not read $errors message(s): $(grep -m1 '"error":' "$WORK/homing.json")"
  say "homing printed ${h#* } messages, Sisimai read ${s#* } files (of ${#FILES[@]} x $PASSES)"

  local i hs=() ss=()
  for ((i = 1; i <= RUNS; i++)); do
    # Alternate which goes first, as bench/run.sh does.
    if ((i % 2)); then h=$(run_homing); s=$(run_sisimai); else s=$(run_sisimai); h=$(run_homing); fi
    hs+=("$h"); ss+=("$s")
    printf '  run %d: homing %8.3f s %9.0f msg/s   Sisimai %8.3f s %9.0f msg/s\n' "$i" \
      "$(awk -v n="${h% *}" 'BEGIN{print n/1e9}')" "$(awk -v n="${h% *}" -v m="${h#* }" 'BEGIN{print m/(n/1e9)}')" \
      "$(awk -v n="${s% *}" 'BEGIN{print n/1e9}')" "$(awk -v n="${s% *}" -v m="${s#* }" 'BEGIN{print m/(n/1e9)}')"
  done

  # Median rate of the runs (messages per second), then the ratio of the medians.
  median_rate() { printf '%s\n' "$@" | awk '{print $2/($1/1e9)}' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  range() { printf '%s\n' "$@" | awk '{print $2/($1/1e9)}' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }
  local hm sm
  hm=$(median_rate "${hs[@]}"); sm=$(median_rate "${ss[@]}")
  echo
  printf '  %-8s %14s %16s\n' "" "median msg/s" "range msg/s"
  printf '  %-8s %14.0f %16s\n' homing "$hm" "$(range "${hs[@]}")"
  printf '  %-8s %14.0f %16s\n' Sisimai "$sm" "$(range "${ss[@]}")"
  printf '  ratio homing/Sisimai: %.1fx\n' "$(awk -v a="$hm" -v b="$sm" 'BEGIN{print a/b}')"
}

main
