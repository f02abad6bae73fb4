#!/usr/bin/env bash
# homing vs Postfix, end to end, on loopback (see bench/README.md).
#
#   smtp-source -> homing  127.0.0.1:2525 -> MX via DNS -> smtp-sink 127.0.0.11:25
#   smtp-source -> Postfix 127.0.0.1:2526 -> MX via DNS -> smtp-sink 127.0.0.11:25
#   DNS: dns_serve (crates/testkit/examples) on 127.0.0.10:53, zones example.test, dead.test
#
# Usage: sudo bench/run.sh [--keep | --down | --help]
#   --keep   leave DNS, smtp-sink, Postfix and homing running afterwards (stop with --down)
#   --down   stop whatever a previous --keep run left running, then exit
# Environment (defaults in brackets):
#   N [20000] messages per run (0 = skip)   RUNS [1] runs per case (median)   SESS [20] sessions
#   SIZES ["1024 51200"] bytes     QUEUE_N [100000] queue test (0 = skip)
#   TARGETS ["homing postfix"]     BUILD [1] (0 = use the binaries already built)
#   BENCH_STATE [/var/spool/homing-bench] work dir (configs, queues, logs)
#   HOMING_BIN [target/release/homing]
#   HOMING_ADDR [127.0.0.1:2525]  POSTFIX_ADDR [127.0.0.1:2526]  (loopback addresses only)
# Everything started here is stopped at the end by its PID. Output: bench/results/.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
N=${N:-20000}; RUNS=${RUNS:-1}; SESS=${SESS:-20}; SIZES=${SIZES:-"1024 51200"}
QUEUE_N=${QUEUE_N:-100000}; TARGETS=${TARGETS:-"homing postfix"}; BUILD=${BUILD:-1}
STATE=${BENCH_STATE:-/var/spool/homing-bench}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOMING_BIN=${HOMING_BIN:-$TARGET_DIR/release/homing}
DNS_BIN=$TARGET_DIR/release/examples/dns_serve
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
DRIVER="$BENCH_DIR/driver.py"

# address plan: loopback only
DNS_IP=127.0.0.10          # dns_serve, port 53
MX_IP=127.0.0.11           # smtp-sink = mx1.example.test
DEAD_IP=127.0.0.99         # mx.dead.test: nothing listens, connection refused
HOMING_ADDR=${HOMING_ADDR:-127.0.0.1:2525}
POSTFIX_ADDR=${POSTFIX_ADDR:-127.0.0.1:2526}
for a in "$HOMING_ADDR" "$POSTFIX_ADDR"; do
  case $a in 127.*:[0-9]*) ;; *) echo "$a: use a loopback address, 127.x.y.z:PORT" >&2; exit 2 ;; esac
done

RUN=$STATE/run; LOGS=$STATE/logs
PF_ETC=$STATE/postfix/etc; PF_Q=$STATE/postfix/queue; PF_DATA=$STATE/postfix/data
H_SPOOL=$STATE/homing/spool; H_CONF=$STATE/homing/homing.toml; H_LOG=$LOGS/homing.log
SINK_COUNT=$RUN/sink.count

KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  --down) DOWN=1 ;;
  -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

STEP="start"
say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*"; }
step() { STEP=$1; say "---- $1"; }
fail() { say "FAILED in step '$STEP': $*"; exit 1; }
has() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" 2>/dev/null; }
# ---- processes: started in the background, pid in $RUN/NAME.pid, stopped by that pid ----
# stop_pid NAME EXPECTED: only if /proc/PID/cmdline still names EXPECTED (no recycled pids)
stop_pid() {
  local f=$RUN/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f"); rm -f "$f"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do alive "$pid" || { say "stopped $1 (pid $pid)"; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  say "killed $1 (pid $pid): it did not stop within 10 s"
}
postfix_running() { [ -f "$PF_ETC/main.cf" ] && postfix -c "$PF_ETC" status >/dev/null 2>&1; }
stop_all() {
  stop_pid homing "$HOMING_BIN"
  if postfix_running; then postfix -c "$PF_ETC" stop >/dev/null 2>&1 && say "stopped Postfix (master pid from $PF_Q/pid/master.pid)"; fi
  stop_pid smtp-sink smtp-sink
  stop_pid dns dns_serve
}
if [ "${DOWN:-0}" = 1 ]; then stop_all; exit 0; fi

