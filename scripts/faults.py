#!/usr/bin/env python3
"""The fault suite's long scenarios (docs/RELIABILITY.md, "Fault suite"),
run by scripts/faults.sh as root.

The hub runs in a private network namespace the script makes itself,
reached from the host namespace over a veth pair; nothing leaves the
machine. Faults come from the kernel's own tools: `kill -9`, nftables rules
that drop the veth's packets (a blackhole: no RST, no FIN, the link just
goes silent) and `ip link set down/up` (flapping). tc netem is not used:
this machine's kernel has no sch_netem.

Three real `riskwatch watch --json` clients, one per protocol (native with
resume, the trading seed endpoint, the HR seed endpoint), each with its own
user token, read one channel family each; a publisher inside the namespace
(on its loopback, so the fault cuts only the desks) publishes a critical
alert every PUBLISH_EVERY seconds and records which the hub accepted. After
the fault and a drain, every client's output is counted against what was
accepted: delivered, duplicated, lost; time to notice the fault (the
client's first non-live state after it began; for a stopped desk, after it
was continued), time to recover (its first "connected" after it ended).

Scenarios: kill9 (the hub killed, restarted 2 s later), stall (a 60 s
blackhole), flap (the link down 2 s, up 2 s, for a minute), sigstop (the
desks stopped for --stop-seconds, 5 minutes by default, then continued),
throttle (what the hub sends the desks limited to 32 kbit/s for 60 s, below
what they need, by the kernel's token bucket, tc tbf),
diskfull (each desk stores into an `--inbox` on a small tmpfs, which is
filled for 30 s: the desk must say so, keep printing, and store everything
once there is room; every inbox is read afterwards), redis (two hubs share
channels through a Redis with an append-only file; the trading desk is on
the second hub, the publisher alternates between them; Redis is killed
with -9 and restarted 2 s later).

Exit status: 0 when every scenario met the goals (0 lost, 0 duplicated,
every client back; where the fault cuts the link — kill9, stall, sigstop —
detection within DETECT_GOAL s), 1 otherwise, 2 on a usage or environment
error. Where the link still carries the stream (flap, throttle, diskfull,
redis) a desk need not notice anything; if it reconnects anyway (the hub
shedding it as too slow, or its dead-link deadline passing while TCP backs
off), that is its own judgement, reported with its reason, and it must
still lose nothing and be back. Every wait is bounded.
"""

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import signal
import subprocess
import sys
import tempfile
import threading
import time

PUBLISH_EVERY = 0.2
DETECT_GOAL = 15.0
# The scenarios whose fault cuts the link, so that a desk must notice it.
CUTS_LINK = {"kill9", "stall", "sigstop"}
SECRET = secrets.token_hex(16)
PORT = 18790
REDIS_PORT = 16379
# Below what the desks need (about 2.5 KB/s each): the backlog grows for
# the whole fault and drains after.
THROTTLE_RATE = "32kbit"

# name: (path, extra watch args, channel published to, token channels)
CLIENTS = {
    "native": ("/api/v1/stream", ["--style", "native", "--subscribe", "sessions:F1"],
               "sessions:F1", ["sessions:F1"]),
    "trading": ("/ws", ["--style", "trading", "--subscribe", "sessions:F2"],
                "sessions:F2", ["sessions:F2"]),
    "hr": ("/api/v1/ws/alerts", ["--style", "hr"], "department:F3", ["department:F3"]),
}


def log(msg):
    print(f"faults: {msg}", flush=True)


