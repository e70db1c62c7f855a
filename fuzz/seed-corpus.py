#!/usr/bin/env python3
"""Writes each fuzz target's seed corpus (fuzz/seeds/TARGET/) from the
strings the tests and docs already use: the messages the tests send as each
backend, the native sessions, the hub commands, the rules and the
preferences files. Run from the repository root; the output is committed so
a fuzz run needs no generation. Deterministic: same sources, same files."""

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
