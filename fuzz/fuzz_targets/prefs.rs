//! A preferences or profile file as found on disk (hand-edited, torn,
//! from another version): `Prefs::from_toml` and `Profile::from_toml` must
//! answer with the settings or one error, never panic. What loads must save
//! and load again to the same preferences (Settings saves what it loaded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use riskwatch::engine::Prefs;
use riskwatch::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((prefs, _rules)) = Prefs::from_toml(text, "fuzz.toml") {
        let saved = prefs.to_toml().expect("loaded preferences save");
        let (again, _) = Prefs::from_toml(&saved, "saved.toml")
            .unwrap_or_else(|e| panic!("saved preferences do not load: {e}\n{saved}"));
        assert_eq!(again, prefs, "{saved}");
    }
    if let Ok(profile) = Profile::from_toml(text, "fuzz.toml") {
        let saved = profile.to_toml().expect("a loaded profile saves");
        let again = Profile::from_toml(&saved, "saved.toml")
            .unwrap_or_else(|e| panic!("a saved profile does not load: {e}\n{saved}"));
        assert_eq!(again.prefs, profile.prefs, "{saved}");
        assert_eq!(again.connection, profile.connection, "{saved}");
    }
});
