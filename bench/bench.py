"""The side-by-side benchmark (bench/README.md): the same scenarios, driven
by the same load generator (tools/riskwatch-load), against riskwatch's hub
and the reference hubs in bench/hubs, plus the bare-TCP floor. Every
scenario gets a freshly started hub. Writes the raw results (JSON), a
table with ratios to riskwatch (Markdown) and a plot (SVG).

Run through bench/run.sh, which installs what this needs and builds the
release binaries first.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOAD = ROOT / "target" / "release" / "riskwatch-load"
VENV_BIN = BENCH / ".venv" / "bin"

# Each reference hub: how to start it on PORT, and what kind of hub it is
# to the load tool (--hub-kind) and at which path (--url).
HUBS = {
    "riskwatch": None,  # started by the load tool itself
    "node-ws": {
        "cmd": ["node", str(BENCH / "hubs" / "ws-hub.mjs"), "{port}"],
        "kind": "ws",
        "path": "/",
        "label": "Node.js ws",
    },
    "socketio": {
        "cmd": ["node", str(BENCH / "hubs" / "socketio-hub.mjs"), "{port}"],
        "kind": "socketio",
        "path": "/socket.io/?EIO=4&transport=websocket",
        "label": "Socket.IO (Node.js)",
    },
    "python-websockets": {
        "cmd": [str(VENV_BIN / "python"), str(BENCH / "hubs" / "websockets_hub.py"), "{port}"],
        "kind": "ws",
        "path": "/",
        "label": "Python websockets",
    },
    "fastapi": {
        "cmd": [str(VENV_BIN / "uvicorn"), "--app-dir", str(BENCH / "hubs"), "fastapi_hub:app",
                "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
        "kind": "ws",
        "path": "/ws",
        "label": "FastAPI on uvicorn",
    },
}
LABELS = {"riskwatch": "riskwatch", **{k: v["label"] for k, v in HUBS.items() if v}}


def scenarios(quick):
    """(name, load-tool mode and arguments, the tool's --timeout)."""
    big = 2_000 if quick else 10_000
    secs = "10" if quick else "30"
    return [
        (f"connections-{big // 1000}k",
         ["connections", "--target", str(big), "--channels", "1", "--hold", "10"], 300),
        ("fanout-1k",
         ["fanout", "--subscribers", "1000", "--duration", secs, "--drain", "10"], 300),
        (f"fanout-{big // 1000}k",
         ["fanout", "--subscribers", str(big), "--duration", secs, "--drain", "10"], 400),
        ("throughput-1k",
         ["throughput", "--subscribers", "1000", "--messages", "2000" if quick else "5000",
          "--batch", "100", "--window", "512", "--drain", "120"], 420),
    ]


def floors(quick):
    big = 2_000 if quick else 9_900
    return [("floor-1k", ["floor", "--connections", "1000", "--rounds", "20"]),
            (f"floor-{big // 1000}k", ["floor", "--connections", str(big), "--rounds", "20"])]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, within=20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited during start-up ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the hub did not listen on {port} within {within} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_tool(args, timeout, log):
    """One load-tool run with --json: its JSON document, or an error."""
    cmd = [str(LOAD), "--json", "--timeout", str(timeout)] + args
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                           timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout + 120} s"}
    # 0: targets met; 3: completed, a target (riskwatch's own) missed.
    if p.returncode not in (0, 3) or not p.stdout.strip():
        return {"error": f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_hub(name, mode_args, timeout, log):
    spec = HUBS[name]
    if spec is None:
        return run_tool(mode_args, timeout, log)
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in spec["cmd"]]
    log.write(f"\n# {name}: {' '.join(cmd)}\n")
    log.flush()
    # The hub's own output (the Python hubs log a traceback for every
    # client that leaves without a close frame, as the tool's do at the
    # end): only its last lines go to the log.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env={**os.environ, "NODE_ENV": "production"})
        try:
            wait_listening(port, proc)
            url = f"ws://127.0.0.1:{port}{spec['path']}"
            return run_tool(["--url", url, "--hub-kind", spec["kind"], "--hub-pid", str(proc.pid)]
                            + mode_args, timeout, log)
        except RuntimeError as e:
            return {"error": str(e)}
        finally:
            stop(proc)
            out.seek(0)
            tail = out.read().splitlines()[-20:]
            if tail:
                log.write(f"# {name}'s last lines:\n" + "\n".join(tail) + "\n")


def hub_cpu_us(result, count):
    cpu = (result.get("cpu") or {}).get("hub")
    if not cpu or not count:
        return None
    return (cpu["user_s"] + cpu["system_s"]) / count * 1e6


