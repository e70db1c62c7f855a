#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus (fuzz/seeds/TARGET/) from the
strings the tests and docs already use: the messages the tests send as each
backend, the native sessions, the hub commands, the rules and the
preferences files. Run from the repository root; the output is committed so
a fuzz run needs no generation. Deterministic (same sources, same files)
except the store seeds' timestamps, which are minutes before the run so
that restoring keeps them (history and cursors expire by age)."""

import hashlib
import json
import pathlib
import re
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"

RAW = re.compile(r'r#"(.*?)"#', re.S)
CALL = re.compile(r'parse_rules?\("((?:[^"\\]|\\.)*)"\)')
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.S)
PLAIN_BLOCK = re.compile(r"```\n(.*?)```", re.S)


def sources(*globs):
    for g in globs:
        yield from sorted(ROOT.glob(g))


def raw_strings(*globs):
    for path in sources(*globs):
        for m in RAW.finditer(path.read_text()):
            yield m.group(1)


def unescape(s):
    return json.loads('"' + s + '"')


def json_objects(*globs):
    for s in raw_strings(*globs):
        t = s.strip()
        if t.startswith("{"):
            yield t


def write(target, items):
    d = OUT / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    seen = set()
    for item in items:
        data = item if isinstance(item, bytes) else item.encode()
        name = hashlib.sha1(data).hexdigest()
        if name in seen:
            continue
        seen.add(name)
        (d / name).write_bytes(data)
    print(f"{target}: {len(seen)} seeds")


RUST_TESTS = ("src/**/*.rs", "tests/**/*.rs")

messages = sorted(set(json_objects(*RUST_TESTS)))
write("decode", messages)

native = [m for m in messages if '"op"' in m]
sessions = list(native)
# Whole sessions: a confirmation, events, a gap, events again.
subscribed = [m for m in native if '"subscribed"' in m]
events = [m for m in native if '"event"' in m]
gaps = [m for m in native if '"gap"' in m]
for i, s in enumerate(subscribed):
    body = [s] + events[i % max(len(events), 1):][:4] + gaps[:1] + events[:3]
    sessions.append("\n".join(body))
write("native", sessions)

commands = [m for m in messages if re.search(r'"(op|type|action)"\s*:\s*"(subscribe|unsubscribe|publish|ping|pong|refresh|heartbeat)"', m)]
hub = []
for m in commands:
    for pick in (0x00, 0x81, 0x22, 0x43, 0x64, 0x05, 0x86):
        hub.append(bytes([pick]) + m.encode())
for path in ("/api/v1/stream", "/ws/client/C1/engagement", "/ws/risk-assessment/A1"):
    hub.append(b"\xff" + path.encode())
write("hub_commands", hub)

rules = [unescape(m.group(1)) for p in sources(*RUST_TESTS) for m in CALL.finditer(p.read_text())]
docs = (ROOT / "docs" / "RULES.md").read_text()
rules += [b for b in PLAIN_BLOCK.findall(docs) if "=>" in b]
rules += [line for b in TOML_BLOCK.findall(docs) for line in re.findall(r'"([^"]*=>[^"]*)"', b)]
write("rules", rules)

prefs = [s for s in raw_strings(*RUST_TESTS) if re.search(r"^\s*(\[|[a-z_]+\s*=)", s, re.M) and not s.strip().startswith("{")]
prefs += TOML_BLOCK.findall(docs)
write("prefs", prefs)

# The hub's --data-dir files, in the shapes server/store.rs and
# server/cursors.rs write (a header, then one event per line; one cursor per
# line), whole, torn mid-line, and damaged, with a cursors file after a NUL.
import datetime

now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
ts = lambda minutes: (now - datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
header = json.dumps({"channel": "sessions:S1", "epoch": "e1", "head": 4, "ordinary_before": 1})
lines = [header] + [
    json.dumps({"seq": seq, "type": kind, "severity": sev, "ts": ts(10 - seq), "id": f"e-{seq}", "data": data})
    for seq, kind, sev, data in [
        (2, "tick", "info", {"i": 2}),
        (3, "risk_alert", "critical", {"sessionId": "S1", "currentValue": 92, "threshold": 90}),
        (4, "session_status", "emergency", {"sessionId": "S1", "status": "emergency_stopped"}),
    ]
]
cursor_lines = [
    json.dumps({"user": "u1", "channel": "sessions:S1", "epoch": "e1", "seq": 3, "at": ts(1)}),
    json.dumps({"user": "u2", "channel": "department:*", "at": ts(2)}),
]
whole = "\n".join(lines) + "\n"
cursors_text = "\n".join(cursor_lines) + "\n"
store = [
    whole,
    whole[:-17],  # killed mid-line
    lines[0] + "\n" + lines[3] + "\n" + lines[1] + "\n",  # out of order
    "{not a header\n" + "\n".join(lines[1:]),
    whole + "\0" + cursors_text,
    whole + "\0" + cursors_text[:-9],
    "\0" + cursors_text,
]
write("store", store)
