#!/usr/bin/env bash
# Installs mailwire's .deb on the system this runs on (as root) and checks it as a user would
# find it, then removes it and checks nothing is left. packaging/test-deb.sh runs it, here or
# inside a fresh Debian root. Usage: deb-checks.sh PATH/TO/mailwire_*.deb
#
# Each check prints "ok - ..." or "FAIL - ..."; the last line is "N passed, N failed", and
# the exit status is 1 if anything failed.
set -uo pipefail

deb=${1:?usage: deb-checks.sh mailwire_VERSION_ARCH.deb}
[ "$(id -u)" = 0 ] || { echo "deb-checks.sh must run as root (apt-get install)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

member=mwtest$$
outsider=mwout$$
work=$(mktemp -d /tmp/mailwire-deb-checks.XXXXXX)
chmod 0755 "$work"
cleanup() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
    userdel -r "$member" >/dev/null 2>&1
    userdel -r "$outsider" >/dev/null 2>&1
    rm -rf "$work"
}
pids=()
trap cleanup EXIT

echo "# installing $deb with apt-get (which resolves its Depends)"
if dpkg -s mailwire >/dev/null 2>&1; then apt-get purge -y -q mailwire >/dev/null; fi
if ! apt-get install -y -q --no-install-recommends "$(realpath "$deb")" >"$work/apt.log" 2>&1; then
    cat "$work/apt.log"
    bad "apt-get install ./$(basename "$deb")"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "apt-get install ./$(basename "$deb")"
grep -i "mailwire:" "$work/apt.log" | sed 's/^/# postinst: /'
dpkg -L mailwire | sort >"$work/files"

# --- the program, its man pages and completions ---
check "mailwire is /usr/bin/mailwire" test "$(command -v mailwire)" = /usr/bin/mailwire
version=$(mailwire --version 2>&1)
check "mailwire --version says '$version'" grep -qE '^mailwire [0-9]+\.[0-9]+\.[0-9]+' <<<"$version"
if ! command -v man >/dev/null; then apt-get install -y -q --no-install-recommends man-db >/dev/null 2>&1; fi
check "man -w mailwire finds $(man -w mailwire 2>/dev/null)" man -w mailwire
check "man -w mailwire-watch (a page per command)" man -w mailwire-watch
manpage=$(MANWIDTH=100 man mailwire 2>/dev/null)
helptext=$(COLUMNS=100 mailwire --help)
check "the man page lists every command --help lists" bash -c '
    for cmd in $(sed -n "/^Commands:/,/^\$/p" <<<"$2" | awk "NR>1 && \$1 != \"help\" {print \$1}"); do
        grep -q "mailwire-$cmd" <<<"$1" || { echo "# missing: $cmd"; exit 1; }
    done' _ "$manpage" "$helptext"
check "neither the man page nor the bash completion offers 'generate' (a packaging tool)" bash -c '! grep -q "generate" <<<"$1" && ! grep -q generate /usr/share/bash-completion/completions/mailwire' _ "$manpage"
check "bash completion: complete -p mailwire" bash -c \
    'source /usr/share/bash-completion/completions/mailwire && complete -p mailwire | grep -q _mailwire'