def metrics(scenario, doc):
    """The figures the table and plot show, from one run's JSON."""
    if "error" in doc:
        return {"error": doc["error"]}
    r = doc["result"]
    if scenario.startswith("connections"):
        return {"held": r["held"], "target": r["target"],
                "rss_per_conn_kib": (r.get("hub_rss_per_conn_bytes") or 0) / 1024,
                "hub_rss_after_mib": ((r.get("hub_rss_after") or {}).get("vm_rss_kib") or 0) / 1024}
    if scenario.startswith("fanout"):
        lat = r.get("latency") or {}
        return {"subscribed": r["subscribed"], "subscribers": r["subscribers"],
                "delivered": r["delivered"], "expected": r["expected"], "missed": r["missed"],
                "out_of_sequence": r["out_of_sequence"],
                "p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"), "max_ms": lat.get("max_ms"),
                "hub_cpu_us_per_delivery": hub_cpu_us(r, r["delivered"])}
    if scenario.startswith("throughput"):
        return {"subscribed": r["subscribed"], "delivered": r["delivered"], "expected": r["expected"],
                "complete_subscribers": r["complete_subscribers"],
                "deliveries_per_s": r["delivery_rate"],
                "hub_cpu_us_per_delivery": hub_cpu_us(r, r["delivered"])}
    if scenario.startswith("floor"):
        lat = r.get("latency") or {}
        return {"connections": r["connections"], "p50_ms": lat.get("p50_ms"),
                "p99_ms": lat.get("p99_ms"), "max_ms": lat.get("max_ms")}
    return {}


def count(scen):
    """'fanout-10k' -> '10,000'."""
    return f"{int(scen.rsplit('-', 1)[1].rstrip('k')) * 1000:,}"


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def ratio(v, base):
    """`v` as a multiple of riskwatch's `base`."""
    if v is None or not base:
        return "–"
    x = v / base
    return f"{x:.1f}× riskwatch's" if x >= 1 else f"{x:.2g}× riskwatch's"


