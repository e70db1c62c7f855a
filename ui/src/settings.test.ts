import { describe, expect, it } from "vitest";

import type { LinkView, MuteView, ProfileView } from "./ipc";
import {
  parseKeepDays,
  TOKEN_IN_URL,
  checkProfileName,
  checkUrl,
  defaultPrefsProfile,
  isEditable,
  isHHMM,
  linksSummary,
  localUntil,
  mergeLinks,
  muteRows,
  parseChannels,
  parseRules,
  profileInput,
  snoozeMinutes,
} from "./settings";

function link(profile: string, opts: Partial<LinkView> = {}): LinkView {
  return { profile, source: `wss://${profile}.example/ws`, demo: false, state: { state: "connected" }, ...opts };
}

function profile(name: string, opts: Partial<ProfileView> = {}): ProfileView {
  return {
    name,
    url: `wss://${name}.example/ws`,
    style: null,
    subscribe: [],
    has_token: false,
    keyring_error: null,
    demo: false,
    link: null,
    ...opts,
  };
}

describe("checkProfileName", () => {
  it("accepts 1–64 letters, digits, - _ .", () => {
    expect(checkProfileName("prod", true)).toBeNull();
    expect(checkProfileName("desk-2_eu.v1", true)).toBeNull();
    expect(checkProfileName("a".repeat(64), true)).toBeNull();
  });

  it("rejects empty, too long, other characters and a leading dot", () => {
    expect(checkProfileName("", true)).toMatch(/Enter a name/);
    expect(checkProfileName("a".repeat(65), true)).toMatch(/64/);
    expect(checkProfileName("my desk", true)).toMatch(/letters, digits/);
    expect(checkProfileName("../etc", true)).not.toBeNull();
    expect(checkProfileName("a/b", true)).not.toBeNull();
    expect(checkProfileName("prød", true)).not.toBeNull();
    expect(checkProfileName(".hidden", true)).toMatch(/start with '\.'/);
  });

  it("reserves demo and cli for new profiles only", () => {
    expect(checkProfileName("demo", true)).toMatch(/reserved/);
    expect(checkProfileName("cli", true)).toMatch(/reserved/);
    expect(checkProfileName("CLI", true)).toMatch(/reserved/);
    expect(checkProfileName("demo", false)).toBeNull();
    expect(checkProfileName("demo2", true)).toBeNull();
  });
});

