#!/usr/bin/env bash
# A one-node SLURM cluster with 4 fake GPUs on this machine, for tests/cluster/test_slurm.py.
#
#   tests/cluster/slurm.sh check          exit 0 if the cluster can be started here, else say why (exit 3)
#   tests/cluster/slurm.sh start DIR      install slurm-wlm + munge if missing, start munged, slurmctld, slurmd
#   tests/cluster/slurm.sh stop DIR       stop the daemons this script started (by pid), keep DIR for inspection
#
# The cluster's state, spool, pids and logs live in DIR. Its config goes to /etc/slurm/{slurm,gres}.conf
# (copies in DIR): SLURM_CONF elsewhere would not reach the `srun` that Snakemake's job step runs inside
# each job, since the plugin drops inherited SLURM_* variables. An existing config there that this script
# did not write is left alone (the test then skips). Needs root (daemons, apt-get); no systemd needed.
# Facts this relies on: docs/cluster.md (Debian 12: slurm-wlm 22.05, munge 0.5).
set -euo pipefail

die() { echo "slurm.sh: $*" >&2; exit 3; }  # cannot run here: the test skips
fail() { echo "slurm.sh: $*" >&2; exit 1; }  # should have worked: the test fails

ETC=/etc/slurm
MARK="# written by imfn tests/cluster/slurm.sh"

check() {
    [[ $(id -u) == 0 ]] || die "needs root (starts munged/slurmctld/slurmd, may apt-get install slurm-wlm munge)"
    if [[ -f $ETC/slurm.conf ]] && ! grep -qxF "$MARK" "$ETC/slurm.conf"; then
        die "$ETC/slurm.conf exists and is not ours: not replacing a real cluster's config"
    fi
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        die "slurmctld/slurmd already running here"
    fi
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and there is no apt-get"
    fi
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    echo "slurm.sh: installing slurm-wlm and munge with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
}

wait_for() {  # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

start() {
    local dir=$1
    check
    install
    mkdir -p "$dir"/{state,spool,log,gpus}
    dir=$(cd "$dir" && pwd)
    local host; host=$(hostname -s)
    local mem_mb; mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    local cpus; cpus=$(nproc)

    # munge: the package made the key; the daemon runs as user munge in a directory it owns. That
    # directory is outside DIR, which may sit under a private (0700) temporary directory.
    [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || create-munge-key -f; }
    local munge_dir; munge_dir=$(mktemp -d /tmp/imfn-munge.XXXXXX)
    chmod 755 "$munge_dir" && chown munge:munge "$munge_dir"
    ln -sfn "$munge_dir" "$dir/munge"
    runuser -u munge -- munged --socket="$munge_dir/munge.socket" --pid-file="$munge_dir/munged.pid" \
        --log-file="$munge_dir/munged.log" --seed-file="$munge_dir/munged.seed"
    wait_for 10 test -S "$munge_dir/munge.socket" || fail "munged did not start (see $munge_dir/munged.log)"

    # The scheduler's own record of which GPU each job got: slurmd runs this as root before every job
    # with SLURM_JOB_GPUS set (scontrol forgets a finished job's GPU index).
    cat >"$dir/prolog.sh" <<EOF
#!/bin/sh
echo "\$SLURM_JOB_ID \${SLURM_JOB_GPUS:-none}" >>"$dir/allocations.log"
exit 0
EOF
    chmod 755 "$dir/prolog.sh"
    : >"$dir/allocations.log"

    # Fake GPUs: gres.conf wants device files, so four symlinks to /dev/null.
    for i in 0 1 2 3; do ln -sfn /dev/null "$dir/gpus/nvidia$i"; done
    cat >"$dir/gres.conf" <<EOF
$MARK
AutoDetect=off
Name=gpu File=$dir/gpus/nvidia[0-3]
EOF
    cat >"$dir/slurm.conf" <<EOF
$MARK
ClusterName=imfn-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_dir/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
Prolog=$dir/prolog.sh
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mkdir -p "$ETC"
    cp "$dir/slurm.conf" "$dir/gres.conf" "$ETC/"
    printf 'export SLURM_CONF=%q\n' "$ETC/slurm.conf" >"$dir/env"
    export SLURM_CONF="$ETC/slurm.conf"

    slurmctld -f "$SLURM_CONF"
    wait_for 20 scontrol ping || fail "slurmctld did not answer (see $dir/log/slurmctld.log)"
    slurmd -f "$SLURM_CONF"
    # The node is idle once slurmd registered; a previous run's state may have left it drained.
    if ! wait_for 30 bash -c "sinfo -h -N -o %t | grep -qx idle"; then
        scontrol update nodename="$host" state=resume || true
        wait_for 15 bash -c "sinfo -h -N -o %t | grep -qx idle" || fail "node not idle: $(sinfo -h -N -o '%t %E')"
    fi
    echo "slurm.sh: cluster up in $dir (node $host, $cpus CPUs, ${mem_mb} MB, gpu:4)"
}

stop_pid() {  # stop_pid PIDFILE: TERM, then KILL after 10 s
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    local dir=$1
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    if [[ -L $dir/munge ]]; then
        local munge_dir; munge_dir=$(readlink "$dir/munge")
        stop_pid "$munge_dir/munged.pid"
        rm -rf "$munge_dir" "$dir/munge"
    fi
    for conf in slurm.conf gres.conf; do
        if [[ -f $ETC/$conf ]] && grep -qxF "$MARK" "$ETC/$conf"; then rm -f "$ETC/$conf"; fi
    done
    echo "slurm.sh: cluster in $dir stopped"
}

case ${1:-} in
    check) check ;;
    start) start "${2:?usage: slurm.sh start DIR}" ;;
    stop) stop "${2:?usage: slurm.sh stop DIR}" ;;
    *) echo "usage: slurm.sh check | start DIR | stop DIR" >&2; exit 2 ;;
esac
