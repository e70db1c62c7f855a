//! Connection profiles as the desktop keeps them: one file per profile in
//! the library's [`ProfileStore`] (URL, backend style, channels and the
//! alert preferences) and its token in the OS keyring
//! ([`riskwatch::credentials`]), never in a file. Also the conversion between
//! Settings' form ([`PrefsForm`]) and the library's [`Prefs`], which keeps
//! every part of the file the form does not show.
//!
//! Everything here blocks (files, the keyring over D-Bus): call it from a
//! blocking thread. Nothing here logs or returns a token.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use riskwatch::Severity;
use riskwatch::client::Token;
use riskwatch::credentials;
use riskwatch::engine::prefs::{HumanDuration, QuietHours};
use riskwatch::engine::{MuteTarget, Prefs};
use riskwatch::profile::{Profile, ProfileStore, ServerUrl};
use riskwatch::protocol::Style;

use crate::error::Error;
use crate::view::{MuteView, PrefsForm, PrefsView, ProfileInput, QuietHoursForm};

/// The built-in demo's profile name: its preferences live in `demo.toml`;
/// it has no URL (the demo hub's port changes every start).
pub const DEMO: &str = "demo";
/// The connection given by `--url` / `RISKWATCH_URL`: not stored.
pub const CLI: &str = "cli";

/// The most channels a profile subscribes to.
const MAX_SUBSCRIBE: usize = 256;

/// The store of profiles.
#[derive(Debug, Clone)]
pub struct Profiles {
    store: ProfileStore,
}

/// A stored profile with a server to connect to.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub url: String,
    pub style: Option<Style>,
    pub subscribe: Vec<String>,
}

impl Profiles {
    /// The OS config directory's profiles (`$XDG_CONFIG_HOME/riskwatch/profiles`).
    pub fn open() -> Result<Profiles, Error> {
        Ok(Profiles {
            store: ProfileStore::default_location().map_err(Error::profile)?,
        })
    }

    /// Profiles in `dir` (tests).
    #[cfg(test)]
    pub fn at(dir: impl Into<std::path::PathBuf>) -> Profiles {
        Profiles {
            store: ProfileStore::at(dir),
        }
    }

