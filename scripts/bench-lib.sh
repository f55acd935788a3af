#!/usr/bin/env bash
# Shared by scripts/bench-density.sh and scripts/bench-probes.sh (sourced; a measurement kit, not a test).
# The caller sets: BENCH (its name, for messages), state, label (the pods' label key).
# shellcheck disable=SC2154  # state and label are the caller's

# bench_agent_pid: the lab agent's PID, or exit with a message when the lab is not up.
bench_agent_pid() {
    [[ -f $state/pids/agent.pid ]] || { echo "$BENCH: the lab is not up (run sudo ./scripts/up.sh)" >&2; exit 1; }
    local pid
    pid=$(cat "$state/pids/agent.pid")
    [[ -r /proc/$pid/stat ]] || { echo "$BENCH: agent pid $pid is not running" >&2; exit 1; }
    echo "$pid"
}

hz=$(getconf CLK_TCK)
cpu_ticks() { # PID: utime + stime (fields 14 and 15; the command name may contain spaces)
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
percent() { # ticks wall_ms: CPU as % of one core
    awk -v c="$1" -v hz="$hz" -v ms="$2" 'BEGIN { printf "%.2f", 100 * (c / hz) / (ms / 1000) }'
}
verdict() { # value target: "ok" or "MISSED"
    awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "ok" : "MISSED" }'
}
bench_cleanup() {
    kubectl delete pods -l "$label" --grace-period=1 --wait=false >/dev/null 2>&1 || true
}

# create_pods N POD_JSON_FN: one `kind: List` of N pods; POD_JSON_FN I prints pod number I as JSON.
create_pods() {
    local n=$1 pod=$2 manifest i
    manifest=$(mktemp)
    {
        echo '{"apiVersion": "v1", "kind": "List", "items": ['
        for i in $(seq 1 "$n"); do
            [[ $i -gt 1 ]] && echo ','
            "$pod" "$i"
        done
        echo ']}'
    } >"$manifest"
    kubectl create -f "$manifest" >/dev/null
    rm -f "$manifest"
}

# wait_all_ready N: until N pods with $label are 1/1 Running (900 s at most, then exit 1).
wait_all_ready() {
    local n=$1 ready deadline=$(( $(date +%s) + 900 ))
    while :; do
        ready=$(kubectl get pods -l "$label" --no-headers 2>/dev/null | awk '$2 ~ /^1\/1$/ && $3 == "Running"' | wc -l)
        [[ $ready -ge $n ]] && return 0
        if [[ $(date +%s) -gt $deadline ]]; then
            echo "$BENCH: only $ready of $n pods Ready after 900 s" >&2
            kubectl get pods -l "$label" --no-headers | awk '$2 !~ /^1\/1$/ || $3 != "Running"' | head -20 >&2
            exit 1
        fi
        sleep 1
    done
}
