#!/usr/bin/env bash
# Committed writes/s and p99 latency of a three-member etcd and a three-node yakt, both on
# loopback on this machine, driven by wrk at the same concurrency (issue 7).
#
#   tools/compare-etcd.sh            # 64 connections, 2 threads, 10 s, one round
#   CONNS=64 THREADS=2 SECS=10 ROUNDS=3 tools/compare-etcd.sh
#   YAKT_BIN=/path/to/yakt tools/compare-etcd.sh   # bench that binary instead of building one
#   PERF_OUT=/tmp/leader tools/compare-etcd.sh      # perf record the yakt leader during wrk
#   PERF_ARGS="-F 199 --call-graph dwarf" ...      # perf record options (default -F 499 -g)
#   PERF_NODE=follower PERF_OUT=/tmp/f ...          # perf record one follower instead
#   SKIP_ETCD=1 tools/compare-etcd.sh               # yakt only (quick A/B of two yakt builds)
#
# Besides requests/s and latency, each round reports the yakt leader's CPU per committed write:
# its user+system CPU time (/proc/<pid>/stat) over the wrk run divided by the 2xx answers; the
# same for all three yakt nodes and for all three etcd members, and their ratio: how many more
# writes yakt commits per CPU second than etcd. On a shared machine that ratio moves much less
# than the requests/s one, which depends on what else takes the cores during each run.
# With ROUNDS > 1 the last lines are the medians over the rounds.
#
# etcd: POST /v3/kv/put {"key": base64, "value": base64}, a unique key per request, to the
# leader, default durable fsync. yakt: POST /create_topic with a unique name per request, to the
# leader (release build, durable group commit). The two run one after the other, never at once.
# Everything started here is stopped on exit.
set -euo pipefail

CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need=()
[ -n "${SKIP_ETCD:-}" ] || command -v etcd >/dev/null || need+=(etcd-server)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    echo "installing ${need[*]} with apt-get" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi

if [ -n "${YAKT_BIN:-}" ]; then
    YAKT=$(realpath "$YAKT_BIN")
else
    (cd "$ROOT" && cargo build --release --bin yakt) >&2
    YAKT="$ROOT/target/release/yakt"
fi
CLK_TCK=$(getconf CLK_TCK)

