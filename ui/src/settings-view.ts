/**
 * The Settings tab: connection profiles (list, add / edit, connect,
 * delete), the selected profile's preferences (severities, quiet hours,
 * rules), its snoozes and mutes, and the whole preferences file. The static
 * markup is in index.html; rows are built with dom.ts. Everything the Rust
 * side sends is set as text. The token only ever goes from its password
 * field straight into `saveProfile`, and the field is emptied after.
 */
import { byId, cell, node, row, setClass, setText, syncList } from "./dom";
import {
  STYLES,
  connectProfile,
  deleteProfile,
  disconnectProfile,
  getPrefs,
  listProfiles,
  saveProfile,
  savePrefs,
  savePrefsText,
  diagnostics,
  snooze,
  unmute,
  type LinkView,
  type PrefsForm,
  type PrefsView,
  type ProfileView,
  type Severity,
} from "./ipc";
import { badge } from "./model";
import {
  MUTE_KINDS,
  SEVERITIES,
  SNOOZE_CHOICES,
  defaultPrefsProfile,
  isEditable,
  isHHMM,
  isMuteKind,
  isSeverity,
  isSnoozeChoice,
  mergeLinks,
  muteKey,
  muteRows,
  parseKeepDays,
  parseRules,
  profileInput,
  snoozeMinutes,
  type MuteRow,
} from "./settings";

/** How long the "Really delete?" button stays armed. */
const ARM_MS = 4000;

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Shows `text` in a status line (an aria-live region) as ok, error or pending. */
function status(el: HTMLElement, text: string, tone: "ok" | "error" | "pending" | "" = ""): void {
  setText(el, text);
  setClass(el, tone ? `status ${tone}` : "status");
}

/**
 * Runs `action` with `button` disabled, then shows its success text (or
 * "Saved") or its error in `line`. Resolves with whether it succeeded.
 */
