//! Server profiles on disk: one TOML file per profile holding where to
//! connect ([`Connection`]: URL, backend style, channels) and the alert
//! preferences ([`Prefs`], the engine's pure model), and the store of those
//! files in the OS config directory.
//!
//! The files live in `~/.config/riskwatch/profiles/<profile>.toml` on Linux
//! (the platform's equivalent elsewhere, see
//! [`ProfileStore::default_location`]). The token is never here: it lives in
//! the OS keyring (`crate::credentials`), and a URL that carries one is
//! rejected.
//!
//! Loading validates everything, and every error names the line and column
//! of the offending value. Saving writes a temporary file beside the
//! target, syncs it and renames it over the old one, so a crash leaves the
//! old file or the new one, never half of each. [`ProfileStore::save`]
//! drops comments; [`ProfileStore::save_text`] keeps the text as written.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::prefs::{Prefs, PrefsError};
use crate::engine::rules::Rule;
use crate::protocol::Style;

/// Why a profile could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file is not valid (a user error: the message names the place to
    /// fix), or the preferences could not be written as TOML (a bug).
    #[error(transparent)]
    Prefs(#[from] PrefsError),
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A profile name that cannot be a file name. A misuse.
    #[error(
        "bad profile name {0:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadProfileName(String),
    /// The platform has no config directory (no home directory). Fatal for
    /// profiles; an explicit `--prefs FILE` still works.
    #[error("no configuration directory on this system (is HOME set?)")]
    NoConfigDir,
}

impl ProfileError {
    /// Whether the user can fix this by editing the file or the name.
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            ProfileError::Prefs(PrefsError::Invalid { .. }) | ProfileError::BadProfileName(_)
        )
    }
}

/// Where a profile connects. Every field is optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Connection {
    /// The server's WebSocket URL (no credentials in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<ServerUrl>,
    /// Backend style override (`merchant`, `trading`, …); default guessed
    /// from the URL's path.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "style_name"
    )]
    pub style: Option<Style>,
    /// Channels to subscribe to once connected (native and trading styles),
    /// e.g. `["sessions:demo", "market:SPY"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
}

/// A style by name, any case, as `--style` takes it.
fn style_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Style>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// One profile file: its connection, its preferences and their compiled
/// rules.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub connection: Connection,
    pub prefs: Prefs,
    pub rules: Vec<Rule>,
}

impl Profile {
    /// A profile with these preferences and no connection.
    pub fn new(prefs: Prefs, rules: Vec<Rule>) -> Profile {
        Profile {
            connection: Connection::default(),
            prefs,
            rules,
        }
    }

    /// Parses and validates a profile file. `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let connection: Connection =
            toml::from_str(text).map_err(|e| PrefsError::from_toml(text, origin, &e))?;
        let (prefs, rules) = Prefs::from_toml(text, origin)?;
        Ok(Profile {
            connection,
            prefs,
            rules,
        })
    }

    /// The profile as TOML text: the connection first, then the
    /// preferences. Comments are not kept.
    pub fn to_toml(&self) -> Result<String, ProfileError> {
        #[derive(Serialize)]
        struct File<'a> {
            #[serde(flatten)]
            connection: &'a Connection,
            #[serde(flatten)]
            prefs: &'a Prefs,
        }
        let file = File {
            connection: &self.connection,
            prefs: &self.prefs,
        };
        toml::to_string_pretty(&file).map_err(|e| PrefsError::Serialize(e.to_string()).into())
    }
}

/// A server URL that carries no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<ServerUrl> for String {
    fn from(u: ServerUrl) -> String {
        u.0
    }
}

impl TryFrom<String> for ServerUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        // Errors never quote the URL: it may carry a password or a token.
        let u = url::Url::parse(s.trim()).map_err(|e| format!("url: {e}"))?;
        if !matches!(u.scheme(), "ws" | "wss") {
            return Err(format!(
                "url must start with ws:// or wss://, not {}://",
                u.scheme()
            ));
        }
        const SECRET_KEYS: [&str; 6] =
            ["token", "access_token", "auth", "jwt", "api_key", "apikey"];
        let has_token = u
            .query_pairs()
            .any(|(k, _)| SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)));
        if has_token || u.password().is_some() || !u.username().is_empty() {
            return Err(
                "url carries credentials: keep the token in the OS keyring (riskwatch login PROFILE), not in this file"
                    .into(),
            );
        }
        Ok(ServerUrl(u.to_string()))
    }
}

/// Reads and validates a profile file. A missing file is an error here;
/// [`ProfileStore::load`] treats a missing profile file as defaults.
pub fn load_file(path: &Path) -> Result<Profile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| io_error(path, source))?;
    Profile::from_toml(&text, &path.display().to_string())
}

