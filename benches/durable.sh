#!/usr/bin/env bash
# Durable SMTP delivery against the disk's limit, measured side by side and interleaved:
#   limit:    benches/durable_limit.c (compiled here with cc): WRITERS threads doing only the
#             durable work of a delivery (O_TMPFILE, write SIZE bytes, fsync, link into new/,
#             fsync new/), MESSAGES files;
#   mailwire: `mailwire serve` receiving MESSAGES messages of SIZE octets from Postfix's
#             smtp-source with WRITERS senders, every one acknowledged only once on disk.
# Both write into the same folder (bench2's Maildir/new), one after the other: limit, serve,
# limit, serve... (RUNS pairs), so both see the same folder history and the same machine load.
# Prints a Markdown table and writes it, with the machine and the commands, to
# benches/durable-results.md.
#
# Run as root on Debian (extracts smtp-source from the postfix .deb, as benches/run.sh does):
#   bash benches/durable.sh
# Settings (environment): MESSAGES=20000 WRITERS=10 SIZE=5120 RUNS=5
#   BENCH_TMP=/var/tmp (a real disk, not tmpfs), TOOLS=/var/tmp/mailwire-bench-tools,
#   RESULTS=path of the report, KEEP=1 keeps the throwaway folder,
#   BASELINE=path of another mailwire binary (say, one built before a change): it serves the
#   same data directory on its own ports and is measured third in every round;
#   REUSE=0 skips the second measure of every round: `serve` again, with smtp-source -d (the
#   senders keep their connections and send the next message on them, as MTAs do);
#   CEILING=0 skips the last measure of every round: `serve` with its data in /dev/shm
#   (tmpfs, where a sync costs nothing), the rate of the protocol work alone.
# mailwire is built in release mode without the window (`--no-default-features`): the
# servers are the same code, and the build skips eframe.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MESSAGES=${MESSAGES:-20000}
WRITERS=${WRITERS:-10}
SIZE=${SIZE:-5120}
RUNS=${RUNS:-5}
TOOLS=${TOOLS:-/var/tmp/mailwire-bench-tools}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
RESULTS=${RESULTS:-$ROOT/benches/durable-results.md}

log() { printf '[durable] %s\n' "$*" >&2; }
die() { printf '[durable] error: %s\n' "$*" >&2; exit 1; }

command -v cc >/dev/null || die "cc not found (apt-get install gcc)"
command -v cargo >/dev/null || die "cargo not found"

PF=$TOOLS/postfix
if [ ! -x "$PF/usr/sbin/smtp-source" ]; then
  [ "$(id -u)" -eq 0 ] || die "smtp-source missing; run as root once to extract it"
  mkdir -p "$TOOLS"
  log "fetching postfix's .deb for smtp-source (not installing Postfix)"
  apt-get update -q >&2
  dl=$(mktemp -d) && chmod 777 "$dl"
  (cd "$dl" && apt-get download postfix >&2) || die "apt-get download postfix failed"
  rm -rf "$PF" && mkdir -p "$PF"
  dpkg-deb -x "$dl"/postfix_*.deb "$PF"
  cp "$dl"/postfix_*.deb "$TOOLS"/ && rm -rf "$dl"
fi
PF_LIBS=$PF/usr/lib/postfix
if LD_LIBRARY_PATH=$PF_LIBS ldd "$PF/usr/sbin/smtp-source" | grep -q 'not found'; then
  [ "$(id -u)" -eq 0 ] || die "smtp-source's libraries are missing; run as root once"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3 >&2
fi
SMTP_SOURCE=$PF/usr/sbin/smtp-source
POSTFIX_VERSION=$(basename "$(ls "$TOOLS"/postfix_*.deb 2>/dev/null | tail -1)" .deb 2>/dev/null || echo unknown)

