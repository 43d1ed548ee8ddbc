#!/bin/sh
# Installs what slipway needs from the OS packages, only if missing:
# haproxy (2.6+) and git always; for the tests (--test) prometheus, alertmanager,
# chromium, and for the fleet tests sshd, keepalived, nft and the ip tool (hosts are network
# namespaces with a real sshd), PostgreSQL 15 and pgBackRest for the database tests (and on
# any host that runs a database: --db); wrk for --bench. No service is started by installing them
# (a policy-rc.d denies it while apt runs, unless the machine has its own): slipway and its
# tests run sshd and keepalived themselves, inside the hosts' namespaces. Debian's
# postgresql package may create a default cluster (15/main); slipway neither uses nor starts
# it: every database gets its own cluster in slipway's home.
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
            [ -x /usr/sbin/keepalived ] || need="$need keepalived"
            [ -x /usr/sbin/nft ] || need="$need nftables"
            command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
            command -v ip >/dev/null 2>&1 || need="$need iproute2"
            [ -x /usr/lib/postgresql/15/bin/initdb ] || need="$need postgresql-15"
            [ -x /usr/bin/pgbackrest ] || need="$need pgbackrest"
            ;;
        --db)
            [ -x /usr/lib/postgresql/15/bin/initdb ] || need="$need postgresql-15"
            [ -x /usr/bin/pgbackrest ] || need="$need pgbackrest"
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
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
