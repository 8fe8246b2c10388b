#!/usr/bin/env bash
# Builds mailwire's Debian package: target/debian/mailwire_VERSION_ARCH.deb.
#
# 1. the release binaries (`mailwire` and the capture helper `mailwire-capture`);
# 2. the man pages and bash/zsh/fish completions, written by that very binary from its clap
#    definitions (`mailwire generate`), so they cannot drift from `--help`;
# 3. the icon's 256 px PNG from packaging/mailwire.svg (rsvg-convert);
# 4. cargo-deb with [package.metadata.deb] from Cargo.toml (installed if missing).
# Needs apt for the two tools it may install (librsvg2-bin, dpkg-dev) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v rsvg-convert >/dev/null || missing+=(librsvg2-bin)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-deb: installing ${missing[*]}"
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb: installing cargo-deb"
    cargo install cargo-deb --locked
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bins

out=target/packaging # where [package.metadata.deb]'s assets expect them
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
"$target/release/mailwire" generate man "$out/man"
gzip -9n "$out"/man/*.1
"$target/release/mailwire" generate completions bash >"$out/completions/mailwire"
"$target/release/mailwire" generate completions zsh >"$out/completions/_mailwire"
"$target/release/mailwire" generate completions fish >"$out/completions/mailwire.fish"
rsvg-convert -w 256 -h 256 packaging/mailwire.svg -o "$out/mailwire.png"

cargo deb --no-build --locked "$@"
ls -l target/debian/mailwire_*.deb
