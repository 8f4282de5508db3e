# shellcheck shell=bash
# Sourced by .ci/docs-check and .ci/console-check (after dev-server.sh, for
# log and die): finds Chromium, installing Debian's package when it is
# missing (needs root and apt-get), and the flags that keep it offline.
#
#   ensure_chromium         sets CHROMIUM to the browser's path
#   offline_flags PROFILE   prints, one a line, the flags of a headless
#                           Chromium with its own profile that can reach
#                           127.0.0.1 and nothing else

# (GitHub's Ubuntu runners carry Google Chrome instead.)
find_chromium() {
  command -v chromium || command -v chromium-browser || command -v google-chrome \
    || command -v google-chrome-stable || true
}

ensure_chromium() {
  CHROMIUM=$(find_chromium)
  [[ -n $CHROMIUM ]] && return 0
  log "installing chromium (Debian package)"
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "chromium is not installed; install it (Debian: apt-get install chromium) and rerun"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  CHROMIUM=$(find_chromium)
  [[ -n $CHROMIUM ]] || die "chromium is still missing after apt-get install"
}

# Names resolve to nothing, and anything not on loopback goes to a proxy
# port where nothing listens: the page gets 127.0.0.1 and nothing else.
offline_flags() {
  local profile=$1 dead_port
  dead_port=$(free_port)
  printf '%s\n' \
    --headless --no-sandbox --disable-gpu \
    --disable-background-networking --disable-component-update --disable-sync \
    --no-first-run --user-data-dir="$profile" \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
    --proxy-server="http://127.0.0.1:$dead_port"
}