    /// Every stored profile's name, sorted.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        self.store.list().map_err(Error::profile)
    }

    /// The stored profiles that name a server. A profile whose file is
    /// invalid is skipped with a warning: one bad file never stops the
    /// others from connecting.
    pub fn servers(&self) -> Vec<Server> {
        let names = match self.names() {
            Ok(n) => n,
            Err(error) => {
                tracing::warn!(%error, "cannot list the profiles");
                return Vec::new();
            }
        };
        names
            .into_iter()
            .filter(|n| n != DEMO && n != CLI)
            .filter_map(|name| match self.load(&name) {
                Ok(p) => server(&name, &p),
                Err(error) => {
                    tracing::warn!(profile = %name, %error, "profile skipped");
                    None
                }
            })
            .collect()
    }

    /// The file a profile lives in (whether or not it exists yet).
    pub fn path(&self, name: &str) -> Result<std::path::PathBuf, Error> {
        self.store.path(name).map_err(Error::profile)
    }

    /// A profile; the desktop's default preferences ([`desktop_prefs`])
    /// when it has no file yet.
    pub fn load(&self, name: &str) -> Result<Profile, Error> {
        Ok(self.load_text(name)?.0)
    }

    /// A profile and its file's text (`None` when it has no file yet).
    fn load_text(&self, name: &str) -> Result<(Profile, Option<String>), Error> {
        match self.store.load_text(name).map_err(Error::profile)? {
            (_, None) => Ok((Profile::new(desktop_prefs(), Vec::new()), None)),
            loaded => Ok(loaded),
        }
    }

    /// Creates or changes a profile from Settings: checks every field,
    /// keeps the rest of its preferences, stores a new token in the OS
    /// keyring (or removes it). Returns the server to connect to.
    pub fn save(&self, input: &ProfileInput) -> Result<Server, Error> {
        let name = input.name.trim();
        if name == DEMO || name == CLI {
            return Err(Error::Invalid(format!(
                "name: {name:?} is reserved for the built-in connection"
            )));
        }
        self.store
            .path(name)
            .map_err(|e| Error::Invalid(format!("name: {e}")))?;
        let url = ServerUrl::try_from(input.url.trim().to_owned())
            .map_err(|e| Error::Invalid(format!("URL: {e}")))?;
        let style = input
            .style
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "auto")
            .map(Style::from_str)
            .transpose()
            .map_err(|e| Error::Invalid(format!("style: {e}")))?;
        let subscribe = channels(&input.subscribe)?;
        let token = input
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(t) = token
            && t.chars().any(char::is_whitespace)
        {
            return Err(Error::Invalid("token: must not contain spaces".into()));
        }
        let mut profile = self.load(name)?;
        let c = &mut profile.connection;
        c.url = Some(url);
        c.style = style;
        c.subscribe = subscribe;
        // The token first: a profile is never saved pointing at a server
        // with the token the user meant for it missing.
        if let Some(t) = token {
            credentials::set(name, &Token::new(t)).map_err(Error::keyring)?;
        } else if input.clear_token {
            credentials::delete(name).map_err(Error::keyring)?;
        }
        self.store.save(name, &profile).map_err(Error::profile)?;
        server(name, &profile).ok_or_else(|| Error::Invalid("URL: missing".into()))
    }

    /// Removes a profile's file and its token.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        if name == DEMO || name == CLI {
            return Err(Error::Invalid(format!(
                "{name:?} is the built-in connection: disconnect it instead"
            )));
        }
        self.store.remove(name).map_err(Error::profile)?;
        match credentials::delete(name) {
            Ok(_) => Ok(()),
            // The file is gone; a keyring that cannot be reached holds no
            // token of ours that anything would use.
            Err(credentials::CredentialError::Unavailable(why)) => {
                tracing::warn!(profile = %name, %why, "token not removed: no keyring");
                Ok(())
            }
            Err(e) => Err(Error::keyring(e)),
        }
    }

    /// Whether the keyring holds a token for `name`, or why it cannot say.
    pub fn has_token(&self, name: &str) -> Result<bool, String> {
        credentials::get(name)
            .map(|t| t.is_some())
            .map_err(|e| e.to_string())
    }

    /// The token to connect with; `None` (logged) when there is none or the
    /// keyring cannot be reached.
    pub fn token(&self, name: &str) -> Option<Token> {
        match credentials::get(name) {
            Ok(t) => t,
            Err(error) => {
                tracing::warn!(profile = %name, %error, "connecting without a token");
                None
            }
        }
    }

    /// The profile's preferences for Settings.
    pub fn view(&self, name: &str) -> Result<PrefsView, Error> {
        let (profile, text) = self.load_text(name)?;
        self.view_of(name, &profile, text)
    }

    /// Settings' view of `profile` as loaded, with its file's `text`
    /// (`None`: no file yet, shown as the defaults would be written).
    fn view_of(
        &self,
        name: &str,
        profile: &Profile,
        text: Option<String>,
    ) -> Result<PrefsView, Error> {
        let path = self.store.path(name).map_err(Error::profile)?;
        let text = match text {
            Some(t) => t,
            None => profile.to_toml().map_err(Error::profile)?,
        };
        Ok(PrefsView {
            profile: name.to_owned(),
            form: form_of(&profile.prefs),
            text,
            path: path.display().to_string(),
        })
    }

    /// Applies Settings' form to the stored preferences and saves them.
    /// Returns the new profile with its compiled rules.
    pub fn save_form(&self, name: &str, form: &PrefsForm) -> Result<(Profile, PrefsView), Error> {
        self.edit(name, |prefs| apply_form(prefs, form))
    }

    /// Changes a profile's preferences with `change`, saves the profile
    /// and reads it back (rules compiled).
    fn edit(
        &self,
        name: &str,
        change: impl FnOnce(&mut Prefs) -> Result<(), Error>,
    ) -> Result<(Profile, PrefsView), Error> {
        let mut profile = self.load(name)?;
        change(&mut profile.prefs)?;
        self.store.save(name, &profile).map_err(Error::profile)?;
        // Read back once: the rules compile with their lines in the file.
        let (saved, text) = self.load_text(name)?;
        let view = self.view_of(name, &saved, text)?;
        Ok((saved, view))
    }

    /// Saves the whole file as the user wrote it, after checking it.
    pub fn save_text(&self, name: &str, text: &str) -> Result<(Profile, PrefsView), Error> {
        let path = self.store.path(name).map_err(Error::profile)?;
        let parsed = Profile::from_toml(text, &path.display().to_string())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if name == DEMO && parsed.connection.url.is_some() {
            return Err(Error::Invalid(
                "the demo profile has no url: add a server as a new profile".into(),
            ));
        }
        let profile = self
            .store
            .save_text(name, text)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let view = self.view_of(name, &profile, Some(text.to_owned()))?;
        Ok((profile, view))
    }

    /// Snoozes `target` for `minutes`, or mutes it until removed (`None`).
    pub fn snooze(
        &self,
        name: &str,
        target: MuteTarget,
        minutes: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<(Profile, PrefsView), Error> {
        self.edit(name, |prefs| {
            match minutes {
                Some(0) => return Err(Error::Invalid("snooze: at least one minute".into())),
                Some(m) => prefs.snooze(target, Duration::from_secs(u64::from(m) * 60), now),
                None => prefs.mute(target),
            }
            Ok(())
        })
    }

    /// Removes a mute or snooze.
    pub fn unmute(&self, name: &str, target: &MuteTarget) -> Result<(Profile, PrefsView), Error> {
        self.edit(name, |prefs| {
            prefs.unmute(target);
            Ok(())
        })
    }
}

