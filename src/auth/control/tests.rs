use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn cidr_blocks_parse_and_match_v4_v6_and_mapped() {
    let net = IpNet::parse("192.0.2.77/24").expect("v4");
    assert_eq!(net.to_string(), "192.0.2.0/24");
    assert!(net.contains(ip("192.0.2.1")) && net.contains(ip("::ffff:192.0.2.200")));
    assert!(!net.contains(ip("192.0.3.1")) && !net.contains(ip("2001:db8::1")));
    let one = IpNet::parse("127.0.0.1").expect("host");
    assert_eq!(one.to_string(), "127.0.0.1/32");
    assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
    let v6 = IpNet::parse("2001:db8:abcd::1/48").expect("v6");
    assert_eq!(v6.to_string(), "2001:db8:abcd::/48");
    assert!(v6.contains(ip("2001:db8:abcd:ffff::9")) && !v6.contains(ip("2001:db8:abce::1")));
    assert_eq!(
        IpNet::parse("::ffff:10.1.2.3/120")
            .expect("mapped")
            .to_string(),
        "10.1.2.0/24"
    );
    assert!(IpNet::parse("0.0.0.0/0")
        .expect("all")
        .contains(ip("8.8.8.8")));
    assert!(!IpNet::parse("0.0.0.0/0")
        .expect("all v4")
        .contains(ip("::1")));
    for bad in [
        "",
        "1.2.3.4/33",
        "::1/129",
        "1.2.3/8",
        "1.2.3.4/",
        "1.2.3.4/+8",
        "host/8",
        "1.2.3.4/8/9",
    ] {
        assert!(IpNet::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn keys_and_bans_survive_a_reopen_and_expired_bans_go() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("state/control.json");
    let path_text = path.display().to_string();
    let control = Control::open(&path_text).expect("open");
    let (k, new) = control
        .add_key("live", KeyAction::Publish, "abc-1", "cam 1")
        .expect("add");
    assert!(new && k.key == "abc-1");
    assert!(
        !control
            .add_key("live", KeyAction::Publish, "abc-1", "")
            .expect("again")
            .1
    );
    assert!(control.add_key("live/x", KeyAction::Play, "k", "").is_err());
    assert!(control.add_key("live", KeyAction::Play, "a&b", "").is_err());
    let ban = control
        .ban(
            BanTarget::Ip(IpNet::parse("10.0.0.0/8").expect("net")),
            None,
            "abuse",
        )
        .expect("ban");
    let short = control
        .ban(BanTarget::Key("abc-1".into()), Some(unix_ms() + 150), "")
        .expect("ban key");
    assert!(control.ip_ban(ip("10.9.9.9")).is_some());
    assert!(control
        .stream_ban(Action::Play, "live/x", Some("abc-1"))
        .is_some());
    assert!(control
        .ban(BanTarget::Key("x".into()), Some(unix_ms() - 1), "")
        .is_err());
    // The file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = Control::open(&path_text).expect("reopen");
    assert_eq!(again.keys(), control.keys());
    assert_eq!(again.bans().len(), 2);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(again
        .stream_ban(Action::Play, "live/x", Some("abc-1"))
        .is_none());
    assert_eq!(
        Control::open(&path_text).expect("reopen").bans(),
        vec![ban.clone()]
    );
    // Ids are not reused after a restart.
    let next = again
        .ban(BanTarget::Stream("live/cam".into()), None, "")
        .expect("ban stream");
    assert!(next.id > short.id);
    assert!(again
        .stream_ban(Action::Publish, "live/cam", None)
        .is_some());
    assert!(again.stream_ban(Action::Play, "live/cam", None).is_none());
    assert!(again.lift(next.id).expect("lift") && !again.lift(next.id).expect("lift again"));
    let mut rules = crate::auth::AuthRules {
        publish: crate::auth::AuthMode::Key,
        play: crate::auth::AuthMode::Open,
        publish_keys: vec!["cfg".into()],
        play_keys: vec![],
        on_publish: String::new(),
        on_play: String::new(),
        on_done: String::new(),
        shared_objects: crate::auth::SharedObjectMode::Auto,
        shared_object_keys: vec![],
        on_shared_object: String::new(),
    };
    again.extend_rules("live", &mut rules);
    assert_eq!(
        rules.publish_keys,
        vec!["cfg".to_owned(), "abc-1".to_owned()]
    );
    assert!(again
        .revoke_key("live", KeyAction::Publish, "abc-1")
        .expect("revoke"));
    assert!(Control::open(&path_text).expect("reopen").keys().is_empty());
    // A corrupt file is an error, not an empty list: its bans would be lost.
    std::fs::write(&path, "{not json").expect("corrupt");
    assert!(Control::open(&path_text).is_err());
    // ... and a reload keeps what runs.
    again.reload(&path_text);
    assert_eq!(again.bans().len(), 1);
}
