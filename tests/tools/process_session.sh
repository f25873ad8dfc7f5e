#!/usr/bin/env bash
# Parties as processes over gRPC with mutual TLS on loopback (CTest driver; every process runs
# under timeout(1), so nothing can hang the suite).
#
#   process_session.sh BUILD_DIR bitexact N        in-process run == N processes, bit for bit
#   process_session.sh BUILD_DIR kill RANK POINT   kill -9 of RANK at POINT: the others exit
#                                                  non-zero naming it, well within the timeout
#   process_session.sh BUILD_DIR mismatch          different programs are refused with the diff
set -u
build=$1
mode=$2
bin=$build/tools
if [ ! -x "$bin/veil-train" ] || [ ! -x "$bin/veil-run" ] || [ ! -x "$bin/veil-dealer" ]; then
  echo "SKIPPED: veil-train, veil-run or veil-dealer was not built"
  exit 0
fi
if [ "${VEIL_GRPC_ENABLED:-ON}" = OFF ]; then
  echo "SKIPPED: veil was built without the gRPC transport (VEIL_WITH_GRPC=OFF)"
  exit 0
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${VEIL_FASHION_MNIST_DIR:-}" ]; then
  echo "SKIPPED: Fashion-MNIST is not installed"
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAILED: $*"; for f in "$dir"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done; exit 1; }
small=(--samples 256 --test-samples 64 --batch-size 64 --no-twin --threads 1)

free_ports() {  # N free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

case "$mode" in
bitexact)
  n=$3
  args=("${small[@]}" --insecure --insecure-seed 11 --progress-every 1)
  timeout 120 "$bin/veil-train" --parties "$n" "${args[@]}" --metrics-json "$dir/threads.json" \
    > "$dir/threads.log" 2>&1 || fail "in-process run"
  timeout 120 "$bin/veil-run" -n "$n" -- "$bin/veil-train" "${args[@]}" \
    --metrics-json "$dir/procs.json" > "$dir/procs.log" 2>&1 || fail "veil-run"
  python3 - "$dir/threads.json" "$dir/procs.json" <<'PY' || fail "results differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["transport"] == "in-process" and b["transport"] == "grpc", (a["transport"], b["transport"])
for k in ("losses", "predictions_digest", "test_accuracy"):
    assert a[k] == b[k], f"{k}: {a[k]} vs {b[k]}"
print(f"bit-identical: {len(a['losses'])} revealed losses, predictions {a['predictions_digest']}, "
      f"accuracy {a['test_accuracy']}, {a['rounds']} rounds")
PY
  echo "PASSED: $n parties as processes match the in-process run bit for bit"
  ;;
kill|mismatch)
  read -r p0 p1 pd <<<"$(free_ports 3)"
  "$bin/veil-run" -n 2 --make-pki "$dir/tls" > /dev/null 2>&1 || fail "make-pki"
  export WORLD_SIZE=2 VEIL_PEERS=127.0.0.1:$p0,127.0.0.1:$p1 VEIL_DEALER=127.0.0.1:$pd \
         VEIL_TLS_DIR=$dir/tls VEIL_TIMEOUT_MS=3000 VEIL_CONNECT_TIMEOUT_MS=4000
  extra0=() extra1=() kill_env=()
  if [ "$mode" = kill ]; then
    victim=$3 point=$4
    kill_env=(VEIL_TEST_KILL_AT="$victim:$point")
  else
    extra1=(--lr 0.2)
  fi
  start=$(date +%s.%N)
  RANK=2 timeout 60 "$bin/veil-dealer" > "$dir/dealer.log" 2>&1 & d=$!
  env "${kill_env[@]}" RANK=0 timeout 60 "$bin/veil-train" "${small[@]}" --progress-every 0 "${extra0[@]}" > "$dir/rank0.log" 2>&1 & r0=$!
  env "${kill_env[@]}" RANK=1 timeout 60 "$bin/veil-train" "${small[@]}" --progress-every 0 "${extra1[@]}" > "$dir/rank1.log" 2>&1 & r1=$!
  wait $r0; c0=$?
  wait $r1; c1=$?
  wait $d; cd=$?
  elapsed=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  echo "exit codes: rank0 $c0, rank1 $c1, dealer $cd; ${elapsed} s"
  python3 -c "import sys; sys.exit(0 if $elapsed < 30 else 1)" || fail "took ${elapsed} s"
  for c in $c0 $c1 $cd; do [ "$c" = 124 ] && fail "a process hung until timeout(1) stopped it"; done
  if [ "$mode" = kill ]; then
    survivor=$((1 - victim))
    cv=$([ "$victim" = 0 ] && echo $c0 || echo $c1)
    cs=$([ "$survivor" = 0 ] && echo $c0 || echo $c1)
    [ "$cv" = 137 ] || fail "the victim was not killed at '$point' (exit $cv)"
    [ "$cs" != 0 ] || fail "the surviving party exited 0"
    grep -q "party $victim" "$dir/rank$survivor.log" || fail "the survivor's error does not name party $victim"
    echo "survivor's message: $(grep -m1 'error' "$dir/rank$survivor.log")"
    echo "PASSED: kill -9 of party $victim at '$point'"
  else
    [ "$c0" != 0 ] && [ "$c1" != 0 ] || fail "a mismatched session was not refused"
    grep -q "fingerprints differ" "$dir/rank0.log" && grep -q "program" "$dir/rank0.log" \
      || fail "the refusal does not show the differing field"
    echo "refusal: $(grep -m1 'fingerprints differ' "$dir/rank0.log")"
    echo "PASSED: a setup mismatch is refused with the diff"
  fi
  ;;
*)
  echo "unknown mode $mode"; exit 2 ;;
esac
