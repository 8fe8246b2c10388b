#!/usr/bin/env bash
# mailwire against independent peers on this machine, measured by the same clients:
#   POP3: sessions/s (USER, PASS, STAT, RETR 1 of a 5 KiB message, QUIT), 10 clients,
#         benches/load.rs against mailwire and against Dovecot (throwaway config);
#   SMTP: messages/s (5 KiB, 10 concurrent senders), Postfix's smtp-source against
#         mailwire (which fsyncs every message) and against smtp-sink (which stores nothing).
# Prints a Markdown table and writes it, with the machine and the exact commands, to
# benches/results.md.
#
# Run as root on Debian (it installs dovecot-pop3d, and extracts smtp-source/smtp-sink from
# the postfix .deb without installing Postfix):   bash benches/run.sh
# Settings (environment): CLIENTS=10 POP3_SECONDS=10 MESSAGES=20000 SENDERS=10 SIZE=5120
#   RUNS=3 (each measurement is repeated, alternating mailwire and peer; the table shows the
#   median), TOOLS=/var/tmp/mailwire-bench-tools (where the postfix .deb is extracted),
#   BENCH_TMP=/var/tmp (parent of the throwaway folder; must be a real disk, not tmpfs, or
#   fsync costs nothing), KEEP=1 keeps the throwaway folder, RESULTS=path of the report,
#   DOVECOT_TUNED=0 skips the second Dovecot (high-performance mode, for reference only),
#   BENCH_FS=ext4-image puts the mail on a fresh journaled ext4 in a loop-mounted image.
# Everything listens on 127.0.0.1 only; every step is bounded by `timeout`, and whatever
# this script starts is stopped when it exits.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS=${CLIENTS:-10}
POP3_SECONDS=${POP3_SECONDS:-10}
MESSAGES=${MESSAGES:-20000}
SENDERS=${SENDERS:-10}
SIZE=${SIZE:-5120}
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-/var/tmp/mailwire-bench-tools}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
RESULTS=${RESULTS:-$ROOT/benches/results.md}
NUSERS=$CLIENTS
((NUSERS >= 2)) || NUSERS=2 # bench1 sends to bench2

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- what is needed
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing $*; run as root to install it"
  if [ $apt_updated -eq 0 ]; then apt-get update -q >&2; apt_updated=1; fi
  # Debian starts services on install; the benchmark wants no system Dovecot listening.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && made_policy=1
  fi
  apt-get install -y -q --no-install-recommends "$@" >&2 || { [ $made_policy -eq 0 ] || rm -f $policy; die "apt-get install $* failed"; }
  [ $made_policy -eq 0 ] || rm -f $policy
}

command -v dovecot >/dev/null || apt_install dovecot-pop3d
for tool in perl timeout awk find; do command -v $tool >/dev/null || die "$tool not found"; done
command -v cargo >/dev/null || die "cargo not found (Rust 1.85 or newer is needed: https://rustup.rs)"

PF=$TOOLS/postfix
if [ ! -x "$PF/usr/sbin/smtp-source" ] || [ ! -x "$PF/usr/sbin/smtp-sink" ]; then
  mkdir -p "$TOOLS"
  log "fetching postfix's .deb for smtp-source and smtp-sink (not installing Postfix)"
  if [ $apt_updated -eq 0 ] && [ "$(id -u)" -eq 0 ]; then apt-get update -q >&2; apt_updated=1; fi
  # apt drops privileges to _apt for downloads: give it a folder it may write.
  dl=$(mktemp -d) && chmod 777 "$dl"
  (cd "$dl" && apt-get download postfix >&2) || die "apt-get download postfix failed"
  rm -rf "$PF" && mkdir -p "$PF"
  dpkg-deb -x "$dl"/postfix_*.deb "$PF"
  cp "$dl"/postfix_*.deb "$TOOLS"/ && rm -rf "$dl"
fi
PF_LIBS=$PF/usr/lib/postfix
if LD_LIBRARY_PATH=$PF_LIBS ldd "$PF/usr/sbin/smtp-source" | grep -q 'not found'; then
  apt_install libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3
