#!/bin/sh
# Installs what slipway needs from the OS packages, only if missing:
# haproxy (2.6+) and git always; for the tests (--test) prometheus, alertmanager,
# chromium, and for the fleet tests sshd and the ip tool (hosts are network
# namespaces with a real sshd); wrk for --bench.
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
            [ -x /usr/sbin/sshd ] || need="$need openssh-server"
            command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
            command -v ip >/dev/null 2>&1 || need="$need iproute2"
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
