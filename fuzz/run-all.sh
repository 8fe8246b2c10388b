#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after the other, under `nice -n 19`, and
# prints a Markdown table: executions, executions per second, corpus size, crashes.
#   usage: fuzz/run-all.sh SECONDS [TARGET...]        (default: every target)
# RUNS=N bounds each target by executions instead (-runs=N; SECONDS still caps the time).
# SANITIZER=none builds and runs without the address sanitizer (cargo fuzz -s none: a much
# faster first build, fewer checks; default: address).
# Corpora go to fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both
# ignored by git); the logs to fuzz/artifacts/logs/. Seeds: the scenarios for
# scenario_loader, tiny pcap and pcapng files for capture_file, a session or two for the
# protocol targets, and for the TLS targets real sessions `mailwire run` captures now (see
# seed_tls). Uses the stable toolchain with RUSTC_BOOTSTRAP=1 (see README.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SECONDS_EACH=${1:?usage: fuzz/run-all.sh SECONDS [TARGET...]}
shift
ALL=(decode_frame reassembly pop3_server smtp_server pop3_client smtp_client line_splitter scenario_loader capture_file keylog_parse secrets_blocks tls_decrypt)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
# `nice` alone does not make the fuzzers yield: with the kernel's autogroups (Debian's
# default), nice counts only within a session, and every terminal or desktop session gets an
# equal share of the processors. So this script puts itself in a session of its own and
# lowers that session's weight too (anyone may lower it): builds and tests in other
# sessions go first. MAILWIRE_FUZZ_SESSION guards against doing it twice.
if [ -z "${MAILWIRE_FUZZ_SESSION:-}" ] && command -v setsid >/dev/null; then
  export MAILWIRE_FUZZ_SESSION=1
  exec setsid -w "$0" "$SECONDS_EACH" "${TARGETS[@]}"
fi
echo 19 >/proc/self/autogroup 2>/dev/null || true

export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
cd "$HERE"
mkdir -p artifacts/logs