/// The library's default preferences, except that the list (and the inbox)
/// starts at warnings: the dashboards show every tick and score from the
/// live feed, and an inbox of market data would bury the alerts (40 events
/// a second in demo mode). Critical and emergency notify, as by default.
pub fn desktop_prefs() -> Prefs {
    let mut prefs = Prefs::default();
    prefs.severity.list = Severity::Warning;
    prefs
}

fn server(name: &str, profile: &Profile) -> Option<Server> {
    let c = &profile.connection;
    Some(Server {
        name: name.to_owned(),
        url: c.url.as_ref()?.as_str().to_owned(),
        style: c.style,
        subscribe: c.subscribe.clone(),
    })
}

fn channels(raw: &[String]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for c in raw.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if c.len() > 200 || c.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            return Err(Error::Invalid(format!(
                "channels: {c:?} is not a channel name (no spaces, at most 200 characters)"
            )));
        }
        if !out.iter().any(|o| o == c) {
            out.push(c.to_owned());
        }
    }
    if out.len() > MAX_SUBSCRIBE {
        return Err(Error::Invalid(format!("channels: at most {MAX_SUBSCRIBE}")));
    }
    Ok(out)
}

/// The part of the preferences Settings' form shows.
pub fn form_of(prefs: &Prefs) -> PrefsForm {
    PrefsForm {
        list: prefs.severity.list,
        notify: prefs.severity.notify,
        quiet_hours: prefs.quiet_hours.as_ref().map(|q| QuietHoursForm {
            start: q.start.format("%H:%M").to_string(),
            end: q.end.format("%H:%M").to_string(),
            timezone: q.timezone.name().to_owned(),
            allow: q.allow,
        }),
        rules: prefs.rules.iter().map(|r| r.get_ref().clone()).collect(),
        mutes: prefs
            .mute
            .iter()
            .map(|m| {
                let (kind, value) = match &m.target {
                    MuteTarget::Source(v) => ("source", v),
                    MuteTarget::Subject(v) => ("subject", v),
                    MuteTarget::Type(v) => ("type", v),
                    MuteTarget::Channel(v) => ("channel", v),
                };
                MuteView {
                    kind: kind.to_owned(),
                    value: value.clone(),
                    until: m.until,
                }
            })
            .collect(),
        keep_days: keep_days(prefs),
    }
}