# listening? (tcp or udp); free = no listener on IP:PORT nor on the wildcard address
listening() { ss -Hln"${3:-t}" "src $1:$2" 2>/dev/null | grep -q .; }
wait_listen() {
  for _ in $(seq 200); do listening "$@" && return 0; sleep 0.05; done
  return 1
}
need_free() {
  local ip=$1 port=$2 proto=${3:-t} who
  who=$(ss -Hln"$proto"p "sport = :$port" 2>/dev/null | awk -v a="$ip:$port" -v p=":$port" \
        '$4 == a || $4 == "0.0.0.0" p || $4 == "*" p || $4 == "[::]" p' || true)
  [ -z "$who" ] || fail "$ip:$port ($proto) is already in use: $who"
}

# ---- steps ------------------------------------------------------------------------
install_deps() {
  step "install: postfix (smtp-source, smtp-sink), iproute2, python3"
  local need=() p
  for p in postfix iproute2 python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    # no system Postfix: "No configuration", and policy-rc.d keeps maintainer scripts from starting daemons
    printf 'postfix postfix/main_mailer_type select No configuration\n' | debconf-set-selections
    local created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created=1
    fi
    local rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } \
      > "$LOGS/apt.log" 2>&1 || rc=$?
    [ $created = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || { tail -20 "$LOGS/apt.log"; fail "apt-get install ${need[*]} failed (log $LOGS/apt.log)"; }
  fi
  command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null || fail "smtp-source/smtp-sink not found"
}

build() {
  step "build: cargo build --release (homing) and the dns_serve example"
  if [ "$BUILD" = 0 ]; then say "BUILD=0: using the binaries already built"; return 0; fi
  local cmds="cargo build --release -p homing-testkit --example dns_serve"
  has homing && cmds="cargo build --release && $cmds"
  local rc=0
  if command -v cargo >/dev/null; then
    (cd "$ROOT" && eval "$cmds") > "$LOGS/build.log" 2>&1 || rc=$?
  elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    say "cargo is not on root's PATH: building as $SUDO_USER"
    sudo -u "$SUDO_USER" -H bash -lc "cd '$ROOT' && $cmds" > "$LOGS/build.log" 2>&1 || rc=$?
  else
    say "cargo not found: using the binaries already built"
  fi
  if [ $rc != 0 ]; then
    grep -E '^(error|warning: unused)' "$LOGS/build.log" | head -10; tail -5 "$LOGS/build.log"
    fail "the build failed (log $LOGS/build.log)"
  fi
}

check_bins() {
  [ -x "$DNS_BIN" ] || fail "$DNS_BIN missing: cargo build --release -p homing-testkit --example dns_serve"
  if has homing; then
    [ -x "$HOMING_BIN" ] || fail "$HOMING_BIN missing: cargo build --release"
  fi
}

preflight() {
  step "preflight: stop leftovers of an earlier run, check that the addresses are free"
  stop_all
  need_free $DNS_IP 53 u; need_free $DNS_IP 53 t; need_free $MX_IP 25
  need_free "${HOMING_ADDR%:*}" "${HOMING_ADDR##*:}"; need_free "${POSTFIX_ADDR%:*}" "${POSTFIX_ADDR##*:}"
  need_free $DEAD_IP 25
  rm -rf "$H_SPOOL"; : > "$SINK_COUNT"
}