/// Writes a profile atomically: a temporary file in the same directory,
/// flushed and synced, then renamed over `path`; the directory is synced
/// too where the platform allows it.
pub fn save_file(path: &Path, profile: &Profile) -> Result<(), ProfileError> {
    let text = profile.to_toml()?;
    write_atomic(path, text.as_bytes()).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> ProfileError {
    ProfileError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".riskwatch-prefs-")
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        // Makes the rename itself durable; failure here loses nothing that
        // a reader could see, so it is not an error.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Changes the mutes and snoozes of a profile file's `text` with
/// `change` (on its preferences: [`Prefs::snooze`], [`Prefs::mute`],
/// [`Prefs::unmute`]) and returns the new text with `change`'s answer.
/// Only the `[[mute]]` entries are rewritten; everything else stays as
/// written, comments included. The result is validated as a whole.
pub fn edit_mutes<T>(
    text: &str,
    origin: &str,
    change: impl FnOnce(&mut Prefs) -> T,
) -> Result<(String, T), ProfileError> {
    let (mut prefs, _) = Prefs::from_toml(text, origin)?;
    let answer = change(&mut prefs);
    // Valid TOML: `from_toml` read it.
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| PrefsError::Serialize(e.to_string()))?;
    if prefs.mute.is_empty() {
        doc.remove("mute");
    } else {
        #[derive(Serialize)]
        struct Mutes<'a> {
            mute: &'a [crate::engine::prefs::Mute],
        }
        let fresh: toml_edit::DocumentMut = toml::to_string(&Mutes { mute: &prefs.mute })
            .map_err(|e| PrefsError::Serialize(e.to_string()))?
            .parse()
            .map_err(|e: toml_edit::TomlError| PrefsError::Serialize(e.to_string()))?;
        if let Some(mut list) = fresh.get("mute").cloned() {
            // A blank line before each entry, as a person writes them.
            if let Some(tables) = list.as_array_of_tables_mut() {
                for t in tables.iter_mut() {
                    t.decor_mut().set_prefix("\n");
                }
            }
            doc.insert("mute", list);
        }
    }
    let out = doc.to_string();
    Profile::from_toml(&out, origin)?;
    Ok((out, answer))
}

/// [`edit_mutes`] on a file, saved atomically. A missing file is an
/// error: a mute in a file of its own would replace whatever defaults the
/// profile had without one. Returns the saved profile and `change`'s
/// answer.
pub fn edit_mutes_in_file<T>(
    path: &Path,
    change: impl FnOnce(&mut Prefs) -> T,
) -> Result<(Profile, T), ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| io_error(path, source))?;
    let origin = path.display().to_string();
    let (out, answer) = edit_mutes(&text, &origin, change)?;
    write_atomic(path, out.as_bytes()).map_err(|source| io_error(path, source))?;
    Ok((Profile::from_toml(&out, &origin)?, answer))
}

/// What a file looked like when last seen: a change of it, by an editor's
/// save, a rename over it, `riskwatch snooze` or the desktop's Settings,
/// changes the stamp. `None`: there is no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp(Option<(std::time::SystemTime, u64, u64)>);

impl FileStamp {
    pub fn of(path: &Path) -> FileStamp {
        let meta = std::fs::metadata(path).ok();
        FileStamp(meta.map(|m| {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            (
                m.modified().unwrap_or(std::time::UNIX_EPOCH),
                m.len(),
                inode,
            )
        }))
    }
}

/// Checks a profile name: it becomes a file name and a keyring user.
pub fn check_profile_name(name: &str) -> Result<(), ProfileError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ProfileError::BadProfileName(name.to_owned()))
    }
}

/// Where profile files live: `<dir>/<profile>.toml`.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    dir: PathBuf,
}

impl ProfileStore {
    /// The OS config directory's `profiles/` folder:
    /// `$XDG_CONFIG_HOME/riskwatch/profiles` (default `~/.config/…`) on
    /// Linux, `~/Library/Application Support/riskwatch/profiles` on macOS,
    /// `%APPDATA%\riskwatch\config\profiles` on Windows.
    pub fn default_location() -> Result<ProfileStore, ProfileError> {
        let dirs =
            directories::ProjectDirs::from("", "", "riskwatch").ok_or(ProfileError::NoConfigDir)?;
        Ok(ProfileStore {
            dir: dirs.config_dir().join("profiles"),
        })
    }