/// `[inbox] keep` in whole days, rounded up (`None`: forever).
fn keep_days(prefs: &Prefs) -> Option<u32> {
    prefs.inbox.keep().map(|d| {
        let days = d.as_secs().div_ceil(86_400).max(1);
        u32::try_from(days).unwrap_or(u32::MAX)
    })
}

/// A mute's target from Settings' `kind` and `value`.
pub fn target(kind: &str, value: &str) -> Result<MuteTarget, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::Invalid(format!("{kind}: give a value to mute")));
    }
    let v = value.to_owned();
    Ok(match kind {
        "source" => MuteTarget::Source(v),
        "subject" => MuteTarget::Subject(v),
        "type" => MuteTarget::Type(v),
        "channel" => MuteTarget::Channel(v),
        other => {
            return Err(Error::Invalid(format!(
                "mute: {other:?} is not one of source, subject, type, channel"
            )));
        }
    })
}

/// Writes the form into `prefs`, checking each field; the message names
/// the field (and the rule's number and column).
pub fn apply_form(prefs: &mut Prefs, form: &PrefsForm) -> Result<(), Error> {
    prefs.severity.list = form.list;
    prefs.severity.notify = form.notify;
    prefs.quiet_hours = match &form.quiet_hours {
        None => None,
        Some(q) => {
            let time = |field: &str, s: &str| {
                NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
                    Error::Invalid(format!("quiet hours: {field} {s:?} is not a time (HH:MM)"))
                })
            };
            let start = time("start", &q.start)?;
            let end = time("end", &q.end)?;
            if start == end {
                return Err(Error::Invalid(
                    "quiet hours: start and end are the same time".into(),
                ));
            }
            let tz = chrono_tz::Tz::from_str(q.timezone.trim()).map_err(|_| {
                Error::Invalid(format!(
                    "quiet hours: time zone {:?} is not an IANA zone such as Europe/London",
                    q.timezone
                ))
            })?;
            Some(QuietHours::new(start, end, tz).allow(q.allow))
        }
    };
    let mut rules = Prefs::default();
    for (i, text) in form
        .rules
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .enumerate()
    {
        rules
            .add_rule(text)
            .map_err(|e| Error::Invalid(format!("rule {}: {e}", i + 1)))?;
    }
    prefs.rules = rules.rules;
    // A value the form cannot show exactly ("36h") stays unless changed.
    if form.keep_days != keep_days(prefs) {
        prefs.inbox.keep = match form.keep_days {
            None => HumanDuration(Duration::ZERO),
            Some(d @ 1..=PrefsForm::MAX_KEEP_DAYS) => {
                HumanDuration(Duration::from_secs(u64::from(d) * 86_400))
            }
            Some(d) => {
                return Err(Error::Invalid(format!(
                    "keep alerts: {d} days; give 1 to {} days, or keep them forever",
                    PrefsForm::MAX_KEEP_DAYS
                )));
            }
        };
    }
    // Mutes and snoozes change through `snooze` / `unmute` only: a form
    // opened before a snooze must not undo it when saved.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_and_keeps_what_it_does_not_show() {
        let text = r#"