start_dns() {
  step "DNS: dns_serve on $DNS_IP:53 (example.test MX mx1 -> $MX_IP; dead.test MX -> $DEAD_IP)"
  mkdir -p "$STATE/dns"
  cat > "$STATE/dns/example.test.zone" <<EOF
\$ORIGIN example.test.
\$TTL 3600
@    SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@    NS  ns.example.test.
@    MX  10 mx1.example.test.
ns   A   $DNS_IP
mx1  A   $MX_IP
EOF
  cat > "$STATE/dns/dead.test.zone" <<EOF
\$ORIGIN dead.test.
\$TTL 3600
@    SOA ns.dead.test. hostmaster.dead.test. 1 3600 600 86400 60
@    NS  ns.dead.test.
@    MX  10 mx.dead.test.
ns   A   $DNS_IP
mx   A   $DEAD_IP
EOF
  "$DNS_BIN" --bind $DNS_IP --port 53 --empty-zone test. \
    "$STATE/dns/example.test.zone" "$STATE/dns/dead.test.zone" > "$LOGS/dns.log" 2>&1 &
  echo $! > "$RUN/dns.pid"
  for _ in $(seq 100); do grep -q 'listening on' "$LOGS/dns.log" && break; sleep 0.05; done
  grep -q 'listening on' "$LOGS/dns.log" || { cat "$LOGS/dns.log"; fail "dns_serve did not start"; }
  say "dns_serve pid $(cat "$RUN/dns.pid")"
  $PY "$DRIVER" dnscheck $DNS_IP:53 example.test MX --expect mx1.example.test || fail "DNS check"
  $PY "$DRIVER" dnscheck $DNS_IP:53 mx1.example.test A --expect $MX_IP || fail "DNS check"
  $PY "$DRIVER" dnscheck $DNS_IP:53 dead.test MX --expect mx.dead.test || fail "DNS check"
  $PY "$DRIVER" dnscheck $DNS_IP:53 mx.dead.test A --expect $DEAD_IP || fail "DNS check"
}

start_sink() {
  step "smtp-sink on $MX_IP:25 (mx1.example.test), counting messages"
  smtp-sink -c -u nobody -h mx1.example.test $MX_IP:25 1024 > "$SINK_COUNT" 2> "$LOGS/smtp-sink.log" &
  echo $! > "$RUN/smtp-sink.pid"
  wait_listen $MX_IP 25 || { cat "$LOGS/smtp-sink.log"; fail "smtp-sink is not listening on $MX_IP:25"; }
  say "smtp-sink pid $(cat "$RUN/smtp-sink.pid")"
}

start_postfix() {
  step "Postfix relay on $POSTFIX_ADDR (config $PF_ETC, queue $PF_Q)"
  mkdir -p "$PF_ETC" "$PF_Q" "$PF_DATA"
  chown postfix "$PF_DATA"   # master.lock and caches live there
  cat > "$PF_ETC/main.cf" <<EOF
# written by bench/run.sh: a plain relay for 127.0.0.0/8 that resolves MX through $DNS_IP
compatibility_level = 3.6
queue_directory = $PF_Q
data_directory = $PF_DATA
myhostname = relay.bench.test
mydomain = bench.test
myorigin = \$mydomain
mydestination =
relay_domains =
local_recipient_maps =
inet_interfaces = ${POSTFIX_ADDR%:*}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
smtp_host_lookup = dns
disable_dns_lookups = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
append_dot_mydomain = no
maillog_file = $LOGS/postfix.log
maillog_file_prefixes = $LOGS
EOF
  # the distribution's master.cf, with smtpd moved from port 25 to $POSTFIX_ADDR
  local src=/etc/postfix/master.cf
  [ -f $src ] || src=/usr/share/postfix/master.cf.dist
  sed -E "s/^smtp([[:space:]]+inet[[:space:]])/$POSTFIX_ADDR\1/" $src > "$PF_ETC/master.cf"
  grep -q "^$POSTFIX_ADDR " "$PF_ETC/master.cf" || fail "could not put smtpd on $POSTFIX_ADDR in $PF_ETC/master.cf"
  # smtp(8) and smtpd(8) run chrooted in the queue directory: their resolver reads
  # $PF_Q/etc/resolv.conf, which points at the bench DNS (the system's is not touched)
  mkdir -p "$PF_Q/etc"
  local f
  for f in services hosts localtime host.conf nsswitch.conf; do [ -e /etc/$f ] && cp -L /etc/$f "$PF_Q/etc/"; done
  printf 'nameserver %s\noptions attempts:2 timeout:1\n' $DNS_IP > "$PF_Q/etc/resolv.conf"
  : > "$LOGS/postfix.log"; : > "$LOGS/postfix-start.log"
  # mail left over by an interrupted run would be counted as delivered by this one
  postsuper -c "$PF_ETC" -d ALL >> "$LOGS/postfix-start.log" 2>&1 || true
  postfix -c "$PF_ETC" check > "$LOGS/postfix-check.log" 2>&1 || { cat "$LOGS/postfix-check.log"; fail "postfix check"; }
  postfix -c "$PF_ETC" start >> "$LOGS/postfix-start.log" 2>&1 || { cat "$LOGS/postfix-start.log"; fail "postfix start"; }
  wait_listen "${POSTFIX_ADDR%:*}" "${POSTFIX_ADDR##*:}" || { tail "$LOGS/postfix.log"; fail "Postfix is not listening on $POSTFIX_ADDR"; }
  say "Postfix $(postconf -c "$PF_ETC" -h mail_version) master pid $(tr -d ' ' < "$PF_Q/pid/master.pid")"
}

