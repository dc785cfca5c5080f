# shellcheck shell=bash
# Shared by scripts/setup, scripts/test, scripts/develop and scripts/bench.
#
# Home Assistant 2026.10+ needs Python >= 3.14.2. Where the machine has such a
# `python3.14` on PATH we use it directly ("native" mode). Otherwise we keep a
# minimal Debian root (built once with debootstrap, it carries python3.14, a C++
# compiler for assist_pipeline's native wheels and ffmpeg for the TTS manager)
# and run every command inside it with chroot, in a private mount namespace so
# no mount outlives the command ("chroot" mode). The project folder is
# bind-mounted at the same path inside, so paths read the same in both modes.

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLCHAIN_DIR="${REALTIME_ASSIST_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/realtime-assist/toolchain}"
ROOTFS="$TOOLCHAIN_DIR/rootfs"
MIN_PYTHON="3.14.2"
DEBIAN_SUITE="forky"
ROOTFS_PACKAGES="python3.14,python3.14-venv,python3.14-dev,ca-certificates,g++,ffmpeg,libturbojpeg0,git"
# Debian packages installed with apt on top, into new and existing environments
# alike (scripts/setup adds what is missing): Chromium for the browser test of
# the UI (tests/smoke/test_ui.py drives it over the DevTools protocol).
APT_PACKAGES="chromium"

# Inside the environment (both modes): where the two virtualenvs live.
#   VENV_TEST:   Home Assistant 2026.10.4 + pytest-homeassistant-custom-component + linters
#   VENV_NEWEST: the newest Home Assistant release, for the smoke test and scripts/develop
native_python() {
    local candidate
    candidate="$(command -v python3.14 2>/dev/null)" || return 1
    "$candidate" -c "import sys; sys.exit(0 if sys.version_info >= (3, 14, 2) else 1)" 2>/dev/null || return 1
    echo "$candidate"
}

if native_python >/dev/null; then
    ENV_MODE="native"
    VENV_TEST="$TOOLCHAIN_DIR/venv-test"
    VENV_NEWEST="$TOOLCHAIN_DIR/venv-newest"
else
    ENV_MODE="chroot"
    VENV_TEST="/opt/venv-test"
    VENV_NEWEST="/opt/venv-newest"
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Run a command inside the environment, in the project folder.
in_env() {
    if [ "$ENV_MODE" = "native" ]; then
        (cd "$PROJECT_DIR" && "$@")
        return
    fi
    if [ ! -x "$ROOTFS/usr/bin/python3.14" ]; then
        log "No toolchain at $ROOTFS: run scripts/setup first."
        return 1
    fi
    # Networking (pip, loopback servers) is shared with the host; DNS and the
    # CA bundle the host trusts are refreshed on every call.
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    fi
    local quoted passthrough=""
    quoted="$(printf '%q ' "$@")"
    # A clean environment inside, with only what the scripts themselves use.
    local name
    for name in CI TERM $(compgen -e | grep '^REALTIME_ASSIST_' || true); do
        [ -n "${!name+x}" ] && passthrough+="$(printf '%q ' "$name=${!name}")"
    done
    unshare --mount --propagation private -- /bin/bash -c "
        set -e
        mount -t proc proc '$ROOTFS/proc'
        mount --rbind /dev '$ROOTFS/dev'
        mount -t tmpfs tmpfs '$ROOTFS/tmp'
        # After the tmpfs: a project under /tmp gets its mount point inside it.
        mkdir -p '$ROOTFS$PROJECT_DIR'
        mount --bind '$PROJECT_DIR' '$ROOTFS$PROJECT_DIR'
        exec chroot '$ROOTFS' /usr/bin/env -i $passthrough LANG=C.UTF-8 \
            HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
            UV_SYSTEM_CERTS=1 \
            /bin/bash -c 'cd \"\$0\" && exec \"\$@\"' '$PROJECT_DIR' $quoted"
}