fi
SMTP_SOURCE=$PF/usr/sbin/smtp-source
SMTP_SINK=$PF/usr/sbin/smtp-sink
POSTFIX_VERSION=$(basename "$(ls "$TOOLS"/postfix_*.deb 2>/dev/null | tail -1)" .deb 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- build
log "building mailwire and the load client (release)"
build_json=$(cd "$ROOT" && cargo build --release --bin mailwire --bench load --message-format=json-render-diagnostics) \
  || die "cargo build failed"
exe_of() { printf '%s\n' "$build_json" | grep '"reason":"compiler-artifact"' | grep "\"name\":\"$1\"" \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1; }
MAILWIRE_BUILT=$(exe_of mailwire)
LOAD_BUILT=$(exe_of load)
[ -x "$MAILWIRE_BUILT" ] && [ -x "$LOAD_BUILT" ] || die "cannot find the built binaries ($MAILWIRE_BUILT, $LOAD_BUILT)"
MAILWIRE_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
MAILWIRE_DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null | wc -l)

# ---------------------------------------------------------------- the throwaway folder
T=$(mktemp -d "$BENCH_TMP/mailwire-bench.XXXXXX")
chmod 755 "$T" # Dovecot's processes run as nobody and must traverse it
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if mountpoint -q "$T/fs" 2>/dev/null; then umount "$T/fs" || umount -l "$T/fs" || true; fi
  if [ "${KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies of the binaries, so a build by someone else cannot swap them mid-run.
mkdir -p "$T/bin"
cp "$MAILWIRE_BUILT" "$T/bin/mailwire"
cp "$LOAD_BUILT" "$T/bin/load"
MAILWIRE=$T/bin/mailwire
LOAD=$T/bin/load

# A free TCP port on 127.0.0.1 (not listed in /proc/net/tcp{,6} at all).
free_port() {
  local p hex
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    hex=$(printf ':%04X ' "$p")
    grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found"
}

# One message of exactly SIZE octets with CRLF line ends; its first body line starts with
# "." so RETR must byte-stuff it.
make_message() { # size to
  perl -e '
    my ($size, $to) = @ARGV;
    my $m = "Return-Path: <bench1\@localhost>\r\nFrom: bench1\@localhost\r\nTo: $to\r\n"
          . "Subject: mailwire benchmark message\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
          . "Message-ID: <bench.$to>\r\n\r\n.a line that starts with a dot (RETR stuffs it)\r\n";
    my $i = 0;
    while (length($m) < $size) {
      $m .= sprintf("line %04d the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ\r\n", ++$i);
    }
    $m = substr($m, 0, $size - 2);
    $m =~ s/\r\z/x/;
    print $m, "\r\n";
  ' "$1" "$2"
}

# DATA/users.txt and DATA/<user>/Maildir/{tmp,new,cur} with one message in cur/.
# The mail lives in $T itself, or with BENCH_FS=ext4-image on a fresh ext4 file system (mkfs
# defaults, so with a journal) in a loop-mounted image: the usual setup of a Debian machine,
# and free of what other programs recently did to the disk.
MAIL=$T
FS_NOTE="$(df -T "$T" | awk 'NR == 2 {print $2 " (" $1 ")"}'), the folder of the temp files"
if [ "${BENCH_FS:-}" = ext4-image ]; then
  truncate -s 8G "$T/fs.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$T/fs.img" || die "mkfs.ext4 failed"
  mkdir "$T/fs"
  mount -o loop "$T/fs.img" "$T/fs" || die "cannot loop-mount $T/fs.img (BENCH_FS=ext4-image needs root and loop devices)"
  chmod 755 "$T/fs"
  MAIL=$T/fs
  FS_NOTE="a fresh ext4 (mkfs.ext4 defaults with the journal, inode tables initialised up front) in a loop-mounted image file on $FS_NOTE"
elif [ -n "${BENCH_FS:-}" ]; then
  die "BENCH_FS must be empty or ext4-image"
fi
DATA=$MAIL/mailwire-data
DOVE=$MAIL/dovecot
mkdir -p "$DATA" "$DOVE/home" "$DOVE/run" "$DOVE/state"
: >"$DATA/users.txt"
: >"$DOVE/passwd"
USERS_ARG=""
NOBODY_UID=$(id -u nobody) NOBODY_GID=$(id -g nobody)
for i in $(seq 1 "$NUSERS"); do
  u=bench$i pw=pass$i
  printf '%s %s\n' "$u" "$pw" >>"$DATA/users.txt"
  md=$DATA/$u/Maildir
  mkdir -p "$md/tmp" "$md/new" "$md/cur"
  make_message "$SIZE" "$u@localhost" >"$md/cur/1767225600.M$i.benchhost,S=$SIZE,W=$SIZE:2,S"
  [ "$(stat -c %s "$md/cur/"*)" -eq "$SIZE" ] || die "message for $u is not $SIZE octets"
  cp -a "$DATA/$u" "$DOVE/home/$u"
  # Dovecot refuses uid 0 for mail users: its copy belongs to nobody.
  chown -R "$NOBODY_UID:$NOBODY_GID" "$DOVE/home/$u"
  printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$u" "$pw" "$NOBODY_UID" "$NOBODY_GID" "$DOVE/home/$u" >>"$DOVE/passwd"
  USERS_ARG+="${USERS_ARG:+,}$u:$pw"
done
chmod -R a+rX "$DOVE"

# ---------------------------------------------------------------- servers
# mailwire: both servers on ports the kernel picks; the addresses come from its first line.
"$MAILWIRE" serve --data "$DATA" --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0 \
  >"$T/mailwire.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^POP3 on ' "$T/mailwire.out" && break; sleep 0.1; done
line=$(grep '^POP3 on ' "$T/mailwire.out") || { cat "$T/mailwire.out" >&2; die "mailwire did not start"; }
MW_POP3=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | sed -n 1p)
MW_SMTP=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | sed -n 2p)
[ -n "$MW_POP3" ] && [ -n "$MW_SMTP" ] || die "cannot read the addresses from: $line"
log "mailwire: POP3 $MW_POP3, SMTP $MW_SMTP"