write_homing_config() {
  mkdir -p "$(dirname "$H_CONF")"
  cat > "$H_CONF" <<EOF
# written by bench/run.sh
hostname = "bench.homing.test"
spool_dir = "$H_SPOOL"

[[listener]]
address = "$HOMING_ADDR"

[dns]
servers = ["$DNS_IP:53"]

[delivery]
port = 25
EOF
  "$HOMING_BIN" config check --config "$H_CONF" > "$LOGS/homing-config.log" 2>&1 \
    || { cat "$LOGS/homing-config.log"; fail "homing config check --config $H_CONF"; }
}

start_homing() {
  step "homing on $HOMING_ADDR (config $H_CONF, spool $H_SPOOL)"
  write_homing_config
  NO_COLOR=1 "$HOMING_BIN" serve --config "$H_CONF" >> "$H_LOG" 2>&1 < /dev/null &
  echo $! > "$RUN/homing.pid"
  disown $!   # the queue test SIGKILLs it on purpose: no "Killed" job notice
  wait_listen "${HOMING_ADDR%:*}" "${HOMING_ADDR##*:}" || { tail -20 "$H_LOG"; fail "homing is not listening on $HOMING_ADDR (log $H_LOG)"; }
  say "homing $("$HOMING_BIN" --version | awk '{print $NF}') pid $(cat "$RUN/homing.pid"), log $H_LOG"
}

target_args() {
  local a=()
  has homing && a+=(--target homing "$HOMING_ADDR" "homing:$H_SPOOL" "$RUN/homing.pid")
  has postfix && a+=(--target postfix "$POSTFIX_ADDR" "postfix:$PF_Q" "$PF_Q/pid/master.pid")
  printf '%s\n' "${a[@]}"
}