T=$(mktemp -d "$BENCH_TMP/mailwire-durable.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -z "${SHM:-}" ] || rm -rf "$SHM"
  if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building mailwire (release, no window) and the limit program"
build_json=$(cd "$ROOT" && cargo build --release --locked --no-default-features --bin mailwire \
  --message-format=json-render-diagnostics) || die "cargo build failed"
MAILWIRE_BUILT=$(printf '%s\n' "$build_json" | grep '"reason":"compiler-artifact"' | grep '"name":"mailwire"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$MAILWIRE_BUILT" ] || die "cannot find the built mailwire"
mkdir -p "$T/bin"
cp "$MAILWIRE_BUILT" "$T/bin/mailwire"
cc -O2 -Wall -Wextra -pthread -o "$T/bin/durable_limit" "$ROOT/benches/durable_limit.c" || die "cc failed"
MAILWIRE_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
MAILWIRE_DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null | wc -l)

DATA=$T/data
printf 'bench1 pass1\nbench2 pass2\n' >"$DATA.users"
mkdir -p "$DATA"
mv "$DATA.users" "$DATA/users.txt"
for u in bench1 bench2; do mkdir -p "$DATA/$u/Maildir/"{tmp,new,cur}; done
NEW_DIR=$DATA/bench2/Maildir/new

"$T/bin/mailwire" serve --data "$DATA" --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0 \
  >"$T/mailwire.out" 2>&1 &
PIDS+=($!)
MW_PID=$!
for _ in $(seq 100); do grep -q '^POP3 on ' "$T/mailwire.out" && break; sleep 0.1; done
line=$(grep '^POP3 on ' "$T/mailwire.out") || { cat "$T/mailwire.out" >&2; die "mailwire did not start"; }
MW_SMTP=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | sed -n 2p)
[ -n "$MW_SMTP" ] || die "cannot read the SMTP address from: $line"
log "mailwire: SMTP $MW_SMTP; mail lands in $NEW_DIR"
CEIL_SMTP="" SHM=""
if [ "${CEILING:-1}" = 1 ] && [ -d /dev/shm ]; then
  SHM=$(mktemp -d /dev/shm/mailwire-durable.XXXXXX)
  mkdir -p "$SHM/data"
  cp "$DATA/users.txt" "$SHM/data/"
  for u in bench1 bench2; do mkdir -p "$SHM/data/$u/Maildir/"{tmp,new,cur}; done
  "$T/bin/mailwire" serve --data "$SHM/data" --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0 \
    >"$T/ceiling.out" 2>&1 &
  PIDS+=($!)
  CEIL_PID=$!
  for _ in $(seq 100); do grep -q '^POP3 on ' "$T/ceiling.out" && break; sleep 0.1; done
  line=$(grep '^POP3 on ' "$T/ceiling.out") || { cat "$T/ceiling.out" >&2; die "the tmpfs serve did not start"; }
  CEIL_SMTP=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | sed -n 2p)
  log "mailwire on tmpfs: SMTP $CEIL_SMTP"
fi
BASE_SMTP=""
if [ -n "${BASELINE:-}" ]; then
  cp "$BASELINE" "$T/bin/baseline"
  "$T/bin/baseline" serve --data "$DATA" --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0 \
    >"$T/baseline.out" 2>&1 &
  PIDS+=($!)
  BASE_PID=$!
  for _ in $(seq 100); do grep -q '^POP3 on ' "$T/baseline.out" && break; sleep 0.1; done
  line=$(grep '^POP3 on ' "$T/baseline.out") || { cat "$T/baseline.out" >&2; die "the baseline did not start"; }
  BASE_SMTP=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | sed -n 2p)
  log "baseline ($BASELINE): SMTP $BASE_SMTP"
fi

count() { find "${1:-$NEW_DIR}" -type f | wc -l; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
TICK=$(getconf CLK_TCK)
# CPU time (user + system, every thread) of a running process, in clock ticks.
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Runs a command and writes the CPU time (ticks) it and its children used to $T/cpu.out: the
# shell around it reads its own children's time (fields 16 and 17) once the command is reaped.
with_cpu() { sh -c '"$@"; rc=$?; awk "{print \$16 + \$17}" /proc/$$/stat >"'"$T"'/cpu.out"; exit $rc' sh "$@"; }
per_msg_ms() { awk -v t="$1" -v h="$TICK" -v n="$MESSAGES" 'BEGIN {printf "%.3f", t / h * 1000 / n}'; }
LIMIT_RATES="" SERVE_RATES="" BASE_RATES="" CEIL_RATES="" REUSE_RATES="" ROWS=""
LIMIT_CPU="" SOURCE_CPU="" SERVE_CPU="" REUSE_CPU="" CEIL_CPU=""

limit_run() {
  local before after out rate secs load0 cpu
  before=$(count); load0=$(loadavg)
  out=$(with_cpu timeout 900 "$T/bin/durable_limit" "$NEW_DIR" "$WRITERS" "$MESSAGES" "$SIZE") || die "durable_limit failed: $out"
  after=$(count)
  cpu=$(per_msg_ms "$(cat "$T/cpu.out")")
  rate=$(sed -n 's/.* rate=\([^ ]*\).*/\1/p' <<<"$out")
  secs=$(sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<<"$out")
  log "limit: $out ($((after - before)) files landed, $cpu ms CPU per file)"
  LIMIT_RATES+=" $rate" LIMIT_CPU+=" $cpu"
  ROWS+="| $1 | limit (C) | $rate | $secs | $((after - before)) | $before | $cpu | | $load0 |"$'\n'
}

serve_run() { # pair label addr server-pid [new folder] [smtp-source options]
  local before after t0 t1 secs rate rc=0 out load0 dir=${5:-$NEW_DIR} c0 c1 scpu mcpu
  before=$(count "$dir"); load0=$(loadavg)
  c0=$(cpu_of "$4")
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  LD_LIBRARY_PATH=$PF_LIBS with_cpu timeout 900 "$SMTP_SOURCE" ${6:-} -s "$WRITERS" -l "$SIZE" -m "$MESSAGES" \
    -f bench1@localhost -t bench2@localhost "$3" >"$T/smtp-source.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  c1=$(cpu_of "$4")
  after=$(count "$dir")
  scpu=$(per_msg_ms "$(cat "$T/cpu.out")")
  mcpu=$(per_msg_ms "$((c1 - c0))")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN {printf "%.1f", n / s}')
  out=$(grep -c . "$T/smtp-source.log" || true)
  log "$2: $MESSAGES messages in $secs s = $rate msg/s, $((after - before)) landed, smtp-source exit $rc, $out line(s) of output; CPU per message: mailwire $mcpu ms, smtp-source $scpu ms"
  [ "$rc" -eq 0 ] && [ "$((after - before))" -eq "$MESSAGES" ] || { head -5 "$T/smtp-source.log" >&2; die "not every message was delivered"; }
  case $2 in
    baseline) BASE_RATES+=" $rate" ;;
    "serve on tmpfs") CEIL_RATES+=" $rate" CEIL_CPU+=" $mcpu" ;;
    "serve, connections reused") REUSE_RATES+=" $rate" REUSE_CPU+=" $mcpu" ;;
    *) SERVE_RATES+=" $rate" SERVE_CPU+=" $mcpu" SOURCE_CPU+=" $scpu" ;;
  esac
  ROWS+="| $1 | $2 | $rate | $secs | $((after - before)) | $before | $mcpu | $scpu | $load0 |"$'\n'
}

