#!/bin/sh
# Installs what slipway needs from the OS packages, only if missing:
# haproxy (2.6+) and git always; prometheus, alertmanager and chromium for the tests
# (--test); wrk for --bench.
set -eu
need=""
command -v haproxy >/dev/null 2>&1 || need="$need haproxy"
command -v git >/dev/null 2>&1 || need="$need git"
for extra in "$@"; do
    case "$extra" in
        --test)
            command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
            command -v prometheus-alertmanager >/dev/null 2>&1 || need="$need prometheus-alertmanager"
            command -v chromium >/dev/null 2>&1 || need="$need chromium"
            ;;
        --bench) command -v wrk >/dev/null 2>&1 || need="$need wrk" ;;
    esac
done
[ -z "$need" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "slipway needs:$need — install them with your package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install:$need" >&2; exit 1; }
    sudo="sudo"
fi
echo "installing from apt:$need"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