url = "wss://risk.example/ws"
style = "trading"
subscribe = ["sessions:S1"]
rules = ["employee_stress: stress_rate > 40 => warning"]
[types]
market_data = false
[quiet_hours]
start = "22:00"
end = "07:00"
timezone = "Europe/London"
"#;
        let Profile {
            connection,
            mut prefs,
            ..
        } = Profile::from_toml(text, "p.toml").unwrap();
        let mut form = form_of(&prefs);
        assert_eq!(form.rules, ["employee_stress: stress_rate > 40 => warning"]);
        let q = form.quiet_hours.clone().unwrap();
        assert_eq!((q.start.as_str(), q.end.as_str()), ("22:00", "07:00"));
        assert_eq!(q.timezone, "Europe/London");
        form.notify = Severity::Warning;
        form.rules.push("  ".into());
        form.rules
            .push("riskUpdate: score >= 70 => critical".into());
        // The form's mutes are ignored: snooze / unmute own them.
        form.mutes.push(MuteView {
            kind: "type".into(),
            value: "tick".into(),
            until: None,
        });
        apply_form(&mut prefs, &form).unwrap();
        assert!(prefs.mute.is_empty());
        form.mutes.clear();
        assert_eq!(prefs.severity.notify, Severity::Warning);
        assert_eq!(prefs.rules.len(), 2, "the blank rule is dropped");
        assert_eq!(prefs.types.get("market_data"), Some(&false), "kept");
        let saved = Profile {
            connection,
            prefs,
            rules: Vec::new(),
        };
        assert_eq!(saved.connection.style, Some(Style::Trading), "kept");
        // What the form saved reads back as a valid file.
        let Profile {
            prefs: again,
            rules,
            ..
        } = Profile::from_toml(&saved.to_toml().unwrap(), "p.toml").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(form_of(&again), {
            let mut f = form.clone();
            f.rules.retain(|r| !r.trim().is_empty());
            f
        });
    }

    /// Settings' "keep alerts" is the file's `[inbox] keep` in days:
    /// 90 by default, "forever" as `off`, a value it cannot show exactly
    /// kept unless changed, and nonsense refused with the field's name.
    #[test]
    fn the_form_sets_how_long_the_inbox_keeps_alerts() {
        let mut prefs = desktop_prefs();
        let mut form = form_of(&prefs);
        assert_eq!(form.keep_days, Some(90));
        form.keep_days = Some(30);
        apply_form(&mut prefs, &form).unwrap();
        assert_eq!(prefs.inbox.keep(), Some(Duration::from_secs(30 * 86_400)));
        form.keep_days = None;
        apply_form(&mut prefs, &form).unwrap();
        assert_eq!(prefs.inbox.keep(), None);
        assert!(prefs.to_toml().unwrap().contains("keep = \"off\""));

        let (mut odd, _) = Prefs::from_toml("[inbox]\nkeep = \"36h\"\n", "p.toml").unwrap();
        let form = form_of(&odd);
        assert_eq!(form.keep_days, Some(2), "rounded up for the form");
        apply_form(&mut odd, &form).unwrap();
        assert_eq!(
            odd.inbox.keep(),
            Some(Duration::from_secs(36 * 3600)),
            "kept"
        );

        for bad in [0, PrefsForm::MAX_KEEP_DAYS + 1] {
            let mut form = form_of(&prefs);
            form.keep_days = Some(bad);
            let err = apply_form(&mut prefs, &form).unwrap_err().to_string();
            assert!(err.contains("keep alerts"), "{err}");
        }
    }

    #[test]
    fn form_errors_name_the_field() {
        let mut prefs = desktop_prefs();
        let mut form = form_of(&prefs);
        form.rules = vec!["a: x > 1 => warning".into(), "b: x >> 1".into()];
        let e = apply_form(&mut prefs, &form).unwrap_err().to_string();
        assert!(e.starts_with("rule 2:"), "{e}");
        form.rules.clear();
        form.quiet_hours = Some(QuietHoursForm {
            start: "25:00".into(),
            end: "07:00".into(),
            timezone: "UTC".into(),
            allow: Severity::Emergency,
        });
        let e = apply_form(&mut prefs, &form).unwrap_err().to_string();
        assert!(e.contains("quiet hours: start"), "{e}");
        form.quiet_hours = Some(QuietHoursForm {
            start: "22:00".into(),
            end: "07:00".into(),
            timezone: "Mars/Olympus".into(),
            allow: Severity::Emergency,
        });
        let e = apply_form(&mut prefs, &form).unwrap_err().to_string();
        assert!(e.contains("time zone"), "{e}");
        assert!(target("planet", "x").is_err());
        assert!(target("type", "  ").is_err());
        assert_eq!(
            target("channel", " c1 ").unwrap(),
            MuteTarget::Channel("c1".into())
        );
    }

    /// Everything that does not touch the keyring: bad names, URLs with
    /// credentials, unknown styles; the file, its text and the mutes.
    #[test]
    fn profiles_are_checked_stored_and_edited() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Profiles::at(dir.path());
        let input = |name: &str, url: &str, style: Option<&str>| ProfileInput {
            name: name.into(),
            url: url.into(),
            style: style.map(str::to_owned),
            subscribe: vec![" sessions:S1 ".into(), "".into(), "sessions:S1".into()],
            ..ProfileInput::default()
        };
        let err = |i: ProfileInput| profiles.save(&i).unwrap_err().to_string();
        assert!(err(input("demo", "ws://h/ws", None)).contains("reserved"));
        assert!(err(input("../x", "ws://h/ws", None)).starts_with("name:"));
        assert!(err(input("p", "https://h/ws", None)).starts_with("URL:"));
        for leaky in [
            "https://u:s3cret@h/ws",
            "ws://u:s3cret@[bad/ws",
            "wss://h/ws?jwt=s3cret",
        ] {
            let e = err(input("p", leaky, None));
            assert!(e.starts_with("URL:") && !e.contains("s3cret"), "{e}");
        }
        let e = err(input("p", "wss://h/ws?token=s3cret", None));
        assert!(e.contains("keyring") && !e.contains("s3cret"), "{e}");
        assert!(err(input("p", "ws://h/ws", Some("fax"))).starts_with("style:"));
        let mut spaced = input("p", "ws://h/ws", None);
        spaced.subscribe = vec!["a b".into()];
        assert!(err(spaced).starts_with("channels:"));
        assert!(profiles.names().unwrap().is_empty(), "nothing was written");

        let s = profiles
            .save(&input(
                "desk",
                "ws://127.0.0.1:9/api/v1/stream",
                Some("auto"),
            ))
            .unwrap();
        assert_eq!(s.subscribe, ["sessions:S1"]);
        assert!(s.style.is_none(), "auto means guessed");
        let servers = profiles.servers();
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].name, "desk");
        // New profiles start from the desktop's defaults.
        let view = profiles.view("desk").unwrap();
        assert_eq!(view.form.list, Severity::Warning);
        assert!(
            view.text
                .contains("url = \"ws://127.0.0.1:9/api/v1/stream\"")
        );

        let now = Utc::now();
        let (p, view) = profiles
            .snooze("desk", MuteTarget::Type("tick".into()), Some(60), now)
            .unwrap();
        assert_eq!(p.prefs.mute.len(), 1);
        assert_eq!(view.form.mutes[0].kind, "type");
        assert!(view.form.mutes[0].until.is_some());
        let (p, _) = profiles
            .unmute("desk", &MuteTarget::Type("tick".into()))
            .unwrap();
        assert!(p.prefs.mute.is_empty());

        let e = profiles
            .save_text("desk", "url = \"ws://h/ws\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("desk.toml:2:1"), "{e}");
        assert!(
            profiles
                .save_text("desk", "url = \"ws://h/ws\"\nstyle = \"fax\"\n")
                .is_err()
        );
        assert!(profiles.save_text("demo", "url = \"ws://h/ws\"\n").is_err());
        let (p, _) = profiles
            .save_text("desk", "# mine\nurl = \"ws://h/ws\"\n")
            .unwrap();
        assert_eq!(p.connection.url.unwrap().as_str(), "ws://h/ws");
        assert!(profiles.view("desk").unwrap().text.starts_with("# mine"));

        // A broken file is skipped, not fatal for the others.
        std::fs::write(dir.path().join("broken.toml"), "url = [").unwrap();
        assert_eq!(profiles.servers().len(), 1);
    }
}