# Data on the same disk as the build (not tmpfs), under one temporary directory.
WORK=$(mktemp -d "$ROOT/target/compare-etcd.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- wrk scripts -----------------------------------------------------------------------------
cat >"$WORK/common.lua" <<'LUA'
local threads = {}
local next_id = 0
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end
function done(summary, latency, requests)
   io.write(string.format("RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
      summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
      summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
cat >"$WORK/etcd.lua" <<LUA
dofile("$WORK/common.lua")
local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
   return ((data:gsub('.', function(x)
      local r, byte = '', x:byte()
      for i = 8, 1, -1 do r = r .. (byte % 2^i - byte % 2^(i-1) > 0 and '1' or '0') end
      return r
   end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
      if #x < 6 then return '' end
      local c = 0
      for i = 1, 6 do c = c + (x:sub(i,i) == '1' and 2^(6-i) or 0) end
      return b:sub(c+1, c+1)
   end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local n = 0
local value = b64(string.rep("v", 100))
request = function()
   n = n + 1
   local body = '{"key":"' .. b64("bench/" .. tid .. "/" .. n) .. '","value":"' .. value .. '"}'
   return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"}, body)
end
LUA
cat >"$WORK/yakt.lua" <<LUA
dofile("$WORK/common.lua")
local n = 0
request = function()
   n = n + 1
   local body = '{"name":"bench-' .. ROUND .. '-' .. tid .. '-' .. n .. '"}'
   return wrk.format("POST", "/create_topic", {["Content-Type"] = "application/json"}, body)
end
LUA

run_wrk() { # url script round -> RESULT line
    sed -i "s/^ROUND = .*//" "$2"
    sed -i "1i ROUND = \"$3\"" "$2"
    wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$2" "$1" | tee -a "$WORK/wrk.log" | grep '^RESULT'
}

# --- etcd ------------------------------------------------------------------------------------
start_etcd() {
    local cluster="" i
    for i in 1 2 3; do
        EC[$i]=$(free_port); EP[$i]=$(free_port)
        cluster+="${cluster:+,}e$i=http://127.0.0.1:${EP[$i]}"
    done
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$WORK/etcd-$1-$i" \
            --listen-client-urls "http://127.0.0.1:${EC[$i]}" --advertise-client-urls "http://127.0.0.1:${EC[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${EP[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${EP[$i]}" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bench-$1" \
            >"$WORK/etcd-$1-$i.log" 2>&1 &
        PIDS+=($!)
        EPID[$i]=$!
    done
    for _ in $(seq 1 300); do
        for i in 1 2 3; do
            if curl -sf -XPOST "http://127.0.0.1:${EC[$i]}/v3/maintenance/status" -d '{}' 2>/dev/null |
                python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("leader") and d["leader"]==d["header"]["member_id"] else 1)' 2>/dev/null; then
                ETCD_LEADER="127.0.0.1:${EC[$i]}"; return 0
            fi
        done
        sleep 0.1
    done
    echo "etcd did not elect a leader" >&2; exit 1
}

# --- yakt ------------------------------------------------------------------------------------
start_yakt() {
    local seeds="" i
    for i in 1 2 3; do
        YA[$i]="127.0.0.1:$(free_port)"
        "$YAKT" node -i "$i" -a "${YA[$i]}" --data-dir "$WORK/yakt-$1-$i" ${seeds:+-e "$seeds"} \
            >"$WORK/yakt-$1-$i.log" 2>&1 &
        PIDS+=($!)
        YPID[$i]=$!
        seeds+="${seeds:+,}$i/${YA[$i]}"
    done
    for _ in $(seq 1 600); do
        for i in 1 2 3; do
            if curl -sf "http://${YA[$i]}/cluster" 2>/dev/null |
                python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["role"]=="leader" and sum(1 for m in d["members"] if m.get("voter"))==3 else 1)' 2>/dev/null; then
                YAKT_LEADER="${YA[$i]}"; YAKT_LEADER_PID=${YPID[$i]}; return 0
            fi
        done
        sleep 0.1
    done
    echo "yakt did not elect a leader with three voters" >&2; exit 1
}

# user + system CPU ticks of processes, summed (fields 14 and 15 of /proc/<pid>/stat; the command name,
# field 2, has no spaces here).
cpu_ticks() { local p; for p in "$@"; do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'; }

field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); etcd $([ -n "${SKIP_ETCD:-}" ] && echo skipped || etcd --version | head -1 | awk '{print $3}'); wrk $CONNS connections, $THREADS threads, ${SECS}s"
printf '%-6s %-5s %12s %10s %10s %8s %8s\n' round what requests/s p50_ms p99_ms non2xx sockerr
for r in $(seq 1 "$ROUNDS"); do
    if [ -n "${SKIP_ETCD:-}" ]; then
        E="RESULT requests=1 seconds=1 p50_us=0 p99_us=0 non2xx=0 sockerr=0"
        E0=0; E1=0
    else
        start_etcd "$r"
        E0=$(cpu_ticks "${EPID[@]}")
        E=$(run_wrk "http://$ETCD_LEADER" "$WORK/etcd.lua" "$r")
        E1=$(cpu_ticks "${EPID[@]}")
        stop_all
    fi
    start_yakt "$r"
    if [ -n "${PERF_OUT:-}" ]; then
        PERF_PID_OF=$YAKT_LEADER_PID
        if [ "${PERF_NODE:-leader}" = follower ]; then
            for p in "${YPID[@]}"; do [ "$p" = "$YAKT_LEADER_PID" ] || { PERF_PID_OF=$p; break; }; done
        fi
        perf record ${PERF_ARGS:--F 499 -g} -o "$PERF_OUT.$r.data" -p "$PERF_PID_OF" -- sleep "$SECS" \
            >"$WORK/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    T0=$(cpu_ticks "$YAKT_LEADER_PID"); A0=$(cpu_ticks "${YPID[@]}")
    Y=$(run_wrk "http://$YAKT_LEADER" "$WORK/yakt.lua" "$r")
    T1=$(cpu_ticks "$YAKT_LEADER_PID"); A1=$(cpu_ticks "${YPID[@]}")
    [ -n "${PERF_OUT:-}" ] && wait "$PERF_PID"
    stop_all
    for pair in "etcd:$E" "yakt:$Y"; do
        what=${pair%%:*}; line=${pair#*:}
        rps=$(python3 -c "print(f'{$(field requests "$line")/$(field seconds "$line"):.0f}')")
        printf '%-6s %-5s %12s %10.1f %10.1f %8s %8s\n' "$r" "$what" "$rps" \
            "$(python3 -c "print($(field p50_us "$line")/1000)")" "$(python3 -c "print($(field p99_us "$line")/1000)")" \
            "$(field non2xx "$line")" "$(field sockerr "$line")"
        eval "${what}_rps_$r=$rps; ${what}_p99_$r=$(field p99_us "$line")"
    done
    ok=$(( $(field requests "$Y") - $(field non2xx "$Y") ))
    cpu_leader=$(python3 -c "print(f'{($T1-$T0)/$CLK_TCK/max($ok,1)*1e6:.1f}')")
    cpu_all=$(python3 -c "print(f'{($A1-$A0)/$CLK_TCK/max($ok,1)*1e6:.1f}')")
    echo "round $r: yakt leader CPU $(python3 -c "print(f'{($T1-$T0)/$CLK_TCK:.2f}')") s for $ok writes = $cpu_leader us CPU per committed write (all three nodes: $cpu_all us)"
    eok=$(( $(field requests "$E") - $(field non2xx "$E") ))
    cpu_etcd=$(python3 -c "print(f'{($E1-$E0)/$CLK_TCK/max($eok,1)*1e6:.1f}')")
    [ -n "${SKIP_ETCD:-}" ] || echo "round $r: etcd CPU (all three members) $cpu_etcd us per committed write; per CPU second yakt commits $(python3 -c "print(f'{$cpu_etcd/max($cpu_all,0.1):.2f}x')") as many writes"
    er="etcd_rps_$r"; yr="yakt_rps_$r"; ep="etcd_p99_$r"; yp="yakt_p99_$r"
    echo "round $r: yakt/etcd requests/s = $(python3 -c "print(f'{${!yr}/${!er}:.2f}x')") (goal >= 5x, issue 18; 10x in the end); p99 yakt $(python3 -c "print(${!yp}/1000)") ms vs etcd $(python3 -c "print(${!ep}/1000)") ms ($( [ "${!yp}" -lt "${!ep}" ] && echo lower || echo NOT lower))"
    echo "${!yr} ${!er} ${!yp} ${!ep} $cpu_leader $cpu_all $cpu_etcd" >>"$WORK/rounds.txt"
done

# With several rounds, the medians: this machine is shared and noisy, and etcd's rate moves
# between sittings as much as yakt's does, so compare the median ratio, not one round.
if [ "$ROUNDS" -gt 1 ]; then
    python3 - "$WORK/rounds.txt" "${SKIP_ETCD:-}" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
print(f"median of {len(rows)} rounds: yakt {med(0):.0f} writes/s, p99 {med(2)/1000:.1f} ms; "
      f"leader CPU {med(4):.1f} us per committed write (all three nodes: {med(5):.1f} us)")
if not sys.argv[2]:
    ratio = statistics.median(r[0] / r[1] for r in rows)
    print(f"median of {len(rows)} rounds: etcd {med(1):.0f} writes/s, p99 {med(3)/1000:.1f} ms; "
          f"yakt/etcd {ratio:.2f}x (the median of the per-round ratios)")
    per_cpu = statistics.median(r[6] / r[5] for r in rows)
    print(f"median of {len(rows)} rounds: etcd CPU {med(6):.1f} us per committed write (all three members); "
          f"yakt commits {per_cpu:.2f}x as many writes per CPU second (the median of the per-round ratios)")
PY
fi