# Dovecot from a throwaway config (DESIGN.md, "Independent peers on these machines"), with
# its default process model (a new login process and a new pop3 process per connection),
# and, for reference, a second one in Dovecot's documented high-performance mode (login and
# pop3 processes reused). Each reads its own copy of the Maildirs.
DOVE_TUNED=$MAIL/dovecot-tuned
if [ "${DOVECOT_TUNED:-1}" = 1 ]; then
  mkdir -p "$DOVE_TUNED"
  cp -a "$DOVE/home" "$DOVE_TUNED/home"
  sed "s|$DOVE/home|$DOVE_TUNED/home|" "$DOVE/passwd" >"$DOVE_TUNED/passwd"
  chmod -R a+rX "$DOVE_TUNED"
fi
start_dovecot() { # dir login-service-settings other-services; sets DV_ADDR
  local dir=$1 port
  mkdir -p "$dir/run" "$dir/state"
  port=$(free_port)
  cat >"$dir/dovecot.conf" <<CONF
protocols = pop3
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain apop
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
first_valid_uid = 0
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/passwd
}
service pop3-login {
$2
  inet_listener pop3 {
    address = 127.0.0.1
    port = $port
  }
  inet_listener pop3s {
    port = 0
  }
}
$3
CONF
  dovecot -F -c "$dir/dovecot.conf" >"$dir/stdout.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    grep -qi ":$(printf %04X "$port") 0*:0000 0A" /proc/net/tcp && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$dir/stdout.log" "$dir/dovecot.log" >&2 2>/dev/null; die "dovecot exited"; }
    sleep 0.1
  done
  DV_ADDR=127.0.0.1:$port
}
DOVECOT_VERSION=$(dovecot --version 2>/dev/null || echo unknown)
start_dovecot "$DOVE" "" ""
DV_POP3=$DV_ADDR
log "dovecot $DOVECOT_VERSION: POP3 $DV_POP3"
TUNED_LOGIN="  service_count = 0
  process_min_avail = 2"
TUNED_OTHER="service pop3 {
  service_count = 0
}
service auth {
  client_limit = 2000
}"
if [ "${DOVECOT_TUNED:-1}" = 1 ]; then
  start_dovecot "$DOVE_TUNED" "$TUNED_LOGIN" "$TUNED_OTHER"
  DVT_POP3=$DV_ADDR
  log "dovecot, high-performance mode: POP3 $DVT_POP3"
fi

# smtp-sink, the peer for SMTP.
SINK_PORT=$(free_port)
LD_LIBRARY_PATH=$PF_LIBS "$SMTP_SINK" -u nobody "127.0.0.1:$SINK_PORT" 100 >"$T/smtp-sink.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  grep -qi ":$(printf %04X "$SINK_PORT") 0*:0000 0A" /proc/net/tcp && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$T/smtp-sink.log" >&2; die "smtp-sink exited"; }
  sleep 0.1
done
SINK=127.0.0.1:$SINK_PORT
log "smtp-sink: $SINK"

# ---------------------------------------------------------------- measurements
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; } # key line
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