def run(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


class Net:
    """A private namespace with the hub's end of a veth pair."""

    made = 0

    def __init__(self):
        # Names of its own per scenario: the kernel tears a namespace down
        # in the background, and the last one's may still be going.
        Net.made += 1
        n = (os.getpid() * 8 + Net.made) % 200 + 20
        self.ns = f"rwf{os.getpid()}x{Net.made}"
        self.host_if, self.ns_if = f"rwfh{n}", f"rwfn{n}"
        self.host_ip, self.hub_ip = f"10.201.{n}.1", f"10.201.{n}.2"

    def up(self):
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
            "netns", self.ns)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "addr", "add", f"{self.hub_ip}/30", "dev", self.ns_if)
        self.exec("ip", "link", "set", self.ns_if, "up")
        self.exec("ip", "link", "set", "lo", "up")

    def exec(self, *cmd, check=True):
        return run("ip", "netns", "exec", self.ns, *cmd, check=check)

    def blackhole(self, on):
        """Drops every packet crossing the veth inside the namespace (the
        namespace's own loopback, where the publisher talks, is untouched)."""
        if on:
            self.exec("nft", "add", "table", "inet", "rwfault")
            for hook, side in (("input", "iifname"), ("output", "oifname")):
                self.exec("nft", "add", "chain", "inet", "rwfault", hook,
                          f"{{ type filter hook {hook} priority 0 ; policy accept ; }}")
                self.exec("nft", "add", "rule", "inet", "rwfault", hook, side, self.ns_if, "drop")
        else:
            self.exec("nft", "delete", "table", "inet", "rwfault", check=False)

    def throttle(self, on):
        """Throttles what the hub sends to the desks (the veth's egress in
        the namespace) with a token bucket: THROTTLE_RATE, queueing up to a
        second, dropping beyond (TCP then backs off and retransmits)."""
        if on:
            self.exec("tc", "qdisc", "add", "dev", self.ns_if, "root", "tbf", "rate", THROTTLE_RATE,
                      "burst", "4kb", "latency", "1s")
        else:
            self.exec("tc", "qdisc", "del", "dev", self.ns_if, "root", check=False)

    def link(self, up):
        run("ip", "link", "set", self.host_if, "up" if up else "down")

    def down(self):
        run("ip", "link", "del", self.host_if, check=False)
        run("ip", "netns", "del", self.ns, check=False)


class Lines:
    """Reads a process's stdout and stderr on threads, stamping each line
    with the monotonic time it arrived."""

    def __init__(self, proc):
        self.out, self.err = [], []
        self.threads = [
            threading.Thread(target=self._read, args=(proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.err), daemon=True),
        ]
        for t in self.threads:
            t.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    def join(self, within):
        for t in self.threads:
            t.join(within)


def ranges(ns):
    """[1, 2, 3, 7] -> ["1-3", "7"]: where a lost stretch begins and ends."""
    out, start, prev = [], None, None
    for n in ns + [None]:
        if start is not None and (n is None or n != prev + 1):
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return out