def table(results, hubs, scen_names, floor_results):
    """Markdown: one row per hub, ratios to riskwatch beside the figures."""
    conn, f1, fbig, thr = scen_names
    base = results.get("riskwatch", {})
    lines = [
        f"| hub | idle connections held | hub RSS per idle connection | fan-out to {count(f1)}: "
        f"p50 / p99 / max | fan-out to {count(fbig)}: p50 / p99 / max | delivered (fan-out to {count(fbig)}) | "
        f"deliveries/s at saturation ({count(thr)} subscribers) | hub CPU per delivery (at saturation) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h in hubs:
        m = results.get(h, {})
        c, a, b, t = (m.get(s, {}) for s in scen_names)
        bc, ba, bb, bt = (base.get(s, {}) for s in scen_names)

        def lat(x, bx):
            if "error" in x:
                return f"failed: {x['error']}"
            return (f"{fmt(x.get('p50_ms'))} / {fmt(x.get('p99_ms'))} / {fmt(x.get('max_ms'))} ms"
                    + ("" if h == "riskwatch" else f" (p99 {ratio(x.get('p99_ms'), bx.get('p99_ms'))})"))

        held = "failed: " + c["error"] if "error" in c else f"{fmt(c.get('held'))} of {fmt(c.get('target'))}"
        rss = "–" if "error" in c else (
            f"{fmt(c.get('rss_per_conn_kib'))} KiB"
            + ("" if h == "riskwatch" else f" ({ratio(c.get('rss_per_conn_kib'), bc.get('rss_per_conn_kib'))})"))
        deliv = "–" if "error" in b else f"{fmt(b.get('delivered'))} of {fmt(b.get('expected'))}"
        rate = f"failed: {t['error']}" if "error" in t else (
            f"{fmt(t.get('deliveries_per_s'), 0)}"
            + ("" if h == "riskwatch" else
               f" ({ratio(t.get('deliveries_per_s'), bt.get('deliveries_per_s'))})")
            + ("" if t.get("delivered") == t.get("expected") else
               f"; {fmt(t.get('delivered'))} of {fmt(t.get('expected'))} delivered"))
        cpu = "–" if "error" in t else (
            f"{fmt(t.get('hub_cpu_us_per_delivery'), 2)} µs"
            + ("" if h == "riskwatch" else
               f" ({ratio(t.get('hub_cpu_us_per_delivery'), bt.get('hub_cpu_us_per_delivery'))})"))
        lines.append(f"| {LABELS[h]} | {held} | {rss} | {lat(a, ba)} | {lat(b, bb)} | {deliv} | {rate} | {cpu} |")
    for name, m in floor_results.items():
        if "error" in m:
            lines.append(f"| bare TCP, no hub ({name}) | | | failed: {m['error']} | | | | |")
            continue
        cell = f"{fmt(m.get('p50_ms'))} / {fmt(m.get('p99_ms'))} / {fmt(m.get('max_ms'))} ms"
        small = m.get("connections", 0) <= 1000
        lines.append(f"| bare TCP floor, no hub ({fmt(m.get('connections'))} connections) | – | – | "
                     f"{cell if small else '–'} | {'–' if small else cell} | – | – | – |")
    return "\n".join(lines)


def plot(results, hubs, scen_names, floor_results, path):
    import matplotlib
    matplotlib.use("agg")
    matplotlib.rcParams["svg.hashsalt"] = "riskwatch-bench"
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    conn, f1, fbig, thr = scen_names
    names = [LABELS[h] for h in hubs]

    colors = ["#1f6feb" if h == "riskwatch" else "#8b949e" for h in hubs]

    def values(scen, key):
        return [results.get(h, {}).get(scen, {}).get(key) or 0 for h in hubs]

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    panels = [
        (axes[0][0], values(f1, "p99_ms"), f"fan-out p99 latency, {count(f1)} subscribers (ms, lower is better)",
         floor_results.get("floor-1k", {}).get("p99_ms")),
        (axes[0][1], values(fbig, "p99_ms"), f"fan-out p99 latency, {count(fbig)} subscribers (ms, lower is better)",
         next((m.get("p99_ms") for n, m in floor_results.items() if n != "floor-1k"), None)),
        (axes[1][0], [v / 1000 for v in values(thr, "deliveries_per_s")],
         f"thousand deliveries per second at saturation, {count(thr)} subscribers (higher is better)", None),
        (axes[1][1], values(conn, "rss_per_conn_kib"),
         f"hub RSS per idle connection, {count(conn)} held (KiB, lower is better)", None),
    ]
    for ax, vals, title, floor in panels:
        bars = ax.barh(names, vals, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for b, v in zip(bars, vals):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:,.1f}" if v < 100 else f" {v:,.0f}",
                    va="center", fontsize=8)
        if floor:
            ax.axvline(floor, color="#d73a49", linestyle="--", linewidth=1)
            ax.text(floor, -0.45, f" bare TCP floor {floor:.1f}", color="#d73a49", fontsize=8, va="bottom")
        ax.margins(x=0.2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    fig.suptitle("riskwatch hub vs reference hubs, same load tool, same machine (bench/run.sh)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="2,000 instead of 10,000 subscribers, 10 s instead of 30 s (a smoke run)")
    ap.add_argument("--hubs", default=",".join(HUBS), help=f"comma-separated, of {', '.join(HUBS)}")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="where the results go")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench" / "side-by-side.svg")
    a = ap.parse_args()
    hubs = [h.strip() for h in a.hubs.split(",") if h.strip()]
    unknown = [h for h in hubs if h not in HUBS]
    if unknown:
        sys.exit(f"bench: unknown hub(s) {unknown}; known: {', '.join(HUBS)}")
    if "riskwatch" not in hubs:
        hubs.insert(0, "riskwatch")

    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    log_path = a.out / f"side-by-side-{stamp}.log"
    scen = scenarios(a.quick)
    scen_names = [s[0] for s in scen]
    raw, results = {}, {}
    with open(log_path, "w") as log:
        for h in hubs:
            for name, args, timeout in scen:
                print(f"bench: {h} {name} ...", flush=True)
                doc = run_hub(h, args, timeout, log)
                raw.setdefault(h, {})[name] = doc
                results.setdefault(h, {})[name] = m = metrics(name, doc)
                print(f"bench: {h} {name}: {json.dumps(m)}", flush=True)
        floor_results = {}
        for name, args in floors(a.quick):
            print(f"bench: {name} ...", flush=True)
            doc = run_tool(args, 300, log)
            raw.setdefault("floor", {})[name] = doc
            floor_results[name] = m = metrics(name, doc)
            print(f"bench: {name}: {json.dumps(m)}", flush=True)

    machine = next((d.get("machine") for r in raw.values() for d in r.values() if "machine" in d), None)
    versions = {
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        "npm": json.loads((BENCH / "package.json").read_text())["dependencies"],
        "pip": [l.strip() for l in (BENCH / "requirements.txt").read_text().splitlines()
                if l.strip() and not l.startswith("#")],
        "riskwatch": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip(),
    }
    md = table(results, hubs, scen_names, floor_results)
    (a.out / f"side-by-side-{stamp}.json").write_text(json.dumps(
        {"when": stamp, "quick": a.quick, "machine": machine, "versions": versions,
         "results": results, "floor": floor_results, "raw": raw}, indent=1))
    (a.out / f"side-by-side-{stamp}.md").write_text(md + "\n")
    plot(results, hubs, scen_names, floor_results, a.plot)
    print()
    print(md)
    print(f"\nbench: results in {a.out}/side-by-side-{stamp}.{{json,md,log}}, plot {a.plot}")
    failed = [f"{h} {s}" for h, r in results.items() for s, m in r.items() if "error" in m]
    lost = [f"{h} {s}" for h, r in results.items() for s, m in r.items()
            if m.get("missed") or m.get("out_of_sequence")]
    if failed:
        print(f"bench: runs that failed: {', '.join(failed)}")
    if lost:
        print(f"bench: runs that lost or reordered deliveries: {', '.join(lost)}")
    return 1 if "riskwatch" in {f.split()[0] for f in failed + lost} else 0


if __name__ == "__main__":
    sys.exit(main())
