#!/bin/sh
# A single-node Slurm cluster on this machine, without systemd, from Debian
# 12's packages (slurm-wlm 22.05, munge; deploy/install-deps.sh installs them).
# Everything lives in STATE: the configuration, munge's socket and key,
# slurmctld's state, slurmd's spool, logs and pid files. Nothing in /etc is
# written, and no daemon that this script did not start is touched.
#
#   cluster.sh start STATE   write STATE/slurm.conf, start munged (as user
#                            munge), slurmctld and slurmd; wait until the node
#                            is idle; print `export SLURM_CONF=STATE/slurm.conf`
#   cluster.sh stop STATE    cancel the cluster's jobs, then stop the three
#                            daemons by their pid files in STATE
#
# Clients (sbatch, srun, scontrol, squeue) find the cluster through
# SLURM_CONF=STATE/slurm.conf; jobs inherit it. Needs root (slurmd launches
# jobs; munged is started as user munge).
#
# The configuration: SlurmctldHost=<host>(127.0.0.1), NodeAddr=127.0.0.1 and
# free ports picked at start, so two clusters can run side by side; no cgroups
# (proctrack/linuxproc, task/none, jobacct_gather/none); MpiDefault=pmix;
# ReturnToService=2; the node's CPUs from nproc. munged uses its own socket in
# STATE (AuthInfo=socket=...) and /etc/munge/munge.key (or $MUNGE_KEY), or
# a key made with mungekey in STATE when that file is missing.
set -eu

usage() {
    echo "usage: $0 start|stop STATE_DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
state=$2
PATH=$PATH:/usr/sbin:/sbin
export PATH

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# Whether process PID runs and is named COMM (a zombie, exited but not yet
# reaped, does not count; nor does a pid reused by another program).
alive() { # PID COMM
    [ "$(cat "/proc/$1/comm" 2> /dev/null)" = "$2" ] || return 1
    case $(sed 's/^.*) //' "/proc/$1/stat" 2> /dev/null) in Z* | X* | '') return 1 ;; esac
}

# The daemon named COMM whose pid is in FILE, if that process still runs:
# prints its pid. A stale pid file (or a reused pid) prints nothing.
running_pid() { # FILE COMM
    [ -s "$1" ] || return 0
    p=$(cat "$1" 2> /dev/null) || return 0
    case $p in '' | *[!0-9]*) return 0 ;; esac
    if alive "$p" "$2"; then echo "$p"; fi
}

# TERM, then KILL after 10 s. The pid is read once: slurmd removes its pid
# file as soon as it starts shutting down, which can take a while.
stop_daemon() { # FILE COMM
    p=$(running_pid "$1" "$2")
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2> /dev/null || return 0
    i=0
    while [ $i -lt 100 ] && alive "$p" "$2"; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$p" "$2"; then
        echo "cluster.sh: $2 (pid $p) still runs 10 s after SIGTERM: SIGKILL" >&2
        kill -KILL "$p" 2> /dev/null || true
    fi
}