seed() { # target name bytes (printf format)
  mkdir -p "corpus/$1"
  # shellcheck disable=SC2059
  printf "$3" >"corpus/$1/seed-$2"
}
# Real TLS sessions for tls_decrypt, secrets_blocks and keylog_parse (and capture_file):
# `mailwire run` plays two scenarios, capturing on loopback, and writes pcapng files with
# their key logs in Decryption Secrets Blocks; seed-tls.py cuts them into seeds. Needs the
# capture rights `mailwire run --pcap` needs; without them the TLS targets start from the
# small seeds only (said on stderr).
seed_tls() {
  local dir
  dir=$(mktemp -d)
  for s in login-after-stls submission-tls; do
    # Without RUSTC_BOOTSTRAP (exported above for cargo fuzz): with it, cargo would rebuild the
    # whole debug build that `cargo build` and `cargo test` use.
    if ! (cd "$ROOT" && env -u RUSTC_BOOTSTRAP cargo run --locked --quiet --bin mailwire -- run "$s" --pcap "$dir/$s.pcapng" >/dev/null 2>"$dir/$s.err"); then
      echo "run-all.sh: no TLS seed from scenario $s: $(tail -1 "$dir/$s.err")" >&2
      continue
    fi
    python3 "$HERE/seed-tls.py" corpus "$dir/$s.pcapng"
    mkdir -p corpus/capture_file && cp "$dir/$s.pcapng" "corpus/capture_file/seed-$s.pcapng"
  done
  rm -rf "$dir"
}
seeds() {
  seed pop3_server session '\x10\x00USER mrose\r\nPASS tanstaaf\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 2 0\r\nUIDL\r\nDELE 1\r\nQUIT\r\n'
  seed pop3_server apop '\x10\x02\x03\x20APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nRETR 4\r\nRSET\r\nQUIT\r\n'
  seed smtp_server session '\x13\x00EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n'
  seed smtp_server pipelined '\x12\x01\x05HELO c\r\nMAIL FROM:<> SIZE=10\r\nRCPT TO:<postmaster>\r\nDATA\r\nx\n.\n\r\n.\r\nRSET\r\n'
  seed pop3_client session '\x01\x00+OK ready <1.2@h>\r\n+OK\r\nCAPA\r\nTOP\r\n.\r\n+OK\r\n+OK\r\n+OK 2 10\r\n+OK\r\n1 5\r\n.\r\n'
  seed smtp_client session '\x01\x00220 h ESMTP\r\n250-h\r\n250 SIZE 100\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n'
  seed pop3_client stls-auth '\x05\x0a\x0a\x0d\x0e\x13\x03\x07\x08\x04\x08\x08+OK ready\r\n+OK\r\nSTLS\r\n.\r\n+OK begin TLS\r\n+OK\r\nSASL PLAIN\r\n.\r\n+ \r\n+OK in\r\n-ERR no\r\n+OK\r\n+OK 1 2\r\n+OK bye\r\n'
  seed smtp_client starttls-auth '\x05\x0b\x0c\x14\x0d\x1c\x05\x07\x11\x07\x07\x07\x08220 h ESMTP\r\n250-h\r\n250 STARTTLS\r\n220 go ahead\r\n250-h\r\n250 AUTH PLAIN LOGIN\r\n334 \r\n235 ok\r\n334 VXNlcm5hbWU6\r\n535 no\r\n250 ok\r\n250 ok\r\n221 bye\r\n'
  seed keylog_parse lines '# a comment\n\nCLIENT_RANDOM 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 00aa\r\nSERVER_TRAFFIC_SECRET_0 0001 ffee\n'
  # A pcapng with a Decryption Secrets Block of one key log line, big-endian.
  seed secrets_blocks dsb-be '\x0a\x0d\x0d\x0a\x00\x00\x00\x1c\x1a\x2b\x3c\x4d\x00\x01\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x1c\x00\x00\x00\x0a\x00\x00\x00\x28\x54\x4c\x53\x4b\x00\x00\x00\x14CLIENT_RANDOM 00 01\n\x00\x00\x00\x28'
  seed_tls
  seed line_splitter mixed '\x09\x02\x03\x07ab\r\ncd\nlong line over the limit\r\n\r\r\n'
  for f in "$ROOT"/scenarios/*.toml; do
    mkdir -p corpus/scenario_loader && cp "$f" "corpus/scenario_loader/seed-$(basename "$f")"
  done
  # A classic pcap (Ethernet) with one empty record, and a pcapng with a section header,
  # an interface and one enhanced packet block.
  seed capture_file pcap '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
  seed capture_file pcapng '\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00\x01\x00\x00\x00\x14\x00\x00\x00\x01\x00\x00\x00\xff\xff\x00\x00\x14\x00\x00\x00\x06\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00'
}
seeds

dict_of() {
  case $1 in
    pop3_server | pop3_client) echo "-dict=dicts/pop3.dict" ;;
    smtp_server | smtp_client) echo "-dict=dicts/smtp.dict" ;;
    scenario_loader) echo "-dict=dicts/toml.dict" ;;
    keylog_parse | secrets_blocks) echo "-dict=dicts/keylog.dict" ;;
    tls_decrypt) echo "-dict=dicts/tls.dict" ;;
  esac
}
max_len_of() {
  case $1 in
    pop3_client | smtp_client | line_splitter) echo 65536 ;;
    scenario_loader | capture_file | tls_decrypt) echo 16384 ;;
    secrets_blocks) echo 32768 ;;
    *) echo 4096 ;;
  esac
}

SAN=(-s "${SANITIZER:-address}")
nice -n 19 cargo fuzz build "${SAN[@]}" >&2
echo "| target | executions | exec/s | corpus files | result |"
echo "| --- | ---: | ---: | ---: | --- |"
for t in "${TARGETS[@]}"; do
  log=artifacts/logs/$t.log
  mkdir -p "corpus/$t"
  rc=0
  # shellcheck disable=SC2046
  nice -n 19 timeout $((SECONDS_EACH + 300)) cargo fuzz run "${SAN[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" ${RUNS:+-runs=$RUNS} -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 $(dict_of "$t") >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # capture_file's and secrets_blocks' scratch file (one per fuzzing process; libFuzzer exits without cleanup).
  case $t in capture_file | secrets_blocks) rm -f /dev/shm/mailwire-fuzz-*.pcapng "${TMPDIR:-/tmp}"/mailwire-fuzz-*.pcapng ;; esac
  files=$(find "corpus/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then result="no crash"; else result="**exit $rc**: see $log, artifacts/$t/"; fi
  echo "| $t | ${runs:-?} | ${rate:-?} | $files | $result |"
done