main() {
  [ "$(id -u)" = 0 ] || { echo "run as root (ports 25 and 53, apt, Postfix): sudo bench/run.sh" >&2; exit 1; }
  mkdir -p "$RUN" "$LOGS" "$RESULTS_DIR"
  : > "$H_LOG"
  trap 'fail "command failed at line $LINENO: $BASH_COMMAND"' ERR
  trap 'exit 130' INT TERM
  trap cleanup EXIT
  say "homing benchmark: N=$N RUNS=$RUNS SESS=$SESS SIZES=\"$SIZES\" QUEUE_N=$QUEUE_N TARGETS=\"$TARGETS\""
  say "work dir $STATE, results $RESULTS_BASE.{txt,json}"
  LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
  say "load average now: $LOAD"
  awk -v l="${LOAD%% *}" 'BEGIN { exit !(l > 1.0) }' \
    && say "WARNING: the machine is busy (load ${LOAD%% *}): other work shares the CPUs and skews the figures"
  install_deps
  build
  check_bins
  preflight
  start_dns
  start_sink
  has postfix && start_postfix
  has homing && start_homing

  mapfile -t TARGET_ARGS < <(target_args)
  step "smoke test: 3 messages through each MTA to the sink"
  rm -f "$RUN/smoke.json"
  $PY "$DRIVER" --results "$RUN/smoke.json" bench --count-file "$SINK_COUNT" --n 3 --sess 1 --runs 1 \
    --sizes 1024 --timeout 30 --stall 20 "${TARGET_ARGS[@]}" || fail "a test message did not get through (logs in $LOGS)"

  step "disk: fsync rates of $STATE's file system"
  $PY "$DRIVER" --results "$RESULTS_BASE.json" fsync --dir "$STATE" --n 2000

  if [ "$N" -gt 0 ]; then
    step "throughput: $N messages x $SESS sessions, sizes $SIZES, $RUNS run(s) each"
    # shellcheck disable=SC2086
    $PY "$DRIVER" --results "$RESULTS_BASE.json" bench --count-file "$SINK_COUNT" --n "$N" --sess "$SESS" \
      --runs "$RUNS" --sizes $SIZES --ceiling $MX_IP:25 --disk-dir "$STATE" "${TARGET_ARGS[@]}" || fail "throughput run"
  fi

  if has homing && [ "$QUEUE_N" -gt 0 ]; then
    step "queue test: $QUEUE_N messages to user@dead.test, RSS, restart"
    $PY "$DRIVER" --results "$RESULTS_BASE.json" queue --addr "$HOMING_ADDR" --n "$QUEUE_N" --sess "$SESS" \
      --spool "$H_SPOOL" --pid-file "$RUN/homing.pid" --log "$H_LOG" \
      -- "$HOMING_BIN" serve --config "$H_CONF" || fail "queue test (homing log: $H_LOG)"
    step "queue test: stop homing, clean its spool"
    stop_pid homing "$HOMING_BIN"
    rm -rf "$H_SPOOL"
    if [ $KEEP = 1 ]; then start_homing; fi
  fi

  local hv="-" pv="-"
  has homing && hv="$("$HOMING_BIN" --version | awk '{print $NF}')"
  has postfix && pv="$(postconf -c "$PF_ETC" -h mail_version)"
  $PY "$DRIVER" --results "$RESULTS_BASE.json" report \
    --meta "date=$(date '+%Y-%m-%d %H:%M')" \
    --meta "machine=$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)" \
    --meta "homing_version=$hv $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)" \
    --meta "postfix_version=$pv" \
    --meta "load=$LOAD" \
    --meta "fs=$(findmnt -no FSTYPE,SOURCE --target "$STATE" | tr -s ' ')"
  STEP="done"
}

cleanup() {
  local rc=$? failed_step=$STEP
  trap - ERR
  if [ $KEEP = 1 ]; then
    say "--keep: left running (stop with: bench/run.sh --down); logs in $LOGS"
  else
    step "cleanup: stop everything this run started"
    stop_all
    rm -rf "$H_SPOOL"
  fi
  if [ $rc = 0 ]; then say "results saved to $RESULTS_BASE.txt and .json"
  else say "FAILED (exit $rc) in step '$failed_step'; logs in $LOGS; output saved to $RESULTS_BASE.txt"; fi
}

RESULTS_DIR=$BENCH_DIR/results
RESULTS_BASE=$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS_DIR"
# tee ignores Ctrl-C so that the cleanup's messages still reach the screen and the file
main 2>&1 | ( trap '' INT TERM; exec tee "$RESULTS_BASE.txt" )
exit "${PIPESTATUS[0]}"