for r in $(seq 1 "$RUNS"); do
  log "pair $r/$RUNS"
  limit_run "$r"
  serve_run "$r" "mailwire serve" "$MW_SMTP" "$MW_PID"
  [ "${REUSE:-1}" = 0 ] || serve_run "$r" "serve, connections reused" "$MW_SMTP" "$MW_PID" "$NEW_DIR" -d
  [ -z "$BASE_SMTP" ] || serve_run "$r" baseline "$BASE_SMTP" "$BASE_PID"
  [ -z "$CEIL_SMTP" ] || serve_run "$r" "serve on tmpfs" "$CEIL_SMTP" "$CEIL_PID" "$SHM/data/bench2/Maildir/new"
done
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a server died during the runs"; done

lim=$(median <<<"$LIMIT_RATES")
mw=$(median <<<"$SERVE_RATES")
ratio=$(awk -v a="$mw" -v b="$lim" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
pair_ratios=$(paste -d' ' <(tr ' ' '\n' <<<"$SERVE_RATES" | grep -v '^$') <(tr ' ' '\n' <<<"$LIMIT_RATES" | grep -v '^$') \
  | awk '{printf "%.2f ", $1 / $2}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r + 0 >= 0.8) ? "met" : "**not met**"}')
table=$(cat <<EOF2
| measure (median of $RUNS interleaved pairs) | files or messages/s |
| --- | ---: |
| limit: C, $WRITERS writers, O_TMPFILE + write $SIZE + fsync + link + fsync folder, $MESSAGES files | $lim |
| mailwire serve: smtp-source, $WRITERS senders, $SIZE octets, $MESSAGES messages, each 250 after its folder sync | $mw |
| mailwire / limit (aim ≥ 0.80: $verdict); each pair: $pair_ratios | $ratio |
EOF2
)
if [ "${REUSE:-1}" != 0 ]; then
  reuse=$(median <<<"$REUSE_RATES")
  table+=$'\n'"| mailwire serve, connections reused (smtp-source -d: the next message on the same connection, as MTAs do) | $reuse |"
  table+=$'\n'"| that / limit | $(awk -v a="$reuse" -v b="$lim" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}') |"
fi
if [ -n "$CEIL_SMTP" ]; then
  ceil=$(median <<<"$CEIL_RATES")
  both=$(awk -v a="$ceil" -v b="$lim" 'BEGIN {if (a > 0 && b > 0) printf "%.1f", 1 / (1 / a + 1 / b); else print "n/a"}')
  table+=$'\n'"| mailwire serve on tmpfs (the protocol work alone, no sync costs anything) | $ceil |"
  table+=$'\n'"| expected if each sender does the protocol work, then the limit's durable work: 1 / (1/tmpfs + 1/limit) | $both |"
fi
# What the processors allow: the durable work costs CPU (the C program's, per file) and so
# does the client (smtp-source's, per message); a server that cost no CPU at all could not
# deliver faster than the cores can pay for those two.
CORES=$(nproc)
c_lim=$(median <<<"$LIMIT_CPU") c_src=$(median <<<"$SOURCE_CPU") c_mw=$(median <<<"$SERVE_CPU")
bound=$(awk -v n="$CORES" -v a="$c_lim" -v b="$c_src" 'BEGIN {if (a + b > 0) printf "%.1f", n * 1000 / (a + b); else print "n/a"}')
cpu_verdict=$(awk -v x="$bound" -v l="$lim" 'BEGIN {if (x + 0 < 0.8 * l) print "below 0.80 of the limit: the aim cannot be met on these " ENVIRON["CORES"] " cores measured this way"; else print "at or above 0.80 of the limit"}')
export CORES
table+=$'\n'"| CPU per file or message (ms, median): limit $c_lim, smtp-source $c_src, mailwire serve $c_mw$( [ -z "$CEIL_SMTP" ] || echo ", serve on tmpfs $(median <<<"$CEIL_CPU")")$( [ "${REUSE:-1}" = 0 ] || echo ", serve with connections reused $(median <<<"$REUSE_CPU")") | |"
table+=$'\n'"| CPU bound: $CORES cores / (limit's CPU per file + smtp-source's per message), the most a server costing no CPU could deliver: $(awk -v x="$bound" -v l="$lim" 'BEGIN {if (l > 0) printf "%.2f", x / l}') of the limit, $cpu_verdict | $bound |"
table+=$'\n'"| CPU bound for a server as lean as the client: $CORES cores / (limit + 2 x smtp-source, per message; smtp-source is a small C program doing the other end of the same connections, so a server's kernel TCP work alone is about its size): $(awk -v x="$(awk -v n="$CORES" -v a="$c_lim" -v b="$c_src" 'BEGIN {if (a + 2 * b > 0) printf "%.1f", n * 1000 / (a + 2 * b)}')" -v l="$lim" 'BEGIN {if (l > 0) printf "%.2f", x / l}') of the limit | $(awk -v n="$CORES" -v a="$c_lim" -v b="$c_src" 'BEGIN {if (a + 2 * b > 0) printf "%.1f", n * 1000 / (a + 2 * b); else print "n/a"}') |"
table+=$'\n'"| CPU bound with mailwire's own CPU added: $CORES cores / (limit + smtp-source + mailwire serve on disk, per message) | $(awk -v n="$CORES" -v a="$c_lim" -v b="$c_src" -v c="$c_mw" 'BEGIN {if (a + b + c > 0) printf "%.1f", n * 1000 / (a + b + c); else print "n/a"}') |"
if [ -n "$BASE_SMTP" ]; then
  base=$(median <<<"$BASE_RATES")
  table+=$'\n'"| baseline ($(basename "$BASELINE"), same runs, measured third) | $base |"
  table+=$'\n'"| baseline / limit | $(awk -v a="$base" -v b="$lim" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}') |"
fi
printf '\n%s\n\n' "$table"
{
  echo "# Durable SMTP delivery against the disk's limit"
  echo
  echo "Written by \`benches/durable.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "$table"
  echo
  echo "## Machine"
  echo
  echo "- $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory"
  echo "- kernel $(uname -sr), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "- mail on $(df -T "$T" | awk 'NR == 2 {print $2 " (" $1 ")"}')"
  echo "- other programs ran on the machine too: the load average before each run is in the rows below"
  echo "- mailwire $MAILWIRE_REV$([ "$MAILWIRE_DIRTY" -eq 0 ] || echo " with uncommitted changes in src/"), release build without the window; $POSTFIX_VERSION (smtp-source)"
  echo
  echo "## Every run, in the order run"
  echo
  echo "Both write into the same folder; \"files before\" is how many it held when the run began."
  echo
  echo "| pair | writer | per second | seconds | landed | files before | CPU ms per file or message | smtp-source CPU ms per message | load average before |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  printf '%s' "$ROWS"
  echo
  echo "## Commands"
  echo
  echo '```'
  echo "bash benches/durable.sh   # MESSAGES=$MESSAGES WRITERS=$WRITERS SIZE=$SIZE RUNS=$RUNS"
  echo "cargo build --release --locked --no-default-features --bin mailwire"
  echo "cc -O2 -pthread -o durable_limit benches/durable_limit.c"
  echo "mailwire serve --data DATA --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0"
  echo "durable_limit DATA/bench2/Maildir/new $WRITERS $MESSAGES $SIZE"
  echo "smtp-source -s $WRITERS -l $SIZE -m $MESSAGES -f bench1@localhost -t bench2@localhost ADDR"
  echo "smtp-source -d -s $WRITERS -l $SIZE -m $MESSAGES -f bench1@localhost -t bench2@localhost ADDR   # connections reused"
  echo '```'
  echo
  echo "mailwire's files are a little larger than the limit's: it adds the Return-Path and"
  echo "Received headers to smtp-source's $SIZE octets."
} >"$RESULTS"
log "wrote $RESULTS"