async function pending(
  button: HTMLButtonElement,
  line: HTMLElement,
  action: () => Promise<string | void>,
): Promise<boolean> {
  if (button.disabled) return false;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  status(line, "Working…", "pending");
  try {
    const done = await action();
    status(line, done ?? "Saved", "ok");
    return true;
  } catch (error) {
    status(line, message(error), "error");
    return false;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function options(select: HTMLSelectElement, items: readonly { value: string; label: string }[]): void {
  select.replaceChildren(
    ...items.map((i) => {
      const o = node("option", "", i.label);
      o.value = i.value;
      return o;
    }),
  );
}

function severityOptions(select: HTMLSelectElement): void {
  options(
    select,
    SEVERITIES.map((s) => ({ value: s, label: s[0]!.toUpperCase() + s.slice(1) })),
  );
}

function selected(select: HTMLSelectElement, fallback: Severity): Severity {
  return isSeverity(select.value) ? select.value : fallback;
}

function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export class SettingsView {
  private readonly el = {
    profiles: byId<HTMLTableSectionElement>("profiles"),
    profilesStatus: byId<HTMLParagraphElement>("profiles-status"),
    formTitle: byId<HTMLHeadingElement>("profile-form-title"),
    form: byId<HTMLFormElement>("profile-form"),
    name: byId<HTMLInputElement>("p-name"),
    url: byId<HTMLInputElement>("p-url"),
    style: byId<HTMLSelectElement>("p-style"),
    channels: byId<HTMLInputElement>("p-channels"),
    token: byId<HTMLInputElement>("p-token"),
    clearRow: byId<HTMLLabelElement>("p-clear-row"),
    clear: byId<HTMLInputElement>("p-clear"),
    save: byId<HTMLButtonElement>("p-save"),
    cancel: byId<HTMLButtonElement>("p-cancel"),
    profileStatus: byId<HTMLParagraphElement>("profile-status"),
    prefsProfile: byId<HTMLSelectElement>("prefs-profile"),
    prefsPath: byId<HTMLSpanElement>("prefs-path"),
    prefsForm: byId<HTMLFormElement>("prefs-form"),
    list: byId<HTMLSelectElement>("pf-list"),
    notify: byId<HTMLSelectElement>("pf-notify"),
    quiet: byId<HTMLInputElement>("pf-quiet"),
    start: byId<HTMLInputElement>("pf-start"),
    end: byId<HTMLInputElement>("pf-end"),
    tz: byId<HTMLInputElement>("pf-tz"),
    allow: byId<HTMLSelectElement>("pf-allow"),
    rules: byId<HTMLTextAreaElement>("pf-rules"),
    keep: byId<HTMLInputElement>("pf-keep"),
    keepForever: byId<HTMLInputElement>("pf-keep-forever"),
    prefsSave: byId<HTMLButtonElement>("pf-save"),
    prefsStatus: byId<HTMLParagraphElement>("prefs-status"),
    mutes: byId<HTMLTableSectionElement>("mutes"),
    mutesEmpty: byId<HTMLParagraphElement>("mutes-empty"),
    muteForm: byId<HTMLFormElement>("mute-form"),
    muteKind: byId<HTMLSelectElement>("m-kind"),
    muteValue: byId<HTMLInputElement>("m-value"),
    muteDuration: byId<HTMLSelectElement>("m-duration"),
    muteAdd: byId<HTMLButtonElement>("m-add"),
    mutesStatus: byId<HTMLParagraphElement>("mutes-status"),
    text: byId<HTMLTextAreaElement>("prefs-text"),
    textSave: byId<HTMLButtonElement>("prefs-text-save"),
    diagCopy: byId<HTMLButtonElement>("diag-copy"),
    diagStatus: byId<HTMLParagraphElement>("diag-status"),
    diagText: byId<HTMLPreElement>("diag-text"),
    textStatus: byId<HTMLParagraphElement>("prefs-text-status"),
  };

  private profiles: ProfileView[] = [];
  private readonly rows = new Map<string, HTMLTableRowElement>();
  private readonly muteEls = new Map<string, HTMLTableRowElement>();
  /** When the links last arrived, for the reconnect countdown. */
  private linksAt = Date.now();
  /** The profile being edited; null: the form adds one. */
  private editing: string | null = null;
  private prefs: PrefsView | null = null;
  /** The profile the preferences panel shows. */
  private prefsName: string | null = null;
  /** The file textarea holds edits not saved yet: do not overwrite them. */
  private textDirty = false;
  private visible = false;
  private loading = false;
  private loadAgain = false;

  constructor() {
    const e = this.el;
    options(e.style, [{ value: "auto", label: "auto (from the URL)" }, ...STYLES.map((s) => ({ value: s, label: s }))]);
    severityOptions(e.list);
    severityOptions(e.notify);
    severityOptions(e.allow);
    options(e.muteKind, MUTE_KINDS.map((k) => ({ value: k, label: k })));
    options(e.muteDuration, SNOOZE_CHOICES);
    e.allow.value = "emergency";
    e.tz.value = localZone();
    this.quietEnabled(false);

    e.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.saveProfile();
    });
    e.cancel.addEventListener("click", () => this.editProfile(null));
    e.prefsProfile.addEventListener("change", () => void this.loadPrefs(e.prefsProfile.value));
    e.prefsForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.savePrefs();
    });
    e.quiet.addEventListener("change", () => this.quietEnabled(e.quiet.checked));
    e.keepForever.addEventListener("change", () => (e.keep.disabled = e.keepForever.checked));
    e.muteForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.addMute();
    });
    e.text.addEventListener("input", () => {
      this.textDirty = true;
    });
    e.textSave.addEventListener("click", () => void this.saveText());
    e.diagCopy.addEventListener("click", () => void this.copyDiagnostics());
  }

  // ---------- lifecycle ----------

  /** The tab was opened: fetch the profiles (and preferences) afresh. */
  open(): void {
    this.visible = true;
    void this.refresh();
  }

  close(): void {
    this.visible = false;
  }

  /** Every second while shown: the reconnect countdowns, expired snoozes. */
  tick(): void {
    if (!this.visible) return;
    this.renderProfiles();
    this.renderMutes();
  }

  /**
   * The `links` event: the rows' states are updated in place; when a
   * connection appeared or went away the list is fetched again.
   */
  links(links: readonly LinkView[]): void {
    this.linksAt = Date.now();
    if (!this.visible) return;
    const { profiles, stale } = mergeLinks(this.profiles, links);
    this.profiles = profiles;
    this.renderProfiles();
    if (stale) void this.refresh();
  }

  /** Fetches the profiles; one query in flight, the last one wins. */
  private async refresh(): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return;
    }
    this.loading = true;
    try {
      this.profiles = await listProfiles();
      this.linksAt = Date.now();
      if (this.el.profilesStatus.className.includes("error")) status(this.el.profilesStatus, "");
      this.renderProfiles();
      this.syncPrefsProfiles();
    } catch (error) {
      status(this.el.profilesStatus, `Cannot list the profiles: ${message(error)}`, "error");
    } finally {
      this.loading = false;
      if (this.loadAgain) {
        this.loadAgain = false;
        void this.refresh();
      }
    }
  }

  // ---------- the profile list ----------

  private renderProfiles(): void {
    const elapsed = Date.now() - this.linksAt;
    syncList(
      this.el.profiles,
      this.rows,
      this.profiles,
      (p) => p.name,
      (p) => this.profileRow(p.name),
      (tr, p) => {
        const [name, chip] = cell(tr, 0).children as unknown as [HTMLSpanElement, HTMLSpanElement];
        setText(name, p.name);
        setText(chip, p.demo ? "demo" : "");
        chip.hidden = !p.demo;
        const url = p.url ?? (p.demo ? "built-in demo" : p.link?.source ?? "–");
        setText(cell(tr, 1), url);
        cell(tr, 1).title = url;
        setText(cell(tr, 2), p.style ?? "auto");
        const [state, detail] = cell(tr, 3).children as unknown as [HTMLSpanElement, HTMLSpanElement];
        const b = p.link ? badge(p.link.state, elapsed) : { text: "Not connected", tone: "off", detail: null };
        setText(state, b.text);
        setClass(state, `badge tone-${b.tone}`);
        setText(detail, b.detail ?? "");
        detail.hidden = b.detail === null;
        const [token, warning] = cell(tr, 4).children as unknown as [HTMLSpanElement, HTMLSpanElement];
        setText(token, p.has_token ? "✓ stored" : p.demo ? "–" : "none");
        setClass(token, p.has_token ? "ok" : "muted");
        setText(warning, p.keyring_error ? `Keyring: ${p.keyring_error}` : "");
        warning.hidden = p.keyring_error === null;
        const [toggle, edit, del] = cell(tr, 5).querySelectorAll("button");
        const running = p.link !== null;
        if (!toggle!.disabled) setText(toggle!, running ? "Disconnect" : "Connect");
        toggle!.hidden = !running && !p.demo && p.url === null;
        edit!.hidden = !isEditable(p);
        del!.hidden = !isEditable(p);
      },
    );
    if (this.profiles.length === 0 && !this.el.profilesStatus.textContent) {
      status(this.el.profilesStatus, "No profiles yet: add a connection below.");
    }
  }

  private profileRow(name: string): HTMLTableRowElement {
    const tr = row(6);
    tr.className = "profile-row";
    cell(tr, 0).append(node("span", "name"), node("span", "chip demo-chip"));
    cell(tr, 1).className = "url";
    cell(tr, 3).append(node("span", "badge"), node("span", "detail-text muted"));
    cell(tr, 4).append(node("span", "muted"), node("span", "warn-text"));
    const actions = cell(tr, 5);
    actions.className = "row-actions";
    const toggle = node("button", "", "Connect");
    const edit = node("button", "", "Edit");
    const del = node("button", "danger", "Delete");
    for (const b of [toggle, edit, del]) b.type = "button";
    toggle.addEventListener("click", () => void this.toggle(name, toggle));
    edit.addEventListener("click", () => this.editProfile(name));
    let disarm: number | undefined;
    const reset = () => {
      window.clearTimeout(disarm);
      disarm = undefined;
      setText(del, "Delete");
      setClass(del, "danger");
    };
    del.addEventListener("click", () => {
      if (disarm === undefined) {
        setText(del, "Really delete?");
        setClass(del, "danger armed");
        disarm = window.setTimeout(reset, ARM_MS);
        return;
      }
      reset();
      void this.remove(name, del);
    });
    del.addEventListener("blur", reset);
    actions.append(toggle, edit, del);
    return tr;
  }

  private find(name: string): ProfileView | undefined {
    return this.profiles.find((p) => p.name === name);
  }

  /** Puts a changed profile in the list (the `links` event follows too). */
  private replace(p: ProfileView): void {
    const i = this.profiles.findIndex((x) => x.name === p.name);
    if (i >= 0) this.profiles[i] = p;
    else this.profiles.push(p);
    this.renderProfiles();
  }

  private async toggle(name: string, button: HTMLButtonElement): Promise<void> {
    const p = this.find(name);
    if (!p) return;
    const connect = p.link === null;
    await pending(button, this.el.profilesStatus, async () => {
      this.replace(connect ? await connectProfile(name) : await disconnectProfile(name));
      return connect ? `Connecting ${name}…` : `Disconnected ${name}`;
    });
    this.renderProfiles();
    void this.refresh();
  }

  private async remove(name: string, button: HTMLButtonElement): Promise<void> {
    const ok = await pending(button, this.el.profilesStatus, async () => {
      await deleteProfile(name);
      return `Deleted ${name}`;
    });
    if (ok) {
      if (this.editing === name) this.editProfile(null);
      this.profiles = this.profiles.filter((p) => p.name !== name);
      this.renderProfiles();
      this.syncPrefsProfiles();
      void this.refresh();
    }
  }

  // ---------- the profile form ----------

  /** Fills the form with a profile to change, or empties it to add one. */
  private editProfile(name: string | null): void {
    const e = this.el;
    const p = name === null ? undefined : this.find(name);
    this.editing = p ? p.name : null;
    e.token.value = "";
    e.clear.checked = false;
    status(e.profileStatus, "");
    if (!p) {
      setText(e.formTitle, "Add a connection");
      e.name.value = "";
      e.name.readOnly = false;
      e.url.value = "";
      e.style.value = "auto";
      e.channels.value = "";
      e.token.placeholder = "";
      e.clearRow.hidden = true;
      e.cancel.hidden = true;
      return;
    }
    setText(e.formTitle, `Edit ${p.name}`);
    e.name.value = p.name;
    e.name.readOnly = true;
    e.url.value = p.url ?? "";
    e.style.value = p.style && (STYLES as readonly string[]).includes(p.style) ? p.style : "auto";
    e.channels.value = p.subscribe.join(", ");
    e.token.placeholder = p.has_token ? "stored in the OS keyring (leave empty to keep)" : "";
    e.clearRow.hidden = !p.has_token;
    e.cancel.hidden = false;
    e.form.scrollIntoView({ block: "nearest" });
    e.url.focus();
  }

  private async saveProfile(): Promise<void> {
    const e = this.el;
    const checked = profileInput(
      {
        name: e.name.value,
        url: e.url.value,
        style: e.style.value,
        channels: e.channels.value,
        token: e.token.value,
        clearToken: e.clear.checked && !e.clearRow.hidden,
      },
      this.editing,
    );
    if ("error" in checked) {
      status(e.profileStatus, checked.error, "error");
      return;
    }
    const input = checked.input;
    const ok = await pending(e.save, e.profileStatus, async () => {
      try {
        const saved = await saveProfile(input);
        this.replace(saved);
        return `Saved ${saved.name}`;
      } finally {
        // The token leaves the page with the call: nothing keeps it.
        input.token = null;
        e.token.value = "";
      }
    });
    if (ok) {
      const name = input.name;
      this.editProfile(null);
      status(e.profileStatus, `Saved ${name}`, "ok");
      void this.refresh();
    }
  }

  // ---------- preferences ----------

  /** Keeps the profile select in step with the list. */
  private syncPrefsProfiles(): void {
    const e = this.el;
    const names = this.profiles.map((p) => p.name);
    const shown = [...e.prefsProfile.options].map((o) => o.value);
    if (names.join("\u0000") !== shown.join("\u0000")) {
      options(e.prefsProfile, names.map((n) => ({ value: n, label: n })));
    }
    const keep = this.prefsName !== null && names.includes(this.prefsName);
    const want = keep ? this.prefsName : defaultPrefsProfile(this.profiles);
    if (want === null) {
      this.prefsName = null;
      this.prefs = null;
      this.renderPrefs();
      return;
    }
    e.prefsProfile.value = want;
    if (!keep || this.prefs === null) void this.loadPrefs(want);
  }

  private async loadPrefs(name: string): Promise<void> {
    this.prefsName = name;
    status(this.el.prefsStatus, "Loading…", "pending");
    try {
      const view = await getPrefs(name);
      if (this.prefsName !== name) return;
      this.textDirty = false;
      this.showPrefs(view, true);
      status(this.el.prefsStatus, "");
    } catch (error) {
      if (this.prefsName !== name) return;
      this.prefs = null;
      this.renderPrefs();
      status(this.el.prefsStatus, `Cannot read the preferences of ${name}: ${message(error)}`, "error");
    }
  }

  /** Shows `view`; `fillForm` false keeps what the form holds (after a snooze). */
  private showPrefs(view: PrefsView, fillForm: boolean): void {
    this.prefs = view;
    if (fillForm) this.fillForm(view.form);
    this.renderPrefs();
  }

  private fillForm(f: PrefsForm): void {
    const e = this.el;
    e.list.value = f.list;
    e.notify.value = f.notify;
    const q = f.quiet_hours;
    e.quiet.checked = q !== null;
    e.start.value = q?.start ?? "22:00";
    e.end.value = q?.end ?? "07:00";
    e.tz.value = q?.timezone || localZone();
    e.allow.value = q?.allow ?? "emergency";
    this.quietEnabled(q !== null);
    e.rules.value = f.rules.join("\n");
    e.keepForever.checked = f.keep_days === null;
    e.keep.value = String(f.keep_days ?? 90);
    e.keep.disabled = f.keep_days === null;
  }

  private renderPrefs(): void {
    const e = this.el;
    const p = this.prefs;
    const off = p === null;
    for (const x of [e.prefsSave, e.muteAdd, e.textSave]) x.disabled = off;
    setText(e.prefsPath, p ? p.path : "");
    e.prefsPath.title = p ? p.path : "";
    if (p && !this.textDirty) e.text.value = p.text;
    if (off) e.text.value = "";
    this.renderMutes();
  }

  private quietEnabled(on: boolean): void {
    const e = this.el;
    for (const x of [e.start, e.end, e.tz, e.allow]) x.disabled = !on;
  }

  private async savePrefs(): Promise<void> {
    const e = this.el;
    const name = this.prefsName;
    const current = this.prefs;
    if (name === null || current === null) return;
    let quiet: PrefsForm["quiet_hours"] = null;
    if (e.quiet.checked) {
      const start = e.start.value.slice(0, 5);
      const end = e.end.value.slice(0, 5);
      if (!isHHMM(start) || !isHHMM(end)) {
        status(e.prefsStatus, "Quiet hours: enter the start and end as HH:MM (00:00–23:59).", "error");
        return;
      }
      const timezone = e.tz.value.trim();
      if (timezone === "") {
        status(e.prefsStatus, "Quiet hours: enter a time zone (an IANA name such as Europe/London).", "error");
        return;
      }
      quiet = { start, end, timezone, allow: selected(e.allow, "emergency") };
    }
    const keep = parseKeepDays(e.keep.value, e.keepForever.checked);
    if ("error" in keep) {
      status(e.prefsStatus, keep.error, "error");
      return;
    }
    const form: PrefsForm = {
      list: selected(e.list, "info"),
      notify: selected(e.notify, "critical"),
      quiet_hours: quiet,
      rules: parseRules(e.rules.value),
      mutes: current.form.mutes,
      keep_days: keep.days,
    };
    await pending(e.prefsSave, e.prefsStatus, async () => {
      const view = await savePrefs(name, form);
      if (this.prefsName === name) {
        this.textDirty = false;
        this.showPrefs(view, true);
      }
      return `Saved the preferences of ${name}`;
    });
  }

  /** Fetches the report, shows it, and puts it on the clipboard (or says
   * to copy it by hand when the clipboard refuses). */
  private async copyDiagnostics(): Promise<void> {
    const e = this.el;
    await pending(e.diagCopy, e.diagStatus, async () => {
      const text = await diagnostics();
      setText(e.diagText, text);
      e.diagText.hidden = false;
      try {
        // A clipboard that never answers is one that failed.
        await Promise.race([
          navigator.clipboard.writeText(text),
          new Promise((_, reject) => window.setTimeout(() => reject(new Error("timeout")), 2000)),
        ]);
        return "Copied to the clipboard";
      } catch {
        return "The clipboard is not available: select the text below and copy it";
      }
    });
  }

  private async saveText(): Promise<void> {
    const e = this.el;
    const name = this.prefsName;
    if (name === null) return;
    const text = e.text.value;
    await pending(e.textSave, e.textStatus, async () => {
      const view = await savePrefsText(name, text);
      if (this.prefsName === name) {
        this.textDirty = false;
        this.showPrefs(view, true);
      }
      return `Saved ${view.path}`;
    });
  }

  // ---------- snoozes and mutes ----------

  private renderMutes(): void {
    const e = this.el;
    const rows = this.prefs ? muteRows(this.prefs.form.mutes, new Date()) : [];
    syncList(
      e.mutes,
      this.muteEls,
      rows,
      (r) => muteKey(r.mute),
      (r) => this.muteRow(r),
      (tr, r) => {
        setClass(tr, r.expired ? "mute-row expired" : "mute-row");
        setText(cell(tr, 0), r.mute.kind);
        setText(cell(tr, 1), r.mute.value);
        setText(cell(tr, 2), r.label);
      },
    );
    e.mutesEmpty.hidden = rows.length > 0;
    setText(e.mutesEmpty, this.prefs ? "Nothing is muted." : "Choose a profile above.");
  }

  private muteRow(r: MuteRow): HTMLTableRowElement {
    const tr = row(4);
    const target = { kind: r.mute.kind, value: r.mute.value };
    const remove = node("button", "", "Remove");
    remove.type = "button";
    remove.addEventListener("click", () => {
      const name = this.prefsName;
      if (name === null) return;
      void pending(remove, this.el.mutesStatus, async () => {
        const view = await unmute(name, target);
        if (this.prefsName === name) this.showPrefs(view, false);
        return `Removed the ${target.kind} mute`;
      });
    });
    cell(tr, 3).className = "row-actions";
    cell(tr, 3).append(remove);
    return tr;
  }

  private async addMute(): Promise<void> {
    const e = this.el;
    const name = this.prefsName;
    if (name === null) return;
    const kind = e.muteKind.value;
    const value = e.muteValue.value.trim();
    const choice = e.muteDuration.value;
    if (!isMuteKind(kind) || !isSnoozeChoice(choice)) return;
    if (value === "") {
      status(e.mutesStatus, `Enter the ${kind} to mute.`, "error");
      return;
    }
    const minutes = snoozeMinutes(choice, new Date());
    const ok = await pending(e.muteAdd, e.mutesStatus, async () => {
      const view = await snooze(name, { kind, value }, minutes);
      if (this.prefsName === name) this.showPrefs(view, false);
      return minutes === null ? `Muted ${kind} ${value}` : `Snoozed ${kind} ${value}`;
    });
    if (ok) e.muteValue.value = "";
  }
}
