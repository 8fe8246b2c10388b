#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after the other, under `nice -n 19`, and
# prints a Markdown table: executions, executions per second, corpus size, crashes.
#   usage: fuzz/run-all.sh SECONDS [TARGET...]        (default: every target)
# RUNS=N bounds each target by executions instead (-runs=N; SECONDS still caps the time).
# Corpora go to fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both
# ignored by git); the logs to fuzz/artifacts/logs/. Seeds: the scenarios for
# scenario_loader, tiny pcap and pcapng files for capture_file, a session or two for the
# protocol targets. Uses the stable toolchain with RUSTC_BOOTSTRAP=1 (see README.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SECONDS_EACH=${1:?usage: fuzz/run-all.sh SECONDS [TARGET...]}
shift
ALL=(decode_frame reassembly pop3_server smtp_server pop3_client smtp_client line_splitter scenario_loader capture_file)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
cd "$HERE"
mkdir -p artifacts/logs

seed() { # target name bytes (printf format)
  mkdir -p "corpus/$1"
  # shellcheck disable=SC2059
  printf "$3" >"corpus/$1/seed-$2"
}
seeds() {
  seed pop3_server session '\x10\x00USER mrose\r\nPASS tanstaaf\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 2 0\r\nUIDL\r\nDELE 1\r\nQUIT\r\n'
  seed pop3_server apop '\x10\x02\x03\x20APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\nRETR 4\r\nRSET\r\nQUIT\r\n'
  seed smtp_server session '\x13\x00EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<gb@localhost>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n'
  seed smtp_server pipelined '\x12\x01\x05HELO c\r\nMAIL FROM:<> SIZE=10\r\nRCPT TO:<postmaster>\r\nDATA\r\nx\n.\n\r\n.\r\nRSET\r\n'
  seed pop3_client session '\x01\x00+OK ready <1.2@h>\r\n+OK\r\nCAPA\r\nTOP\r\n.\r\n+OK\r\n+OK\r\n+OK 2 10\r\n+OK\r\n1 5\r\n.\r\n'
  seed smtp_client session '\x01\x00220 h ESMTP\r\n250-h\r\n250 SIZE 100\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n'
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
  esac
}
max_len_of() {
  case $1 in
    pop3_client | smtp_client | line_splitter) echo 65536 ;;
    scenario_loader | capture_file) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

nice -n 19 cargo fuzz build >&2
echo "| target | executions | exec/s | corpus files | result |"
echo "| --- | ---: | ---: | ---: | --- |"
for t in "${TARGETS[@]}"; do
  log=artifacts/logs/$t.log
  mkdir -p "corpus/$t"
  rc=0
  # shellcheck disable=SC2046
  nice -n 19 timeout $((SECONDS_EACH + 300)) cargo fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" ${RUNS:+-runs=$RUNS} -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 $(dict_of "$t") >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # capture_file's scratch file (one per fuzzing process; libFuzzer exits without cleanup).
  [ "$t" != capture_file ] || rm -f /dev/shm/mailwire-fuzz-*.pcapng "${TMPDIR:-/tmp}"/mailwire-fuzz-*.pcapng
  files=$(find "corpus/$t" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then result="no crash"; else result="**exit $rc**: see $log, artifacts/$t/"; fi
  echo "| $t | ${runs:-?} | ${rate:-?} | $files | $result |"
done