POP3_CMD="load pop3 --addr ADDR --users bench1:pass1,...,bench$NUSERS:pass$NUSERS --clients $CLIENTS --seconds $POP3_SECONDS"
declare -A RATES ERRS DETAILS
pop3_run() { # name addr
  local out rc=0
  out=$(timeout $((POP3_SECONDS + 120)) "$LOAD" pop3 --addr "$2" --users "$USERS_ARG" \
    --clients "$CLIENTS" --seconds "$POP3_SECONDS" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed "s/^/[$1] /" >&2
  local result
  result=$(grep '^RESULT ' <<<"$out" || true)
  [ -n "$result" ] || { log "$1: load client failed (exit $rc)"; RATES[$1]+=" 0"; ERRS[$1]+=" fail"; return; }
  RATES[$1]+=" $(field rate "$result")"
  ERRS[$1]+=" $(field errors "$result")"
  DETAILS[$1]+="| $1 | $(field rate "$result") | $(field sessions "$result") | $(field errors "$result") | $(field p50_ms "$result") | $(field p99_ms "$result") | $(loadavg) |"$'\n'
}

SMTP_CMD="smtp-source -s $SENDERS -l $SIZE -m $MESSAGES -f bench1@localhost -t bench2@localhost ADDR"
NEW_DIR=$DATA/bench2/Maildir/new
smtp_run() { # name addr
  local before=0 after t0 t1 rc=0 secs rate landed="" load0
  [ "$1" != mailwire ] || before=$(find "$NEW_DIR" -type f | wc -l)
  load0=$(loadavg)
  t0=$(date +%s.%N)
  LD_LIBRARY_PATH=$PF_LIBS timeout 900 "$SMTP_SOURCE" -s "$SENDERS" -l "$SIZE" -m "$MESSAGES" \
    -f bench1@localhost -t bench2@localhost "$2" >"$T/smtp-source-$1.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN {printf "%.1f", n / s}')
  local errors
  errors=$(grep -c . "$T/smtp-source-$1.log" || true)
  if [ "$1" = mailwire ]; then
    after=$(find "$NEW_DIR" -type f | wc -l)
    landed=$((after - before))
    local leftovers
    leftovers=$(find "$DATA/bench2/Maildir/tmp" -type f | wc -l)
    log "mailwire: $landed of $MESSAGES messages landed in bench2's Maildir/new ($leftovers files left in tmp/)"
    [ "$landed" -eq "$MESSAGES" ] || log "WARNING: only $landed of $MESSAGES messages are on disk"
    LANDED+=" $landed"
  fi
  log "$1: smtp-source exit $rc, $MESSAGES messages in $secs s = $rate msg/s, $errors line(s) of smtp-source output"
  [ "$errors" -eq 0 ] || sed "s/^/[$1 smtp-source] /" "$T/smtp-source-$1.log" | head -5 >&2
  SRATES[$1]+=" $rate"
  SERRS[$1]+=" $rc/$errors"
  SDETAILS[$1]+="| $1 | $rate | $secs | ${landed:-n/a} | exit $rc, $errors | $load0 |"$'\n'
}
declare -A SRATES SERRS SDETAILS
LANDED=""

log "load before the runs: $(loadavg)"
for r in $(seq 1 "$RUNS"); do
  log "POP3 run $r/$RUNS"
  pop3_run mailwire "$MW_POP3"
  pop3_run dovecot "$DV_POP3"
  [ "${DOVECOT_TUNED:-1}" != 1 ] || pop3_run dovecot-tuned "$DVT_POP3"
done
for r in $(seq 1 "$RUNS"); do
  log "SMTP run $r/$RUNS"
  smtp_run mailwire "$MW_SMTP"
  smtp_run smtp-sink "$SINK"
done

# Did the servers survive?
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || log "WARNING: server process $pid died during the runs"; done
DV_ERRORS=$(cat "$DOVE/dovecot.log" "$DOVE_TUNED/dovecot.log" 2>/dev/null | grep -ci 'error\|fatal\|panic' || true)

# ---------------------------------------------------------------- report
mw_pop=$(median <<<"${RATES[mailwire]}")
dv_pop=$(median <<<"${RATES[dovecot]}")
mw_smtp=$(median <<<"${SRATES[mailwire]}")
sk_smtp=$(median <<<"${SRATES[smtp-sink]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
verdict() { awk -v r="$1" -v aim="$2" 'BEGIN {print (r + 0 >= aim) ? "met" : "**not met**"}'; }
pop_ratio=$(ratio "$mw_pop" "$dv_pop")
tuned_row=""
if [ "${DOVECOT_TUNED:-1}" = 1 ]; then
  dvt_pop=$(median <<<"${RATES[dovecot-tuned]}")
  tuned_row="
| the same against Dovecot in high-performance mode (login and pop3 processes reused) | $mw_pop | Dovecot: $dvt_pop | $(ratio "$mw_pop" "$dvt_pop") | for reference |"
fi
smtp_ratio=$(ratio "$mw_smtp" "$sk_smtp")

table=$(cat <<EOF
| measure (median of $RUNS runs) | mailwire | peer | mailwire / peer | aim |
| --- | ---: | ---: | ---: | --- |
| POP3 sessions/s: USER, PASS, STAT, RETR 1 ($SIZE octets), QUIT; $CLIENTS clients, ${POP3_SECONDS} s | $mw_pop | Dovecot $DOVECOT_VERSION: $dv_pop | $pop_ratio | ≥ 1.00: $(verdict "$pop_ratio" 1) |$tuned_row
| SMTP messages/s: $SIZE octets, $SENDERS senders (smtp-source), $MESSAGES messages | $mw_smtp (fsync'd) | smtp-sink (stores nothing): $sk_smtp | $smtp_ratio | ≥ 0.50: $(verdict "$smtp_ratio" 0.5) |
EOF
)
printf '\n%s\n\n' "$table"

{
  echo "# mailwire benchmark results"
  echo
  echo "Written by \`benches/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "$table"
  echo
  echo "## Machine"
  echo
  echo "- $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory"
  echo "- kernel $(uname -sr), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "- mail on $FS_NOTE"
  echo "- other programs ran on the machine too: the load average before each run is in the rows below"
  echo "- mailwire $MAILWIRE_REV$([ "$MAILWIRE_DIRTY" -eq 0 ] || echo " with uncommitted changes in src/"), release build; Dovecot $DOVECOT_VERSION; $POSTFIX_VERSION (smtp-source, smtp-sink)"
  echo
  echo "## Every run"
  echo
  echo "POP3 (benches/load.rs; latency is of a whole session):"
  echo
  echo "| server | sessions/s | sessions | errors | p50 ms | p99 ms | load average before |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
  printf '%s%s%s' "${DETAILS[mailwire]}" "${DETAILS[dovecot]}" "${DETAILS[dovecot-tuned]:-}"
  echo
  echo "SMTP (smtp-source, timed with \`date +%s.%N\`; \"on disk\" counts the files that landed in bench2's Maildir/new):"
  echo
  echo "| server | messages/s | seconds | on disk | smtp-source exit, output lines | load average before |"
  echo "| --- | ---: | ---: | ---: | --- | --- |"
  printf '%s%s' "${SDETAILS[mailwire]}" "${SDETAILS[smtp-sink]}"
  echo
  echo "Dovecot log lines with error/fatal/panic: $DV_ERRORS."
  echo
  echo "## Commands"
  echo
  echo '```'
  echo "${BENCH_FS:+BENCH_FS=$BENCH_FS }bash benches/run.sh   # CLIENTS=$CLIENTS POP3_SECONDS=$POP3_SECONDS MESSAGES=$MESSAGES SENDERS=$SENDERS SIZE=$SIZE RUNS=$RUNS"
  echo "cargo build --release --bin mailwire --bench load"
  echo "mailwire serve --data DATA --pop3 127.0.0.1:0 --smtp 127.0.0.1:0 --quiet --login-delay-ms 0"
  echo "dovecot -F -c DOVECOT_DIR/dovecot.conf   # the config is in benches/run.sh; high-performance"
  echo "   # mode adds service_count = 0, process_min_avail = 2 to pop3-login and service_count = 0 to pop3"
  echo "smtp-sink -u nobody 127.0.0.1:PORT 100"
  echo "$POP3_CMD   # the bench binary of benches/load.rs"
  echo "$SMTP_CMD"
  echo '```'
  echo
  echo "DATA holds users bench1..bench$NUSERS (users.txt), each with one $SIZE-octet message (CRLF line"
  echo "ends, one body line starting with \".\") in Maildir/cur; Dovecot reads a copy of the same"
  echo "Maildirs. The SMTP runs come after the POP3 runs, so bench2's new mail does not change them."
} >"$RESULTS"
log "wrote $RESULTS"