check "bash completion offers 'watch' after 'mailwire wa'" bash -c '
    source /usr/share/bash-completion/completions/mailwire
    COMP_WORDS=(mailwire wa); COMP_CWORD=1; COMP_LINE="mailwire wa"; COMP_POINT=${#COMP_LINE}
    _mailwire mailwire wa mailwire; printf "%s\n" "${COMPREPLY[@]}" | grep -qx watch'
check "zsh completion is installed (#compdef mailwire)" grep -q '^#compdef mailwire' /usr/share/zsh/vendor-completions/_mailwire
check "fish completion is installed" grep -q 'complete -c mailwire' /usr/share/fish/vendor_completions.d/mailwire.fish

# --- the desktop entry and icon ---
if ! command -v desktop-file-validate >/dev/null; then
    apt-get install -y -q --no-install-recommends desktop-file-utils >/dev/null 2>&1
fi
check "desktop-file-validate /usr/share/applications/mailwire.desktop" \
    desktop-file-validate /usr/share/applications/mailwire.desktop
check "the desktop entry starts mailwire with Icon=mailwire" bash -c \
    'grep -qx "Exec=mailwire %f" "$1" && grep -qx "Icon=mailwire" "$1"' _ /usr/share/applications/mailwire.desktop
png=/usr/share/icons/hicolor/256x256/apps/mailwire.png
check "the icon is a 256x256 PNG" bash -c \
    '[ "$(head -c 8 "$1" | od -An -tx1 | tr -d " ")" = 89504e470d0a1a0a ] &&
     [ "$(od -An -j16 -N8 -tu1 "$1" | tr -s " ")" = " 0 0 1 0 0 0 1 0" ]' _ "$png"
check "the scalable icon is an SVG" grep -q '<svg' /usr/share/icons/hicolor/scalable/apps/mailwire.svg

# --- the capture helper's rights ---
helper=/usr/lib/mailwire/mailwire-capture
check "group mailwire exists (a system group)" bash -c \
    '[ "$(getent group mailwire | cut -d: -f3)" -lt 1000 ]'
check "$helper is root:mailwire 0750 ($(stat -c '%U:%G %a' $helper))" \
    test "$(stat -c '%U:%G %a' $helper)" = "root:mailwire 750"
caps=$(getcap $helper)
check "$helper has cap_net_admin,cap_net_raw=eip ($caps)" grep -q 'cap_net_admin,cap_net_raw=eip' <<<"$caps"
check "/usr/bin/mailwire holds no capabilities" test -z "$(getcap /usr/bin/mailwire)"
setcap -r $helper
dpkg-reconfigure mailwire >/dev/null 2>&1
check "dpkg-reconfigure mailwire gives the helper its capabilities back (the banner's advice)" \
    bash -c 'getcap "$1" | grep -q "cap_net_admin,cap_net_raw=eip"' _ $helper

# --- a user in the group watches loopback through the helper ---
useradd -m -G mailwire "$member"
useradd -m "$outsider"
as() { # as USER COMMAND...: a clean environment, as after a login
    local who=$1
    shift
    runuser -u "$who" -- env -i HOME="/home/$who" USER="$who" LOGNAME="$who" LANG=C.UTF-8 \
        PATH=/usr/local/bin:/usr/bin:/bin "$@"
}
pop3=$((21000 + RANDOM % 20000))
smtp=$((pop3 + 1))
as "$member" mailwire serve --pop3 "127.0.0.1:$pop3" --smtp "127.0.0.1:$smtp" --no-tls \
    >"$work/serve.log" 2>&1 &
pids+=($!)
as "$member" timeout 30 mailwire watch --port "$pop3" --seconds 6 >"$work/watch.log" 2>&1 &
watcher=$!
for _ in $(seq 50); do
    grep -q "^Watching" "$work/watch.log" 2>/dev/null && grep -q "POP3 on" "$work/serve.log" && break
    sleep 0.1
done
sleep 0.5
if exec 3<>"/dev/tcp/127.0.0.1/$pop3"; then
    read -r -t 3 greeting <&3
    printf 'USER deb-check\r\nQUIT\r\n' >&3
    timeout 3 cat <&3 >/dev/null
    exec 3<&-
fi
wait "$watcher"
sed 's/^/# watch: /' "$work/watch.log"
check "mailwire watch as a member of the group saw the greeting" grep -q 'S: +OK' "$work/watch.log"
check "mailwire watch as a member of the group saw USER deb-check" grep -q 'C: USER deb-check' "$work/watch.log"
check "... and its capture ran through the helper (mailwire has no rights itself)" \
    bash -c '! grep -q "Cannot capture" "$1"' _ "$work/watch.log"
as "$outsider" timeout 10 mailwire watch --port "$pop3" --seconds 1 >"$work/outsider.log" 2>&1
sed 's/^/# outsider: /' "$work/outsider.log" | cut -c1-300
check "a user outside the group is refused and told to join it" \
    grep -q 'sudo adduser \$USER mailwire' "$work/outsider.log"

# --- the window starts (X11 under Xvfb when there is one; MAILWIRE_CHECK_DISPLAY names it) ---
display=${MAILWIRE_CHECK_DISPLAY:-}
if [ -z "$display" ] && command -v Xvfb >/dev/null; then
    Xvfb :77 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
    pids+=($!)
    display=:77
    sleep 1
fi
if [ -n "$display" ]; then
    shot=/home/$member/window.png
    if as "$member" env DISPLAY="$display" timeout 120 mailwire --screenshot "$shot" \
        >"$work/window.log" 2>&1 && [ -s "$shot" ]; then
        ok "the window (mailwire --screenshot, as the member, display $display) drew a $(stat -c %s "$shot")-byte PNG"
        if [ -n "${MAILWIRE_CHECK_OUT:-}" ]; then cp "$shot" "$MAILWIRE_CHECK_OUT/window.png"; fi
    else
        sed 's/^/# window: /' "$work/window.log" | tail -20
        bad "the window (mailwire --screenshot) as the member"
    fi
else
    echo "# no X server here (no Xvfb, no MAILWIRE_CHECK_DISPLAY): the window was not started"
fi
kill "${pids[@]}" 2>/dev/null
wait 2>/dev/null
pids=()

# --- removing it leaves nothing but what Debian policy allows ---
apt-get remove -y -q mailwire >"$work/remove.log" 2>&1 || cat "$work/remove.log"
left=()
while read -r path; do
    # Directories the package shares with others (/usr/share/man/man1, ...) stay.
    if [ -e "$path" ] && ! [ -d "$path" ]; then left+=("$path"); fi
done <"$work/files"
check "apt-get remove took every file the package installed (${#left[@]} left: ${left[*]:-none})" \
    test "${#left[@]}" = 0
check "/usr/lib/mailwire is gone" test ! -e /usr/lib/mailwire
status=$(dpkg-query -W -f '${db:Status-Status}' mailwire 2>/dev/null || echo not-installed)
check "dpkg knows mailwire as '$status' (no conffiles to keep)" test "$status" = not-installed
check "group mailwire stays (Debian leaves system groups: files may still carry its id)" \
    bash -c 'getent group mailwire >/dev/null'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
