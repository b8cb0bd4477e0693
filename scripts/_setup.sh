# shellcheck shell=bash
# Shared bootstrap for scripts/demo and scripts/test: sourced, never run directly.
#
# Everything a fresh Debian machine (python3, pip, venv, gcc) lacks is installed here:
#   - a virtualenv .venv (python3.11, or python3 >= 3.11) with `pip install -e '.[dev]'`,
#     re-run only when pyproject.toml (or the interpreter) changed since the last install
#     (stamp file .venv/.csvboard-install-stamp);
#   - Debian packages via apt-get, only when the binary they provide is missing
#     (`apt-get update` first; sudo only when not root and sudo exists).
#
# After sourcing: CSVBOARD_ROOT (repo root, also the working directory) and VENV are set.

CSVBOARD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$CSVBOARD_ROOT/.venv"
STAMP="$VENV/.csvboard-install-stamp"
export CSVBOARD_ROOT VENV
cd "$CSVBOARD_ROOT" || exit 1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -----------------------------------------------------------------------

_APT_UPDATED=0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install these packages by hand: $*"
    if [ "$_APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        _APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# ensure_command BINARY PACKAGE...: apt-get install PACKAGE... unless BINARY is on PATH.
ensure_command() {
    local binary="$1"
    shift
    if ! command -v "$binary" >/dev/null 2>&1; then
        apt_install "$@"
        command -v "$binary" >/dev/null 2>&1 || die "$binary still missing after installing $*"
    fi
}

# --- Chromium (headless browser tests of the web UI, tests/e2e) ------------------------------

# Debian's chromium at /usr/bin/chromium, which Playwright drives (it never downloads a browser
# of its own: `playwright install` is not used).
ensure_chromium() {
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
        [ -x /usr/bin/chromium ] || die "/usr/bin/chromium still missing after installing chromium"
    fi
    # A Japanese font, so the screenshots the tests write show the UI's text, not boxes.
    if ! fc-list :lang=ja 2>/dev/null | grep -q .; then
        apt_install fonts-ipafont-gothic
    fi
    log "Chromium: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
}

# Debian's Dovecot IMAP server, for the tests' throwaway mail server (tests/worker/test_mail.py).
ensure_dovecot() {
    if [ ! -x /usr/sbin/dovecot ]; then
        apt_install dovecot-imapd
        [ -x /usr/sbin/dovecot ] || die "/usr/sbin/dovecot still missing after installing dovecot-imapd"
    fi
    ensure_command openssl openssl  # the tests' self-signed certificate for IMAPS / STARTTLS
    log "Dovecot: $(/usr/sbin/dovecot --version 2>/dev/null || echo /usr/sbin/dovecot)"
}

# --- PostgreSQL server binaries (for the tests' throwaway clusters) -------------------------

# Prints a directory with initdb, pg_ctl and postgres of version >= 15, or returns 1.
# Same search order as tests/pg_cluster.py: pg_config --bindir, /usr/lib/postgresql/*/bin
# (highest version first), initdb on PATH.
pg_server_bindir() {
    local candidates=() dir version initdb
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        [ -n "$dir" ] && candidates+=("$dir")
    fi
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -t/ -k5,5 -rn)
    if initdb="$(command -v initdb 2>/dev/null)"; then
        candidates+=("$(dirname "$(readlink -f "$initdb")")")
    fi
    for dir in "${candidates[@]}"; do
        if [ ! -x "$dir/initdb" ] || [ ! -x "$dir/pg_ctl" ] || [ ! -x "$dir/postgres" ]; then
            continue
        fi
        # "postgres (PostgreSQL) 15.18 (Debian ...)" -> 15
        version="$("$dir/postgres" --version 2>/dev/null | awk '{print $3}' | grep -oE '^[0-9]+' || true)"
        if [ -n "$version" ] && [ "$version" -ge 15 ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

ensure_postgres_server() {
    if [ -n "${CSVBOARD_TEST_POSTGRES_URL:-}" ]; then
        log "PostgreSQL: using CSVBOARD_TEST_POSTGRES_URL (no local server needed)"
        return 0
    fi
    local bindir
    if ! bindir="$(pg_server_bindir)"; then
        apt_install postgresql
        bindir="$(pg_server_bindir)" || die "no PostgreSQL >= 15 server binaries after installing postgresql"
    fi
    log "PostgreSQL: $bindir"
}

# --- Python virtualenv ------------------------------------------------------------------------

_py_ok() {  # _py_ok PYTHON: is it Python >= 3.11?
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && _py_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    die "need python3.11 or python3 >= 3.11"
}

_make_venv() {
    local python="$1"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian splits venv/ensurepip into python3-venv (python3.X-venv).
        rm -rf "$VENV"
        local minor
        minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install python3-venv "python${minor}-venv"
        "$python" -m venv "$VENV" || die "cannot create $VENV"
    fi
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ] || ! _py_ok "$VENV/bin/python"; then
        local python
        python="$(find_python)"
        log "creating virtualenv .venv with $python"
        _make_venv "$python"
    fi
    local want have=""
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
    [ -f "$STAMP" ] && have="$(cat "$STAMP")"
    if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import csvboard' >/dev/null 2>&1; then
        log "pip install -e '.[dev]'"
        rm -f "$STAMP"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
        printf '%s\n' "$want" >"$STAMP"
    fi
}
