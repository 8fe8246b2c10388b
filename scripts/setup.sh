#!/usr/bin/env bash
# Installs what mailwire needs on a Debian/Ubuntu machine: the libpcap headers to build,
# and the independent peers the tests talk to (Python, curl, Dovecot, tshark, Xvfb).
# Safe to run again: apt-get skips what is already there. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential pkg-config libpcap-dev   # build: the pcap crate links libpcap
  libwayland-dev libxkbcommon-dev          # build: the window (winit links them)
  python3 curl swaks                       # independent clients used by the tests
  python3-pip openssl                      # pip for scramp (below); openssl s_client -starttls
  libnet-ssleay-perl libio-socket-ssl-perl # swaks --tls
  libauthen-sasl-perl libdigest-hmac-perl  # swaks --auth (CRAM-MD5 needs HMAC-MD5)
  dovecot-pop3d                            # an independent POP3 server for the client tests
  tshark                                   # reads our exported captures in the tests
  nftables                                 # the retransmission scenario loses a segment
  xvfb xauth imagemagick                   # the window under a virtual display (screenshots)
  chromium                                 # opens and prints the HTML worksheets and reports
  libxkbcommon-x11-0 libgl1 libegl1        # what eframe loads at run time
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo; missing: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no (mailwire never needs it).
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# scramp: a SCRAM-SHA-256 client mailwire did not write, for the SASL tests (Python's
# standard library has none). Debian's own Python refuses pip installs without the flag.
if ! python3 -c 'import scramp' 2>/dev/null; then
  echo "setup: installing the Python package scramp"
  python3 -m pip install --quiet scramp 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages scramp
fi

command -v cargo >/dev/null || {
  echo "setup: cargo not found. Install Rust 1.89 or newer (https://rustup.rs), then run this again." >&2
  exit 1
}
echo "setup: all set"
