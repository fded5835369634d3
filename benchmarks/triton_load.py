"""Load test of torchship models served by a real tritonserver (serve-model's repository).

For each model and each number of concurrent clients (default 1, 8, 32), every client
thread sends its share of a bounded number of requests (and stops at a time limit),
each a random batch whose eager PyTorch answer was computed beforehand; the table gives
throughput, p50 and p99 latency, errors (must be 0) and answers that differ from eager
beyond the contract's tolerance (must be 0). Dynamic batching is on for every model
whose contract allows it. Everything binds to 127.0.0.1.

    python benchmarks/triton_load.py --artifacts artifacts                  # the table
    python benchmarks/triton_load.py --artifacts artifacts --kill           # plus: server killed mid-load
    python benchmarks/triton_load.py --artifacts artifacts --json load.json

Exit code 1 when any error or mismatch happened under load (faults excepted: their
errors are expected; a wrong answer there still fails).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from torchship.export.artifact import Artifact
from torchship.export.backends import BACKENDS
from torchship.export.triton.client import connect, infer, same_as
from torchship.export.triton.repository import serving_repository
from torchship.export.triton.server import TritonServer


def make_pool(artifact: Artifact, count: int, max_rows: int, seed: int) -> list[tuple[dict, dict]]:
    """(feed, eager outputs) pairs: random batches of 1..max_rows rows, random scalar values."""
    contract = artifact.contract
    eager = BACKENDS["eager"]().load(artifact)
    generator = torch.Generator().manual_seed(seed)
    pool = []
    for _ in range(count):
        rows = int(torch.randint(1, max_rows + 1, (), generator=generator))
        feed = {}
        for spec in contract["inputs"]:
            if spec["kind"] == "tensor":
                feed[spec["name"]] = torch.randn([rows if isinstance(d, str) else d for d in spec["shape"]],
                                                 generator=generator)
            else:
                feed[spec["name"]] = int(torch.randint(spec["low"], spec["high"] + 1, (), generator=generator))
        pool.append((feed, eager.run(feed)))
    return pool


def load_level(url: str, protocol: str, model: str, contract: dict, pool, clients: int, total: int,
               time_limit: float) -> dict:
    per_client = max(1, total // clients)
    latencies, errors, mismatches, rows = [], [], 0, 0
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def worker(index: int) -> None:
        nonlocal mismatches, rows
        client = connect(protocol, url, timeout=30)
        try:
            for n in range(per_client):
                if time.monotonic() > deadline:
                    break
                feed, expected = pool[(index * per_client + n) % len(pool)]
                start = time.perf_counter()
                try:
                    out = infer(protocol, client, model, contract, feed, timeout=30)
                except Exception as e:  # noqa: BLE001 - counted, shown below
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    continue
                elapsed = time.perf_counter() - start
                ok = same_as(contract, out, expected)
                with lock:
                    latencies.append(elapsed)
                    rows += next(v.shape[0] for v in feed.values() if isinstance(v, torch.Tensor))
                    mismatches += 0 if ok else 1
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 60)
    wall = time.perf_counter() - start
    latencies.sort()
    done = len(latencies)
    return {"model": model, "protocol": protocol, "clients": clients, "requests": done + len(errors),
            "throughput_rps": done / wall if wall else 0.0, "rows_per_s": rows / wall if wall else 0.0,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1000 * latencies[min(done - 1, int(0.99 * done))] if latencies else None,
            "errors": len(errors), "mismatches": mismatches, "first_error": errors[0] if errors else None,
            "hit_time_limit": time.monotonic() > deadline}


def fault_run(server: TritonServer, model: str, contract: dict, pool, clients: int = 4,
              time_limit: float = 90.0) -> dict:
    """Clients send while tritonserver (and its stubs) get SIGKILL, then it restarts on the same ports."""
    phase = {"value": "before"}
    outcomes: dict[str, dict[str, int]] = {}
    lock, stop = threading.Lock(), threading.Event()

    def record(p: str, outcome: str) -> None:
        with lock:
            outcomes.setdefault(p, {}).setdefault(outcome, 0)
            outcomes[p][outcome] += 1

    def count(p: str, outcome: str) -> int:
        with lock:
            return outcomes.get(p, {}).get(outcome, 0)

    def worker(i: int) -> None:
        protocol = ("http", "grpc")[i % 2]
        client = connect(protocol, server.http_url if protocol == "http" else server.grpc_url, timeout=10)
        deadline = time.monotonic() + time_limit
        for n in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            feed, expected = pool[(i * 7 + n) % len(pool)]
            p = phase["value"]
            try:
                out = infer(protocol, client, model, contract, feed, timeout=10)
                outcome = "right" if same_as(contract, out, expected) else "WRONG"
            except Exception as e:  # noqa: BLE001
                outcome = f"{protocol} {type(e).__name__}"
                time.sleep(0.05)
            record(p, outcome)
        client.close()

    def wait(condition, seconds):
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    wait(lambda: count("before", "right") >= 50, 30)
    phase["value"] = "killed"
    killed_at = time.monotonic()
    server.kill()
    wait(lambda: sum(outcomes.get("killed", {}).values()) >= 20, 20)
    phase["value"] = "restarting"
    server.start()
    restart_s = time.monotonic() - killed_at
    phase["value"] = "after"
    wait(lambda: count("after", "right") >= 50, 30)
    stop.set()
    for t in threads:
        t.join(30)
    wrong = sum(o.get("WRONG", 0) for o in outcomes.values())
    return {"model": model, "outcomes": outcomes, "wrong_answers": wrong, "kill_to_ready_s": restart_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--models", nargs="+", default=["twolayernet", "dynamicnet", "convnet"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=160, help="requests per level (split across clients)")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per level at most")
    parser.add_argument("--protocol", choices=["http", "grpc"], default="grpc")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-rows", type=int, default=4, help="rows per request: 1..N")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--kill", action="store_true", help="also: kill the server mid-load and restart it")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    artifacts = {name: Artifact.open(args.artifacts, name) for name in args.models}
    pools = {name: make_pool(a, 64, args.max_rows, seed=i) for i, (name, a) in enumerate(artifacts.items())}
    results, faults = [], []
    with tempfile.TemporaryDirectory(prefix="torchship-load-") as tmp:
        repository = Path(tmp) / "models"
        serving_repository(args.artifacts, args.models, repository, backend=args.backend,
                           max_batch=args.max_batch, instances=args.instances)
        started = time.monotonic()
        with TritonServer(repository, log=Path(tmp) / "tritonserver.log") as server:
            print(f"tritonserver ready in {time.monotonic() - started:.1f}s "
                  f"({', '.join(args.models)}; {args.backend}; max_batch {args.max_batch})", file=sys.stderr)
            url = server.http_url if args.protocol == "http" else server.grpc_url
            for name, a in artifacts.items():
                load_level(url, args.protocol, name, a.contract, pools[name], 1, 5, 30)  # warm-up
                for clients in args.clients:
                    r = load_level(url, args.protocol, name, a.contract, pools[name], clients, args.requests,
                                   args.time_limit)
                    results.append(r)
                    print(f"  {name} x{clients}: {r['throughput_rps']:.0f} req/s", file=sys.stderr)
            if args.kill:
                name = args.models[0]
                faults.append(fault_run(server, name, artifacts[name].contract, pools[name]))

    print("| model | protocol | clients | requests | throughput (req/s) | rows/s | p50 (ms) | p99 (ms) | errors | mismatches |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['protocol']} | {r['clients']} | {r['requests']} | {r['throughput_rps']:.0f} | "
              f"{r['rows_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['mismatches']} |")
    for r in results:
        if r["first_error"]:
            print(f"first error ({r['model']} x{r['clients']}): {r['first_error']}")
    for f in faults:
        print(f"\nfault: {f['model']}: tritonserver and its stubs SIGKILLed mid-load, restarted on the same ports "
              f"(kill to ready {f['kill_to_ready_s']:.1f}s); outcomes by phase:")
        for p, counts in f["outcomes"].items():
            print(f"  {p}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"  wrong answers: {f['wrong_answers']}")
    if args.json:
        args.json.write_text(json.dumps({"load": results, "faults": faults}, indent=2) + "\n")
    bad = any(r["errors"] or r["mismatches"] for r in results) or any(f["wrong_answers"] for f in faults)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