describe("checkUrl", () => {
  it("accepts ws:// and wss:// URLs", () => {
    expect(checkUrl("wss://risk.example.com/api/v1/ws/alerts")).toBeNull();
    expect(checkUrl("  ws://127.0.0.1:8080/ws?channel=x  ")).toBeNull();
  });

  it("rejects what does not parse, other schemes and no URL", () => {
    expect(checkUrl("")).toMatch(/Enter/);
    expect(checkUrl("risk.example.com")).toMatch(/not a valid URL/);
    expect(checkUrl("https://risk.example.com/ws")).toMatch(/ws:\/\/ or wss:\/\//);
    expect(checkUrl("javascript:alert(1)")).toMatch(/ws:\/\/ or wss:\/\//);
  });

  it("rejects a token or password in the URL and points to the Token field", () => {
    expect(checkUrl("wss://h/ws?token=abc")).toBe(TOKEN_IN_URL);
    expect(checkUrl("wss://h/ws?x=1&Access_Token=abc")).toBe(TOKEN_IN_URL);
    expect(checkUrl("wss://user:pass@h/ws")).toBe(TOKEN_IN_URL);
    expect(checkUrl("wss://user@h/ws")).toBe(TOKEN_IN_URL);
    expect(TOKEN_IN_URL).toMatch(/Token field.*OS keyring/);
    expect(checkUrl("wss://h/ws?tokens_per_page=3")).toBeNull();
  });
});

describe("parseChannels", () => {
  it("trims, drops blanks and duplicates", () => {
    expect(parseChannels(" dashboard, market:SPY ,, ,sessions:S1,dashboard ")).toEqual([
      "dashboard",
      "market:SPY",
      "sessions:S1",
    ]);
    expect(parseChannels("")).toEqual([]);
    expect(parseChannels(" , ")).toEqual([]);
  });
});

describe("profileInput", () => {
  const fields = {
    name: " prod ",
    url: " wss://risk.example/ws ",
    style: "auto",
    channels: "a, b",
    token: "",
    clearToken: false,
  };

  it("builds the input: auto style is null, empty token keeps the stored one", () => {
    expect(profileInput(fields, null)).toEqual({
      input: { name: "prod", url: "wss://risk.example/ws", style: null, subscribe: ["a", "b"], token: null, clear_token: false },
    });
  });

  it("sends a new token, or the removal of the stored one", () => {
    const r = profileInput({ ...fields, style: "hr", token: " s3cret " }, "prod");
    expect(r).toMatchObject({ input: { style: "hr", token: "s3cret", clear_token: false } });
    expect(profileInput({ ...fields, clearToken: true }, "prod")).toMatchObject({ input: { token: null, clear_token: true } });
  });

  it("reports the first problem", () => {
    expect(profileInput({ ...fields, name: "demo" }, null)).toMatchObject({ error: expect.stringMatching(/reserved/) });
    expect(profileInput({ ...fields, url: "wss://h/?token=x" }, null)).toEqual({ error: TOKEN_IN_URL });
    expect(profileInput({ ...fields, style: "fancy" }, null)).toMatchObject({ error: expect.stringMatching(/style/) });
    expect(profileInput({ ...fields, token: "a b" }, null)).toMatchObject({ error: expect.stringMatching(/token/) });
  });
});

describe("isEditable", () => {
  it("protects the demo and --url connections", () => {
    expect(isEditable(profile("prod"))).toBe(true);
    expect(isEditable(profile("demo", { demo: true, url: null }))).toBe(false);
    expect(isEditable(profile("cli"))).toBe(false);
  });
});

describe("preferences form", () => {
  it("checks HH:MM", () => {
    for (const ok of ["00:00", "07:30", "22:00", "23:59"]) expect(isHHMM(ok)).toBe(true);
    for (const bad of ["24:00", "7:30", "07:60", "07:30:00", "", "ab:cd", " 07:30"]) expect(isHHMM(bad)).toBe(false);
  });

  it("takes one rule per line and ignores blank lines", () => {
    expect(parseRules("employee_stress: stress_rate > 40 => warning\n\n  \r\n  riskUpdate: score >= 70 => critical  \n")).toEqual([
      "employee_stress: stress_rate > 40 => warning",
      "riskUpdate: score >= 70 => critical",
    ]);
    expect(parseRules("")).toEqual([]);
  });

  it("opens on the first connected profile", () => {
    const reconnecting = { state: "reconnecting", attempt: 1, retry_in_ms: 1000, error: "x" } as const;
    expect(
      defaultPrefsProfile([
        profile("a"),
        profile("b", { link: link("b", { state: reconnecting }) }),
        profile("c", { link: link("c") }),
      ]),
    ).toBe("c");
    expect(defaultPrefsProfile([profile("a"), profile("b", { link: link("b", { state: reconnecting }) })])).toBe("b");
    expect(defaultPrefsProfile([profile("a")])).toBe("a");
    expect(defaultPrefsProfile([])).toBeNull();
  });
});

describe("snoozeMinutes", () => {
  const now = new Date(2026, 10, 25, 20, 30, 0); // local 20:30

  it("maps the fixed durations and until removed", () => {
    expect(snoozeMinutes("15m", now)).toBe(15);
    expect(snoozeMinutes("1h", now)).toBe(60);
    expect(snoozeMinutes("4h", now)).toBe(240);
    expect(snoozeMinutes("forever", now)).toBeNull();
  });

  it("counts to 08:00 local time on the next day", () => {
    expect(snoozeMinutes("tomorrow", now)).toBe(11 * 60 + 30);
    expect(snoozeMinutes("tomorrow", new Date(2026, 10, 25, 0, 15))).toBe(31 * 60 + 45);
    // Seconds round up: never ends before 08:00.
    expect(snoozeMinutes("tomorrow", new Date(2026, 10, 25, 7, 59, 30))).toBe(24 * 60 + 1);
    // Across a month and a year end.
    expect(snoozeMinutes("tomorrow", new Date(2026, 11, 31, 23, 0))).toBe(9 * 60);
  });
});

describe("muteRows", () => {
  const now = new Date(2026, 10, 25, 12, 0);
  const at = (h: number, m = 0, day = 25) => new Date(2026, 10, day, h, m).toISOString();
  const mutes: MuteView[] = [
    { kind: "subject", value: "department:Sales", until: null },
    { kind: "source", value: "desk-2", until: at(16, 30) },
    { kind: "type", value: "market_data", until: at(11) },
    { kind: "channel", value: "sessions:S9", until: at(13, 5) },
    { kind: "channel", value: "all", until: null },
    { kind: "type", value: "tick", until: at(8, 0, 26) },
  ];

  it("lists running snoozes soonest first, then mutes, then expired ones", () => {
    const rows = muteRows(mutes, now);
    expect(rows.map((r) => [r.mute.value, r.label, r.expired])).toEqual([
      ["sessions:S9", "until 13:05", false],
      ["desk-2", "until 16:30", false],
      ["tick", "until 2026-11-26 08:00", false],
      ["all", "until removed", false],
      ["department:Sales", "until removed", false],
      ["market_data", "expired 11:00", true],
    ]);
  });

  it("can hide expired snoozes", () => {
    expect(muteRows(mutes, now, false).some((r) => r.expired)).toBe(false);
    expect(muteRows(mutes, now, false)).toHaveLength(5);
  });

  it("treats a snooze ending right now as expired", () => {
    expect(muteRows([{ kind: "type", value: "x", until: now.toISOString() }], now)[0]!.expired).toBe(true);
  });

  it("formats local times", () => {
    expect(localUntil(new Date(2026, 10, 25, 9, 5), now)).toBe("09:05");
    expect(localUntil(new Date(2026, 0, 2, 9, 5), now)).toBe("2026-01-02 09:05");
  });
});

describe("links", () => {
  it("summarises the running connections for the header", () => {
    const demo = link("demo", { demo: true, source: "ws://127.0.0.1:4567/ws" });
    const prod = link("prod", { source: "wss://risk.example/ws" });
    const cli = link("cli", { source: "ws://localhost:9000/ws" });
    expect(linksSummary([demo, prod])).toEqual({ text: "demo · prod (wss://risk.example/ws)", demo: true });
    expect(linksSummary([prod, cli])).toEqual({ text: "prod (wss://risk.example/ws) · ws://localhost:9000/ws", demo: false });
    expect(linksSummary([])).toEqual({ text: "", demo: false });
  });

  it("merges states into the profile list by name", () => {
    const list = [profile("a", { link: link("a") }), profile("b")];
    const offline = { state: "offline", error: "bad URL" } as const;
    const same = mergeLinks(list, [link("a", { state: offline })]);
    expect(same.stale).toBe(false);
    expect(same.profiles[0]!.link?.state).toEqual(offline);
    expect(same.profiles[1]!.link).toBeNull();
    expect(list[0]!.link?.state).toEqual({ state: "connected" }); // input untouched
    expect(mergeLinks(list, [link("a"), link("b")]).stale).toBe(true); // b connected
    expect(mergeLinks(list, []).stale).toBe(true); // a went away
    expect(mergeLinks(list, [link("a"), link("cli")]).stale).toBe(true); // unknown link
  });
});

describe("parseKeepDays", () => {
  it("takes whole days in range, or forever", () => {
    expect(parseKeepDays(" 90 ", false)).toEqual({ days: 90 });
    expect(parseKeepDays("1", false)).toEqual({ days: 1 });
    expect(parseKeepDays("3650", false)).toEqual({ days: 3650 });
    expect(parseKeepDays("", true)).toEqual({ days: null });
    expect(parseKeepDays("abc", true)).toEqual({ days: null });
  });

  it("refuses what is not whole days from 1 to 3650", () => {
    for (const bad of ["", "0", "-3", "1.5", "3651", "ninety", "1e9"]) {
      expect(parseKeepDays(bad, false)).toHaveProperty("error");
    }
  });
});