stop() {
    [ -d "$state" ] || return 0
    conf=$state/slurm.conf
    # Jobs still running would leave their slurmstepd behind: cancel them
    # through this cluster's own slurmctld, and give them a few seconds.
    if [ -f "$conf" ] && [ -n "$(running_pid "$state/slurmctld.pid" slurmctld)" ]; then
        jobs=$(SLURM_CONF=$conf squeue -h -o %i 2> /dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086 # one argument per job id
            SLURM_CONF=$conf scancel --full --quiet --signal=KILL $jobs 2> /dev/null || true
            # shellcheck disable=SC2086
            SLURM_CONF=$conf scancel --quiet $jobs 2> /dev/null || true
            i=0
            while [ $i -lt 50 ] && [ -n "$(SLURM_CONF=$conf squeue -h -t R,CG -o %i 2>/dev/null)" ]; do
                sleep 0.2
                i=$((i + 1))
            done
        fi
    fi
    stop_daemon "$state/slurmd.pid" slurmd
    stop_daemon "$state/slurmctld.pid" slurmctld
    stop_daemon "$state/munge/munged.pid" munged
}

# Two free TCP ports on 127.0.0.1 (the kernel's choice).
free_ports() {
    python3 - <<'EOF'
import socket
ss = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
}

start() {
    for b in munged mungekey slurmctld slurmd sbatch scontrol runuser python3; do
        command -v $b > /dev/null ||
            die "$b not found: install Debian's slurm-wlm and munge (deploy/install-deps.sh)"
    done
    [ "$(id -u)" -eq 0 ] || die "needs root (slurmd launches jobs; munged runs as user munge)"
    id munge > /dev/null 2>&1 || die "no user munge (Debian's munge package creates it)"
    if [ -n "$(running_pid "$state/slurmctld.pid" slurmctld)" ]; then
        die "a cluster already runs in $state (cluster.sh stop $state first)"
    fi
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    # munged (user munge) must reach its directory; it refuses group- or
    # world-writable directories on the way.
    chmod 755 "$state"
    mkdir -p "$state/munge" "$state/ctld" "$state/spool"
    chown munge:munge "$state/munge"
    chmod 755 "$state/munge"  # munged: the socket directory must be world-searchable

    key=${MUNGE_KEY:-/etc/munge/munge.key}
    if [ ! -s "$key" ]; then
        key=$state/munge/munge.key
        if [ ! -s "$key" ]; then
            mungekey --create --keyfile="$key" 2> /dev/null ||
                dd if=/dev/urandom of="$key" bs=1 count=1024 2> /dev/null
        fi
        chown munge:munge "$key"
        chmod 600 "$key"
    fi
    sock=$state/munge/munge.socket.2
    runuser -u munge -- munged --socket="$sock" --key-file="$key" \
        --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
        --seed-file="$state/munge/munged.seed" ||
        die "munged did not start: $(tail -n 3 "$state/munge/munged.log" 2>/dev/null)"

    host=$(uname -n)
    host=${host%%.*}
    # Bind to the host name's address only when that is 127.0.0.1 (as here):
    # in a container whose name resolves to its own IP, binding there would
    # hide slurmd from NodeAddr=127.0.0.1, so such a cluster binds to any.
    comm=
    case $(getent ahostsv4 "$host" 2> /dev/null | head -n 1) in
    127.*) comm=CommunicationParameters=NoCtldInAddrAny,NoInAddrAny ;;
    esac
    cpus=$(nproc)
    # shellcheck disable=SC2046 # two port numbers
    set -- $(free_ports)
    cat > "$state/slurm.conf" <<EOF
# written by tests/slurm/cluster.sh: a single-node cluster in $state
ClusterName=tlsweep
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$state/plugstack.conf
# no cgroups: nothing to mount or delegate in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=pmix
# bind to the host name's address if that is 127.0.0.1, else to any
$comm
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
# a killed job's processes get SIGTERM, then SIGKILL this many seconds later
KillWait=30
# sbatch --wait polls every 2 s only when MinJobAge >= 4 and < 5 (else
# every 8 or 32 s); finished jobs stay visible that long
MinJobAge=4
SchedulerParameters=sched_interval=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    : > "$state/plugstack.conf"
    export SLURM_CONF="$state/slurm.conf"
    slurmctld -f "$SLURM_CONF" -c -i ||
        die "slurmctld did not start: $(tail -n 5 "$state/slurmctld.log" 2>/dev/null)"
    slurmd -f "$SLURM_CONF" -N "$host" -c ||
        die "slurmd did not start: $(tail -n 5 "$state/slurmd.log" 2>/dev/null)"
    # the node registers within a few seconds
    i=0
    while :; do
        st=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        case $st in idle | idle~ | mixed | allocated) break ;; esac
        if [ $i -ge 120 ]; then
            echo "cluster.sh: the node is '$st' after 60 s" >&2
            tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
            stop
            exit 1
        fi
        sleep 0.5
        i=$((i + 1))
    done
    echo "export SLURM_CONF=$SLURM_CONF"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
