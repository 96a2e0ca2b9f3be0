use super::*;

const MAX: usize = 64;

fn canonical(app: &str, name: &str) -> Result<(String, String), NameError> {
    Resource::canonical(app, name, MAX).map(|r| (r.app, r.name))
}

#[test]
fn every_split_of_one_path_is_one_resource() {
    let want = Ok(("live".to_owned(), "a/b/cam".to_owned()));
    // ffmpeg's split, librtmp's split, and the app alone.
    assert_eq!(canonical("live/a", "b/cam"), want);
    assert_eq!(canonical("live/a/b", "cam"), want);
    assert_eq!(canonical("live", "a/b/cam"), want);
    assert_eq!(canonical("live", "cam"), Ok(("live".into(), "cam".into())));
}

#[test]
fn names_that_could_mean_two_things_are_refused() {
    for (app, name) in [
        ("live", "../x"),
        ("live", "x/.."),
        ("live", "./x"),
        ("live", "a//b"),
        ("live", "/x"),
        ("live", "x/"),
        ("live", "c%61m"),
        ("live", "x%2Fcam"),
        ("live", "cam#x"),
        ("live", "cam?x"),
        ("live", "a\\b"),
        ("live", "a b"),
        ("live", "a\u{1}b"),
        ("live", "a\nb"),
        ("live", "a\u{2028}b"),
        ("live", ""),
        ("live/..", "cam"),
        ("live%2Fx", "cam"),
        ("live#x", "cam"),
        ("live/", "cam"),
        ("", "cam"),
        ("..", "cam"),
    ] {
        assert!(canonical(app, name).is_err(), "{app:?} + {name:?}");
    }
}

#[test]
fn lengths_are_bounded_per_part() {
    assert!(canonical("live", &"x".repeat(MAX)).is_ok());
    assert!(canonical("live", &"x".repeat(MAX + 1)).is_err());
    assert!(canonical(&"x".repeat(MAX + 1), "cam").is_err());
    // Within bounds apart, too long joined.
    let app = format!("live/{}", "a".repeat(40));
    assert_eq!(
        canonical(&app, &"b".repeat(40)),
        Err(NameError::TooLong {
            what: "stream name",
            max: MAX
        })
    );
}

#[test]
fn a_redirect_stays_in_its_app() {
    let r = Resource::canonical("live", "cam", MAX).expect("valid");
    let moved = r.renamed("/other/cam2", MAX).expect("valid redirect");
    assert_eq!(
        (moved.app.as_str(), moved.name.as_str()),
        ("live", "other/cam2")
    );
    for bad in [
        "../priv/cam",
        "x/../../priv",
        "cam?key=1",
        "cam#x",
        "c%61m",
        "",
        "/",
        "a//b",
    ] {
        assert!(r.renamed(bad, MAX).is_err(), "{bad:?}");
    }
}

#[test]
fn escaped_strings_cannot_break_a_log_line() {
    let s = Esc("a\nb\rc\u{1b}[31md\te\\f\u{2028}g'\"h").to_string();
    assert_eq!(s, "a\\nb\\rc\\u{1b}[31md\\te\\\\f\\u{2028}g'\"h");
    assert!(!s.chars().any(char::is_control));
    assert_eq!(Esc("live/cam").to_string(), "live/cam");
}