    /// Profiles in `dir` (tests, portable installs).
    pub fn at(dir: impl Into<PathBuf>) -> ProfileStore {
        ProfileStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for a profile.
    pub fn path(&self, profile: &str) -> Result<PathBuf, ProfileError> {
        check_profile_name(profile)?;
        Ok(self.dir.join(format!("{profile}.toml")))
    }

    /// A profile; defaults when it has no file yet.
    pub fn load(&self, profile: &str) -> Result<Profile, ProfileError> {
        Ok(self.load_text(profile)?.0)
    }

    /// A profile and its file's text as written; `None` for the text when
    /// it has no file yet (and the profile is the defaults).
    pub fn load_text(&self, profile: &str) -> Result<(Profile, Option<String>), ProfileError> {
        let path = self.path(profile)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((
                Profile::from_toml(&text, &path.display().to_string())?,
                Some(text),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Profile::default(), None)),
            Err(source) => Err(io_error(&path, source)),
        }
    }

    /// Saves a profile atomically.
    pub fn save(&self, profile: &str, p: &Profile) -> Result<(), ProfileError> {
        save_file(&self.path(profile)?, p)
    }

    /// Validates `text` as a profile's file and saves it as it is
    /// (comments and layout kept), atomically. Errors name the line and
    /// column in the profile's file.
    pub fn save_text(&self, profile: &str, text: &str) -> Result<Profile, ProfileError> {
        let path = self.path(profile)?;
        let parsed = Profile::from_toml(text, &path.display().to_string())?;
        write_atomic(&path, text.as_bytes()).map_err(|source| io_error(&path, source))?;
        Ok(parsed)
    }

