#!/usr/bin/env bash
# veil across hosts, simulated: every party and the dealer in its own network namespace, joined
# through a bridge by veth links (iproute2), mutual TLS over real TCP/IP, optionally with added
# latency. Latency uses `tc netem` when the kernel has it, else a user-space delay relay
# (scripts/delay_proxy.py) in each dialer's namespace. Run as root from the repository root after
# building (bash scripts/build.sh).
#
#   bash scripts/netns_demo.sh [--parties N] [--rtt-ms MS] [--samples S] [--build DIR]
#
# --rtt-ms adds MS milliseconds to every round trip (MS/2 each way). Prints the private epoch's
# time and rounds (rank 0), and writes out/netns_metrics.json. Cleans up its namespaces on exit.
set -euo pipefail
parties=2 rtt_ms=10 samples=6000 build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --parties) parties=$2; shift 2 ;;
    --rtt-ms) rtt_ms=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
bin=$build/tools
for p in veil-train veil-dealer veil-run; do
  [ -x "$bin/$p" ] || { echo "build first: $bin/$p is missing" >&2; exit 1; }
done
n=$parties
endpoints=$((n + 1))  # parties 0..n-1, dealer n
one_way=$(python3 -c "print($rtt_ms / 2)")
work=$(mktemp -d)
cleanup() {
  if [ -f "$work/relay.pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$work/relay.pids"
  fi
  for i in $(seq 0 $n); do ip netns del "veil-e$i" 2>/dev/null || true; done
  ip netns del veil-sw 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- network: one namespace per endpoint, a bridge in a switch namespace ------------------------
ip netns add veil-sw
ip -n veil-sw link add br0 type bridge
ip -n veil-sw link set br0 up
for i in $(seq 0 $n); do
  ip netns add "veil-e$i"
  ip link add "ve$i" type veth peer name "vs$i"
  ip link set "ve$i" netns "veil-e$i"
  ip link set "vs$i" netns veil-sw
  ip -n veil-sw link set "vs$i" master br0
  ip -n veil-sw link set "vs$i" up
  ip -n "veil-e$i" addr add "10.77.0.$((i + 1))/24" dev "ve$i"
  ip -n "veil-e$i" link set "ve$i" up
  ip -n "veil-e$i" link set lo up
done
addr() { echo "10.77.0.$(($1 + 1)):50051"; }

mode=none
if python3 -c "import sys; sys.exit(0 if float('$rtt_ms') > 0 else 1)"; then
  if ip netns exec veil-e0 tc qdisc add dev ve0 root netem delay "${one_way}ms" 2>/dev/null; then
    mode=netem
    for i in $(seq 1 $n); do ip netns exec "veil-e$i" tc qdisc add dev "ve$i" root netem delay "${one_way}ms"; done
  else
    mode=relay
  fi
fi
echo "veil netns demo: $n parties + dealer in $endpoints namespaces, +${rtt_ms} ms round trip ($mode)"

# ---- certificates and per-endpoint peer lists ---------------------------------------------------
"$bin/veil-run" -n "$n" --make-pki "$work/tls" > /dev/null
peers_for() {  # the address list endpoint $1 uses: its own listen address, relays for the others
  local me=$1 list=() j
  for j in $(seq 0 $n); do
    if [ "$mode" = relay ] && [ "$j" != "$me" ]; then
      list+=("127.0.0.1:$((6000 + j))")
      ip netns exec "veil-e$me" python3 scripts/delay_proxy.py "127.0.0.1:$((6000 + j))" \
        "$(addr "$j")" "$one_way" > "$work/relay-$me-$j.log" 2>&1 &
      echo $! >> "$work/relay.pids"
    else
      list+=("$(addr "$j")")
    fi
  done
  echo "${list[@]}"
}
run_endpoint() {  # rank, program, args...
  local rank=$1; shift
  read -r -a list <<<"$(peers_for "$rank")"
  local peers
  peers=$(IFS=,; echo "${list[*]:0:$n}")
  ip netns exec "veil-e$rank" env RANK="$rank" WORLD_SIZE="$n" VEIL_PEERS="$peers" \
    VEIL_DEALER="${list[$n]}" VEIL_TLS_DIR="$work/tls" VEIL_TIMEOUT_MS=120000 \
    VEIL_CONNECT_TIMEOUT_MS=30000 "$@"
}
sleep 0.5
mkdir -p out
run_endpoint "$n" "$bin/veil-dealer" > "$work/dealer.log" 2>&1 & dealer=$!
others=()
for r in $(seq 1 $((n - 1))); do
  run_endpoint "$r" "$bin/veil-train" --samples "$samples" --test-samples 1000 --no-twin \
    --progress-every 0 --threads 1 > "$work/rank$r.log" 2>&1 & others+=($!)
done
run_endpoint 0 "$bin/veil-train" --samples "$samples" --test-samples 1000 --no-twin \
  --progress-every 0 --threads 1 --metrics-json out/netns_metrics.json 2>&1 | sed 's/^/[rank 0] /'
status=0
for pid in "${others[@]}" "$dealer"; do wait "$pid" || status=$?; done
tail -n 1 "$work/dealer.log" | sed 's/^/[dealer] /'
python3 - <<'PY'
import json
m = json.load(open("out/netns_metrics.json"))
print(f"netns result: epoch of {m['samples']} samples in {m['train_seconds']:.1f} s, "
      f"{m['rounds']} rounds, {m['mb_sent_per_party']:.1f} MB sent by party 0, "
      f"test accuracy {100 * m['test_accuracy']:.2f}%")
PY
exit $status