class Run:
    def __init__(self, riskwatch, scenario, work, stop_seconds):
        self.bin, self.scenario, self.work = riskwatch, scenario, work
        self.stop_seconds = stop_seconds
        self.net = Net()
        self.hubs = {}
        self.redis = None
        self.clients = {}
        # What each desk showed (count), for the inbox check.
        self.shown = {}
        self.publisher = None
        # diskfull: the desks' inboxes, on a tmpfs of their own.
        self.inbox_dir = os.path.join(work, "inboxes") if scenario == "diskfull" else None

    def token(self, user, channels, publish=False):
        cmd = [self.bin, "token", "--secret", SECRET, "--user", user, "--ttl", "7200"]
        for c in channels:
            cmd += ["--channel", c]
        if publish:
            cmd.append("--publish")
        return run(*cmd).stdout.strip()

    def ports(self):
        """The hubs' ports: two sharing Redis in the redis scenario."""
        return [PORT, PORT + 1] if self.scenario == "redis" else [PORT]

    def port_of(self, client):
        return self.ports()[-1] if client == "trading" else PORT

    def listening(self, port, proc, what):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = self.net.exec("python3", "-c",
                              f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)",
                              check=False)
            if r.returncode == 0:
                return
            if proc.poll() is not None:
                raise SystemExit(f"faults: {what} exited: see {self.work}")
            time.sleep(0.1)
        raise SystemExit(f"faults: {what} did not listen within 15 s")

    def start_redis(self):
        data = os.path.join(self.work, "redis")
        os.makedirs(data, exist_ok=True)
        self.redis = subprocess.Popen(
            ["ip", "netns", "exec", self.net.ns, "redis-server", "--port", str(REDIS_PORT),
             "--bind", "127.0.0.1", "--dir", data, "--appendonly", "yes",
             "--appendfsync", "always", "--save", ""],
            stdout=open(os.path.join(self.work, "redis.log"), "a"), stderr=subprocess.STDOUT)
        self.listening(REDIS_PORT, self.redis, "redis-server")

    def start_hub(self, port=PORT):
        cmd = ["ip", "netns", "exec", self.net.ns, self.bin, "serve",
               "--listen", f"0.0.0.0:{port}", "--jwt-secret", SECRET]
        if self.redis is not None:
            cmd += ["--redis", f"redis://127.0.0.1:{REDIS_PORT}"]
        else:
            cmd += ["--data-dir", os.path.join(self.work, "hub-data")]
        self.hubs[port] = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.work, f"hub-{port}.log"), "a"))
        self.listening(port, self.hubs[port], f"the hub on {port}")

    def start_clients(self):
        for name, (path, args, _, grants) in CLIENTS.items():
            env = dict(os.environ, RISKWATCH_TOKEN=self.token(f"desk-{name}", grants),
                       NO_COLOR="1", RUST_LOG="warn")
            url = f"ws://{self.net.hub_ip}:{self.port_of(name)}{path}"
            inbox = []
            if self.inbox_dir:
                inbox = ["--inbox", os.path.join(self.inbox_dir, f"{name}.db")]
            proc = subprocess.Popen([self.bin, "watch", "--json", "--label", name, *args, *inbox,
                                     url],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            self.clients[name] = (proc, Lines(proc))

    def start_publisher(self):
        """Publishes from inside the namespace, over its loopback: one
        critical alert per channel every PUBLISH_EVERY s; prints each
        accepted one as `channel n`. Retries a refused or failed publish
        (the hub down) with the same id, so it is stored once."""
        token = self.token("publisher", ["*"], publish=True)
        channels = [c for (_, _, c, _) in CLIENTS.values()]
        code = f"""
import json, sys, time, urllib.request
token, channels, every, ports = {token!r}, {channels!r}, {PUBLISH_EVERY!r}, {self.ports()!r}
n = 0
while True:
    n += 1
    port = ports[n % len(ports)]
    for ch in channels:
        body = json.dumps({{"channel": ch, "type": "risk_alert", "severity": "critical",
            "id": f"{{ch}}-{{n}}", "data": {{"sessionId": ch, "n": n, "alertLevel": "critical",
            "alertType": "loss_limit", "message": "fault suite", "currentValue": 91, "threshold": 90}}}})
        for attempt in range(600):
            req = urllib.request.Request(f"http://127.0.0.1:{{port}}/api/v1/publish", body.encode(),
                {{"Content-Type": "application/json", "Authorization": "Bearer " + token}})
            try:
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        print(ch, n, flush=True)
                        break
            except Exception:
                pass
            time.sleep(0.1)
    time.sleep(every)
"""
        self.publisher = subprocess.Popen(
            ["ip", "netns", "exec", self.net.ns, "python3", "-c", code],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.publisher_lines = Lines(self.publisher)

    def stop(self, proc, sig=signal.SIGTERM, within=10):
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    @staticmethod
    def held(apply, undo, seconds):
        """Applies a fault, holds it `seconds`, undoes it; the fault counts
        from once it is in place. Returns (began, ended) monotonic times."""
        apply()
        began = time.monotonic()
        time.sleep(seconds)
        undo()
        return began, time.monotonic()

    def restarted(self, proc, start):
        """Kills `proc` with -9 and, 2 s later, starts it again with
        `start`. Returns (began, ended)."""
        began = time.monotonic()
        proc.kill()
        proc.wait(5)
        time.sleep(2)
        start()
        return began, time.monotonic()

    def fault(self):
        """Runs the scenario's fault; returns (began, ended) monotonic times."""
        s = self.scenario
        if s == "kill9":
            return self.restarted(self.hubs[PORT], self.start_hub)
        if s == "redis":
            # Under both hubs at once; what it acknowledged is in its
            # append-only file (fsync always).
            return self.restarted(self.redis, self.start_redis)
        if s == "stall":
            # No packet crosses from when the rules are in place.
            return self.held(lambda: self.net.blackhole(True), lambda: self.net.blackhole(False), 60)
        if s == "sigstop":
            # The desks themselves stop (a laptop lid, a debugger, a swapped
            # out process): the hub sees pings unanswered and, after two
            # heartbeats, drops them; when they continue they must notice
            # and get back everything.
            procs = [p for p, _ in self.clients.values()]
            return self.held(lambda: [p.send_signal(signal.SIGSTOP) for p in procs],
                             lambda: [p.send_signal(signal.SIGCONT) for p in procs],
                             self.stop_seconds)
        if s == "diskfull":
            # Fill the inboxes' filesystem to the last block, hold, free.
            filler = os.path.join(self.inbox_dir, "filler")
            return self.held(lambda: run("dd", "if=/dev/zero", f"of={filler}", "bs=64k", check=False),
                             lambda: os.unlink(filler), 30)
        if s == "throttle":
            return self.held(lambda: self.net.throttle(True), lambda: self.net.throttle(False), 60)
        if s == "flap":
            began = time.monotonic()
            # 60 s: 2 s down, 2 s up. A desk need not notice (TCP carries
            # the stream over the gaps); it must lose and repeat nothing.
            for _ in range(15):
                self.net.link(False)
                time.sleep(2)
                self.net.link(True)
                time.sleep(2)
            return began, time.monotonic()
        raise SystemExit(f"faults: unknown scenario {s}")

    def count(self, began, ended):
        accepted, accepted_at = {}, {}
        for t, line in self.publisher_lines.out:
            ch, n = line.split()
            accepted.setdefault(ch, set()).add(int(n))
            accepted_at[(ch, int(n))] = t
        rows = []
        for name, (_, _, channel, _) in CLIENTS.items():
            _, lines = self.clients[name]
            got, delays = [], []
            for t, line in lines.out:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                # The publisher names each desk's channel in `sessionId`.
                if isinstance(ev.get("data"), dict) and ev["data"].get("sessionId") == channel:
                    n = ev["data"].get("n")
                    got.append(n)
                    if (channel, n) in accepted_at:
                        delays.append(t - accepted_at[(channel, n)])
            sent = accepted.get(channel, set())
            seen = set(got)
            self.shown[name] = seen
            states = [(t, l) for t, l in lines.err if l.startswith("riskwatch: ")]
            # A stopped desk can notice nothing until it runs again.
            since = ended if self.scenario == "sigstop" else began
            noticed = next((t for t, l in states if t >= since and
                            ("reconnecting" in l or "polling" in l or "stopped" in l)), None)
            # Back: connected after it noticed the fault (a desk can be back
            # a moment before this script's own probe finds the restarted
            # hub listening, so not only after `ended`).
            back = next((t for t, l in states if t >= max(noticed or ended, since)
                         and l.startswith("riskwatch: connected")), None)
            live_through = noticed is None and self.scenario != "kill9"
            rows.append({
                "client": name,
                "sent": len(sent),
                "delivered": len(seen & sent),
                "duplicated": len(got) - len(seen),
                "lost": len(sent - seen),
                "detect_s": None if noticed is None else round(noticed - since, 2),
                "recover_s": None if back is None else round(max(back - ended, 0.0), 2),
                "back": back is not None or live_through,
                # From the hub's answer to the publisher to the desk's line.
                "max_delay_s": round(max(delays), 2) if delays else None,
                "gaps": sum(1 for _, l in lines.err if "history gap" in l),
                "lost_ranges": ranges(sorted(sent - seen)),
                "states": [(round(t - began, 2), l) for t, l in states],
            })
        return rows

    def inbox_counts(self, rows):
        """diskfull: what each desk's inbox holds of its channel, read
        after the desks stopped (they commit what is queued on the way
        out); and whether the desk said it could not store."""
        for r in rows:
            name = r["client"]
            channel = CLIENTS[name][2]
            db = sqlite3.connect(os.path.join(self.inbox_dir, f"{name}.db"))
            stored = set()
            for (payload,) in db.execute("SELECT payload FROM alerts"):
                try:
                    m = json.loads(payload)
                except json.JSONDecodeError:
                    continue
                d = m.get("data") if isinstance(m.get("data"), dict) else m
                if d.get("sessionId") == channel:
                    stored.add(d.get("n"))
            db.close()
            _, lines = self.clients[name]
            shown = self.shown[name]
            r["inbox_stored"] = len(stored)
            r["inbox_missing"] = len(shown - stored)
            r["inbox_missing_ranges"] = ranges(sorted(shown - stored))
            r["inbox_said_full"] = any("cannot store" in l for _, l in lines.err)
            r["inbox_said_again"] = any("storing again" in l for _, l in lines.err)
            r["inbox_lines"] = [l for _, l in lines.err if "inbox" in l][:4]

    def go(self):
        try:
            self.net.up()
            if self.inbox_dir:
                os.makedirs(self.inbox_dir)
                run("mount", "-t", "tmpfs", "-o", "size=8m", "rwfaults", self.inbox_dir)
            if self.scenario == "redis":
                self.start_redis()
            for port in self.ports():
                self.start_hub(port)
            self.start_clients()
            self.start_publisher()
            time.sleep(5)
            log(f"{self.scenario}: fault begins")
            began, ended = self.fault()
            log(f"{self.scenario}: fault over after {ended - began:.1f} s; letting clients recover")
            time.sleep(20)
            self.stop(self.publisher)
            # Drain: everything accepted reaches the clients.
            time.sleep(5)
            rows = self.count(began, ended)
            if self.inbox_dir:
                for proc, lines in self.clients.values():
                    self.stop(proc)
                    lines.join(5)
                self.inbox_counts(rows)
            return rows
        finally:
            self.stop(self.publisher)
            for proc, lines in self.clients.values():
                self.stop(proc)
                lines.join(5)
            for hub in self.hubs.values():
                self.stop(hub)
            self.stop(self.redis)
            self.net.down()
            if self.inbox_dir:
                run("umount", self.inbox_dir, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*",
                    default=["kill9", "stall", "flap", "throttle", "sigstop", "diskfull",
                             "redis"])
    ap.add_argument("--stop-seconds", type=float, default=300,
                    help="how long the sigstop scenario keeps the desks stopped")
    ap.add_argument("--riskwatch", required=True, help="the riskwatch binary")
    ap.add_argument("--out", required=True, help="where results.json and results.md go")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("faults: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    for tool in ("ip", "nft", "tc"):
        if shutil.which(tool) is None:
            print(f"faults: needs {tool} (scripts/setup.sh installs it)", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    results, ok = {}, True
    for s in args.scenarios:
        with tempfile.TemporaryDirectory(prefix=f"riskwatch-faults-{s}-") as work:
            rows = Run(os.path.abspath(args.riskwatch), s, work, args.stop_seconds).go()
        results[s] = rows
        for r in rows:
            good = (r["lost"] == 0 and r["duplicated"] == 0 and r["back"] and r["sent"] > 0
                    and (s not in CUTS_LINK or r["detect_s"] is None
                         or r["detect_s"] <= DETECT_GOAL))
            if "inbox_missing" in r:
                good &= (r["inbox_missing"] == 0 and r["inbox_said_full"]
                         and r["inbox_said_again"])
            ok &= good
            log(f"{s} {r['client']:8} sent {r['sent']:4} delivered {r['delivered']:4} "
                f"dup {r['duplicated']} lost {r['lost']} detect {r['detect_s']} s "
                f"recover {r['recover_s']} s back {r['back']} gaps {r['gaps']} "
                f"max delay {r['max_delay_s']} s"
                + (f" inbox stored {r['inbox_stored']} missing {r['inbox_missing']} "
                   f"said full {r['inbox_said_full']} said again {r['inbox_said_again']}"
                   if "inbox_missing" in r else "")
                + f"{'' if good else '  <-- goal missed'}")
            # Why a desk left a link that still carried the stream.
            if s not in CUTS_LINK and r["detect_s"] is not None:
                for t, line in r["states"]:
                    if t >= 0 and not line.startswith("riskwatch: connect"):
                        log(f"{s} {r['client']:8} at {t} s: {line}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("| scenario | client | critical sent | delivered | duplicated | lost | detected after (s) | recovered after (s) | back | longest delay (s) |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|\n")
        for s, rows in results.items():
            for r in rows:
                f.write(f"| {s} | {r['client']} | {r['sent']} | {r['delivered']} | {r['duplicated']} | "
                        f"{r['lost']} | {r['detect_s'] if r['detect_s'] is not None else '—'} | "
                        f"{r['recover_s'] if r['recover_s'] is not None else '—'} | {'yes' if r['back'] else 'no'} | "
                        f"{r['max_delay_s'] if r['max_delay_s'] is not None else '—'} |\n")
    log(f"results in {args.out}/results.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