    /// The profiles that have a file here, sorted. Files whose names are not
    /// profile names are ignored; a missing directory means none.
    pub fn list(&self) -> Result<Vec<String>, ProfileError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&self.dir, source)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".toml")?;
                check_profile_name(stem).ok()?;
                Some(stem.to_owned())
            })
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// Removes a profile's file; true when there was one.
    pub fn remove(&self, profile: &str) -> Result<bool, ProfileError> {
        let path = self.path(profile)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(io_error(&path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::engine::prefs::MuteTarget;

    #[test]
    fn mutes_are_edited_in_place_and_the_rest_is_kept_as_written() {
        let text = "# the desk's profile\nurl = \"wss://hub.example/ws\"  # production\n\n\
                    [severity]\n# quieter\nlist = \"warning\"\n\n\
                    [[mute]]\ntype = \"tick\"\n\n[quiet_hours]\nstart = \"22:00\"\nend = \"07:00\"\ntimezone = \"UTC\"\n";
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let (out, ()) = edit_mutes(text, "p.toml", |p| {
            p.snooze(
                MuteTarget::Channel("sessions:S9".into()),
                std::time::Duration::from_secs(1800),
                now,
            )
        })
        .unwrap();
        for kept in [
            "# the desk's profile",
            "# production",
            "# quieter",
            "[quiet_hours]",
            "start = \"22:00\"",
        ] {
            assert!(out.contains(kept), "{kept:?} lost:\n{out}");
        }
        let p = Profile::from_toml(&out, "p.toml").unwrap();
        assert_eq!(p.prefs.severity.list, Severity::Warning);
        assert_eq!(p.prefs.mute.len(), 2, "{out}");
        assert_eq!(p.prefs.mute[0].target, MuteTarget::Type("tick".into()));
        assert_eq!(
            p.prefs.mute[1].until,
            Some(now + chrono::Duration::minutes(30))
        );

        // The last one gone: no [[mute]] left, the rest still as written.
        let (out, removed) = edit_mutes(&out, "p.toml", |p| {
            p.unmute(&MuteTarget::Type("tick".into()))
                && p.unmute(&MuteTarget::Channel("sessions:S9".into()))
        })
        .unwrap();
        assert!(removed);
        assert!(!out.contains("[[mute]]"), "{out}");
        assert!(
            out.contains("# quieter") && out.contains("[quiet_hours]"),
            "{out}"
        );
        assert!(
            Profile::from_toml(&out, "p.toml")
                .unwrap()
                .prefs
                .mute
                .is_empty()
        );
    }

    #[test]
    fn a_bad_file_is_not_edited_and_says_where() {
        let err = edit_mutes("[severity]\nlist = \"loud\"\n", "p.toml", |p| {
            p.mute(MuteTarget::Type("x".into()))
        })
        .unwrap_err();
        assert!(
            err.is_invalid() && err.to_string().contains("p.toml:2"),
            "{err}"
        );
    }

    #[test]
    fn a_file_saved_over_changes_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let none = FileStamp::of(&path);
        assert!(edit_mutes_in_file(&path, |p| p.mute(MuteTarget::Type("x".into()))).is_err());
        std::fs::write(&path, "").unwrap();
        let first = FileStamp::of(&path);
        assert_ne!(none, first);
        assert_eq!(first, FileStamp::of(&path), "unchanged");
        edit_mutes_in_file(&path, |p| p.mute(MuteTarget::Type("x".into()))).unwrap();
        assert_ne!(first, FileStamp::of(&path), "renamed over");
    }

    fn invalid(text: &str) -> (usize, usize, String) {
        match Profile::from_toml(text, "p.toml") {
            Err(ProfileError::Prefs(PrefsError::Invalid {
                line,
                column,
                message,
                ..
            })) => (line, column, message),
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
    }

    #[test]
    fn connection_and_preferences_share_one_file() {
        let text = "url = \"wss://risk.example.com/ws/alerts\"\nstyle = \"Trading\"\nsubscribe = [\"sessions:S1\"]\n[severity]\nnotify = \"warning\"\n";
        let p = Profile::from_toml(text, "p.toml").unwrap();
        assert_eq!(
            p.connection.url.as_ref().map(ServerUrl::as_str),
            Some("wss://risk.example.com/ws/alerts")
        );
        assert_eq!(p.connection.style, Some(Style::Trading));
        assert_eq!(p.connection.subscribe, ["sessions:S1"]);
        assert_eq!(p.prefs.severity.notify, Severity::Warning);
        // And back: what is saved loads to the same profile.
        let again = Profile::from_toml(&p.to_toml().unwrap(), "again").unwrap();
        assert_eq!(again.connection, p.connection);
        assert_eq!(again.prefs, p.prefs);
        assert!(
            p.to_toml().unwrap().contains("style = \"trading\""),
            "{}",
            p.to_toml().unwrap()
        );
    }

    #[test]
    fn an_unknown_style_names_its_line() {
        let (line, col, msg) = invalid("\nstyle = \"fix\"\n");
        assert_eq!((line, col), (2, 9), "{msg}");
        assert!(msg.contains("unknown backend style"), "{msg}");
    }

    #[test]
    fn a_token_in_the_url_is_refused() {
        let (line, _, msg) = invalid("\n\nurl = \"wss://h/ws?token=s3cret\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("keyring"), "{msg}");
        assert!(
            !msg.contains("s3cret"),
            "the error repeats the secret: {msg}"
        );
        let (_, _, msg) = invalid("token = \"abc\"\n");
        assert!(msg.contains("token"), "{msg}");
    }

    #[test]
    fn store_saves_atomically_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles"));
        // No file yet: defaults.
        assert_eq!(store.load("desk").unwrap().prefs, Prefs::default());
        assert!(store.load_text("desk").unwrap().1.is_none(), "no file");
        let mut p = Prefs::default();
        p.severity.notify = Severity::Warning;
        p.add_rule("riskUpdate: score >= 70 => critical").unwrap();
        store
            .save("desk", &Profile::new(p.clone(), Vec::new()))
            .unwrap();
        let loaded = store.load("desk").unwrap();
        assert_eq!(loaded.prefs.severity.notify, Severity::Warning);
        assert_eq!(loaded.rules.len(), 1);
        // Nothing but the profile file is left behind.
        let names: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["desk.toml".to_owned()]);
        assert!(matches!(
            store.path("../etc/passwd"),
            Err(ProfileError::BadProfileName(_))
        ));
        assert!(p.add_rule("riskUpdate score >= 70").is_err());
    }

    #[test]
    fn store_lists_saves_text_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::at(dir.path().join("profiles"));
        assert!(store.list().unwrap().is_empty(), "no directory yet");
        let text = "# desk\nurl = \"wss://risk.example/ws\"\nsubscribe = [\"sessions:S1\"]\n";
        let p = store.save_text("desk", text).unwrap();
        assert_eq!(p.connection.subscribe, ["sessions:S1"]);
        assert_eq!(
            std::fs::read_to_string(store.path("desk").unwrap()).unwrap(),
            text,
            "saved as written, comment included"
        );
        assert_eq!(store.load_text("desk").unwrap().1.as_deref(), Some(text));
        // An invalid text is refused with its place and changes nothing.
        let err = store
            .save_text("desk", "url = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("desk.toml:1:7"), "{err}");
        assert_eq!(
            std::fs::read_to_string(store.path("desk").unwrap()).unwrap(),
            text
        );
        store.save("b-2", &Profile::default()).unwrap();
        std::fs::write(store.dir().join(".hidden.toml"), "").unwrap();
        std::fs::write(store.dir().join("notes.txt"), "").unwrap();
        assert_eq!(store.list().unwrap(), ["b-2", "desk"]);
        assert!(store.remove("desk").unwrap());
        assert!(!store.remove("desk").unwrap());
        assert_eq!(store.list().unwrap(), ["b-2"]);
    }
}
