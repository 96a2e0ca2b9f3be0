//! The deployment kit, checked offline: the Kubernetes manifests (deploy/kubernetes) against
//! the API schemas (`kubernetes-validate --strict`, PyPI) and against the configuration they
//! carry (the ConfigMap's file is loaded by the built binary, with the Deployment's
//! environment, and its ports, probes, drain time, Redis address and writable paths must
//! match the manifests; the same file then starts a server that answers the probed paths);
//! the systemd unit (deploy/systemd) with `systemd-analyze verify` and its limits against the
//! default configuration; and the `toml` examples and configuration keys the nginx-rtmp
//! migration page names, against the binary.
//!
//! Each check also runs on a deliberately broken copy (a missing readiness probe, a wrong
//! port, a typo'd unit key, ...) and must catch it. Without python3, kubernetes-validate,
//! systemd-analyze or redis-server a test is skipped with a message, or fails when
//! `TEST_REQUIRE_RTMP_CLIENTS` is set (CI, .ci/run installs them).

use crate::common;

#[path = "deploy/kube.rs"]
mod kube;
#[path = "deploy/systemd.rs"]
mod systemd;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{free_port, Proc};

/// Kubernetes versions the manifests are validated against: the oldest we claim to support
/// and the newest kubernetes-validate (pinned in .ci/run) ships schemas for.
const K8S_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kube_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn reflector_exe() -> &'static str {
    env!("CARGO_BIN_EXE_reflector")
}

/// The resource files kustomization.yaml lists; every other `.yaml` of the directory must be
/// one of them (a manifest left out of the kustomization would never be applied).
fn resource_files() -> Vec<PathBuf> {
    let kustomization = yaml_docs(&[kube_dir().join("kustomization.yaml")]);
    let listed: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .expect("kustomization.yaml: resources")
        .iter()
        .map(|r| r.as_str().expect("resource is a file name").to_owned())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(kube_dir())
        .expect("read deploy/kubernetes")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, present, "kustomization.yaml resources vs files");
    listed.iter().map(|n| kube_dir().join(n)).collect()
}

/// Whether python3 lacks PyYAML (which kubernetes-validate brings): a skip with a message,
/// or a failure when the clients are required, like a missing client binary.
fn skip_without_pyyaml() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import yaml"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return false;
    }
    let test = common::current_test_name();
    if std::env::var_os(common::REQUIRE_CLIENTS_ENV).is_some() {
        panic!("{test}: python3 has no PyYAML (pip install kubernetes-validate)");
    }
    eprintln!("SKIP {test}: python3 has no PyYAML (pip install kubernetes-validate)");
    true
}

/// Every YAML document of `files`, as JSON (python3's PyYAML, which kubernetes-validate
/// brings; no YAML crate in this project).
fn yaml_docs(files: &[PathBuf]) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]\n\
        json.dump(docs, sys.stdout)";
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("yaml as json")
}

/// `kubernetes-validate --strict` over `files` against `version`: (passed, output).
fn kubernetes_validate(version: &str, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", version])
        .args(files)
        .stdin(Stdio::null())
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    skip_unless_have!("python3", "kubernetes-validate");
    if skip_without_pyyaml() {
        return;
    }
    let files = resource_files();
    let documents = yaml_docs(&files).len();
    for version in K8S_VERSIONS {
        let (ok, text) = kubernetes_validate(version, &files);
        let passed = text.lines().filter(|l| l.contains(" passed for ")).count();
        eprintln!("kubernetes {version}: {passed}/{documents} resources passed");
        assert!(ok, "kubernetes-validate --strict -k {version}:\n{text}");
        assert_eq!(passed, documents, "every resource validated:\n{text}");
    }
    // The validator catches what a typo would do: a misspelt field is silently dropped by a
    // lenient apply, leaving the pod without its readiness probe.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(kube_dir().join("deployment.yaml")).expect("read");
    assert!(text.contains("readinessProbe:"));
    std::fs::write(&broken, text.replace("readinessProbe:", "readinesProbe:")).expect("write");
    let (ok, out) = kubernetes_validate(K8S_VERSIONS[0], &[broken]);
    assert!(
        !ok && out.contains("readinesProbe"),
        "typo not caught:\n{out}"
    );
}

#[test]
fn kubernetes_manifests_agree_with_their_configuration() {
    skip_unless_have!("python3");
    if skip_without_pyyaml() {
        return;
    }
    let docs = yaml_docs(&resource_files());
    let problems = kube::problems(&docs, reflector_exe());
    assert!(problems.is_empty(), "manifests: {problems:#?}");

    // Each of these breaks one thing the check must notice (the pointer into the documents,
    // the new value, and a word the problem must mention).
    let deploy = kube::index(&docs, "Deployment", "reflector");
    let cm = kube::index(&docs, "ConfigMap", "reflector-config");
    let rtmp = kube::index(&docs, "Service", "reflector-rtmp");
    let admin = kube::index(&docs, "Service", "reflector-admin");
    let redis = kube::index(&docs, "Service", "reflector-redis");
    let netpol = kube::index(&docs, "NetworkPolicy", "reflector-redis");
    let c = "/spec/template/spec/containers/0";
    let toml = docs[cm]["data"]["reflector.toml"].as_str().expect("toml");
    #[rustfmt::skip]
    let cases: Vec<(usize, String, Value, &str)> = vec![
        (deploy, format!("{c}/readinessProbe"), Value::Null, "readinessProbe"),
        (deploy, format!("{c}/readinessProbe/httpGet/port"), 8081.into(), "readinessProbe"),
        (deploy, format!("{c}/livenessProbe/httpGet/path"), "/health".into(), "livenessProbe"),
        (deploy, format!("{c}/ports/0/containerPort"), 1936.into(), "1935"),
        (deploy, format!("{c}/args/1"), "/etc/reflector.toml".into(), "--config"),
        (deploy, format!("{c}/lifecycle"), Value::Null, "preStop"),
        (deploy, "/spec/template/spec/terminationGracePeriodSeconds".into(), 10.into(),
            "terminationGracePeriodSeconds"),
        (deploy, format!("{c}/securityContext/readOnlyRootFilesystem"), false.into(),
            "readOnlyRootFilesystem"),
        (deploy, format!("{c}/volumeMounts/1"), Value::Null, "shared_objects.dir"),
        (deploy, format!("{c}/resources"), Value::Null, "resources"),
        (deploy, format!("{c}/env/0"), Value::Null, "admin.token"),
        (rtmp, "/spec/ports/0/targetPort".into(), "admin".into(), "reflector-rtmp"),
        (admin, "/spec/type".into(), "LoadBalancer".into(), "reflector-admin"),
        (admin, "/spec/selector/app.kubernetes.io~1component".into(), "discovery".into(),
            "selector"),
        (redis, "/spec/ports/0/port".into(), 6380.into(), "redis"),
        (netpol, "/spec/ingress/0/from/0/podSelector/matchLabels/app.kubernetes.io~1component".into(),
            "discovery".into(), "NetworkPolicy"),
        (cm, "/data/reflector.toml".into(),
            toml.replace("[cluster]", "[live]\ngop_cach = true\n[cluster]").into(), "gop_cach"),
        (cm, "/data/reflector.toml".into(),
            toml.replace("0.0.0.0:8080", "127.0.0.1:8080").into(), "loopback"),
    ];
    let mut caught_count = 0;
    for (doc, pointer, value, word) in cases {
        let mut broken = docs.clone();
        kube::set(&mut broken[doc], &pointer, value.clone());
        let found = kube::problems(&broken, reflector_exe());
        let Some(caught) = found.iter().find(|p| p.contains(word)) else {
            panic!("{pointer} = {value}: expected a problem mentioning {word:?}, got {found:#?}");
        };
        eprintln!("caught {pointer}: {caught}");
        caught_count += 1;
    }
    eprintln!("{caught_count} broken variants caught");
}

/// GET `url`: (status, body), or None when nothing answers.
fn get(url: &str) -> Option<(u16, String)> {
    match ureq::get(url).timeout(Duration::from_secs(2)).call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

#[test]
fn configmap_configuration_serves_the_probed_paths_and_drains_on_sigterm() {
    skip_unless_have!("python3", "redis-server");
    if skip_without_pyyaml() {
        return;
    }
    let docs = yaml_docs(&resource_files());
    let pod = kube::Pod::of(&docs).expect("the reflector Deployment");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("reflector.toml");
    std::fs::write(&config, &pod.config_text).expect("write config");

    // The Redis the ConfigMap names stands here on a free loopback port, and the server's
    // own ports too (flags win over the file): everything else is the pod's configuration
    // and environment as Kubernetes would give them.
    let redis_port = free_port();
    let _redis = Proc::spawn(
        "redis-server",
        "redis-server",
        &[
            "--port".into(),
            redis_port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ],
        &[],
        &dir.path().join("redis.log"),
    );
    let (rtmp, admin) = (free_port(), free_port());
    let mut args = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{rtmp}"),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin}"),
        "--redis-url".into(),
        format!("redis://127.0.0.1:{redis_port}"),
        "--workers".into(),
        "1".into(),
    ];
    args.extend(["--advertise".into(), format!("127.0.0.1:{rtmp}")]);
    let env: Vec<(&str, &str)> = pod
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut server = Proc::spawn(
        "reflector",
        reflector_exe(),
        &args,
        &env,
        &dir.path().join("log"),
    );

    let ready_url = format!("http://127.0.0.1:{admin}{}", pod.readiness_path);
    let live_url = format!("http://127.0.0.1:{admin}{}", pod.liveness_path);
    let started = Instant::now();
    let ready = loop {
        match get(&ready_url) {
            Some((200, body)) if body.contains("redis: ok") => break body,
            _ if started.elapsed() > Duration::from_secs(10) => {
                panic!("not ready in 10 s:\n{}", server.log_tail(30))
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    eprintln!("ready after {:?}: {ready:?}", started.elapsed());
    assert!(ready.starts_with("ready\n"), "{ready:?}");
    let (status, body) = get(&live_url).expect("liveness answers");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // SIGTERM with nobody connected: the drain ends at once and the process exits 0, well
    // inside the grace period the pod gives it after its preStop pause.
    let budget = Duration::from_secs(pod.grace_seconds.saturating_sub(pod.pre_stop_seconds));
    let stopping = Instant::now();
    let status = server.stop_with("TERM", budget).expect("exit status");
    eprintln!(
        "exited {status} {:?} after SIGTERM (budget {budget:?})",
        stopping.elapsed()
    );
    assert!(status.success(), "{status}:\n{}", server.log_tail(30));
    let log = std::fs::read_to_string(dir.path().join("log")).expect("server log");
    assert!(log.contains("drained: every connection closed"), "{log}");
}

#[test]
fn systemd_unit_verifies_clean_with_room_for_max_connections() {
    skip_unless_have!("systemd-analyze");
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/reflector.service"))
        .expect("read unit");
    let unit = systemd::unit_for_test(&unit, reflector_exe());
    let (ok, lines) = systemd::verify(&unit);
    assert!(ok && lines.is_empty(), "systemd-analyze verify: {lines:#?}");

    // The unit runs /etc/reflector/reflector.toml, which starts as config/default.toml.
    let defaults = kube::effective_config(reflector_exe(), None, &[]).expect("defaults");
    let max = defaults["limits"]["max_connections"]
        .as_integer()
        .expect("max") as u64;
    let drain = defaults["server"]["drain_timeout_ms"]
        .as_integer()
        .expect("drain") as u64;
    let problems = systemd::unit_problems(&unit, max, drain);
    assert!(problems.is_empty(), "{problems:#?}");
    eprintln!(
        "LimitNOFILE={} for max_connections {max}; TimeoutStopSec={} for a {drain} ms drain",
        systemd::unit_value(&unit, "LimitNOFILE").unwrap_or_default(),
        systemd::unit_value(&unit, "TimeoutStopSec").unwrap_or_default()
    );

    // Offline exposure score (no running systemd needed): the hardening is in effect.
    let score = systemd::exposure(&unit);
    eprintln!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} (0 best, 10 worst)");

    // The same checks catch a unit that would have failed its operator.
    let (_, lines) = systemd::verify(&unit.replace("KillSignal=", "KillSignall="));
    assert!(
        lines.iter().any(|l| l.contains("KillSignall")),
        "{lines:#?}"
    );
    let (_, lines) = systemd::verify(&unit.replace(reflector_exe(), "/nonexistent/reflector"));
    assert!(
        lines.iter().any(|l| l.contains("not executable")),
        "{lines:#?}"
    );
    let low = systemd::unit_problems(
        &unit.replace("LimitNOFILE=65536", "LimitNOFILE=1024"),
        max,
        drain,
    );
    assert!(
        low.iter().any(|p| p.contains("LimitNOFILE 1024")),
        "{low:#?}"
    );
    let short = systemd::unit_problems(
        &unit.replace("TimeoutStopSec=20s", "TimeoutStopSec=10s"),
        max,
        drain,
    );
    assert!(
        short.iter().any(|p| p.contains("TimeoutStopSec")),
        "{short:#?}"
    );
}

/// The `toml` blocks of a Markdown file, each with the line it starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```toml" => current = Some((n + 1, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// What is wrong in a documentation page: a `section.key` it names (in backticks) that the
/// configuration does not have, or a `toml` example the binary refuses. Also the number of
/// key references and examples checked.
fn doc_problems(page: &str) -> (Vec<String>, usize, usize) {
    let defaults = kube::effective_config(reflector_exe(), None, &[]).expect("defaults");
    let sections: Vec<&String> = defaults.as_table().expect("table").keys().collect();
    // admin.token is never printed, but config/default.toml lists it.
    let listed: toml::Value = std::fs::read_to_string(repo().join("config/default.toml"))
        .expect("read config/default.toml")
        .parse::<toml::Table>()
        .map(toml::Value::Table)
        .expect("parse config/default.toml");
    let mut problems = Vec::new();
    let mut keys = 0;
    // Inline code of the prose (fenced blocks are checked below as whole examples).
    let mut fenced = false;
    let prose: String = page
        .lines()
        .filter(|l| {
            fenced ^= l.trim_start().starts_with("```");
            !fenced && !l.trim_start().starts_with("```")
        })
        .collect::<Vec<_>>()
        .join("\n");
    for quoted in prose.split('`').skip(1).step_by(2) {
        // `server.listen = "..."`, `[auth.apps.NAME]`, `[[relay.push]]`: the key itself.
        let quoted = quoted.split([' ', '=']).next().unwrap_or_default();
        let quoted = quoted.trim_start_matches('[').trim_end_matches(']');
        let Some((section, key)) = quoted.split_once('.') else {
            continue;
        };
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        if !sections.iter().any(|s| *s == section) || !key.chars().all(word) {
            continue;
        }
        keys += 1;
        let known = match key.split_once('.') {
            // [auth.apps.NAME] rules and [[relay.push]] / [[relay.pull]] entries.
            Some(("apps", _)) => section == "auth",
            Some((list, _)) => section == "relay" && ["push", "pull"].contains(&list),
            None => defaults[section].get(key).is_some() || listed[section].get(key).is_some(),
        };
        if !known {
            problems.push(format!("`{quoted}` is not a configuration key"));
        }
    }
    let blocks = toml_blocks(page);
    for (line, block) in &blocks {
        let env = [("REFLECTOR_ADMIN__TOKEN", "t")];
        if let Err(e) = kube::effective_config(reflector_exe(), Some(block), &env) {
            problems.push(format!("line {line}: example refused: {e}"));
        }
    }
    (problems, keys, blocks.len())
}

#[test]
fn migration_page_names_real_keys_and_valid_examples() {
    let page = std::fs::read_to_string(repo().join("docs/migrating-from-nginx-rtmp.md"))
        .expect("read docs/migrating-from-nginx-rtmp.md");
    let (problems, keys, blocks) = doc_problems(&page);
    eprintln!("{keys} key references, {blocks} toml examples checked");
    assert!(
        problems.is_empty(),
        "docs/migrating-from-nginx-rtmp.md: {problems:#?}"
    );
    assert!(keys >= 30 && blocks >= 2, "{keys} keys, {blocks} blocks");

    // An invented key, in the prose and in an example, is caught.
    let broken = page.replace("`live.publisher_idle_timeout_ms", "`live.idle_publisher_ms");
    let (problems, _, _) = doc_problems(&broken.replace("mode = \"static\"", "mode = \"always\""));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("live.idle_publisher_ms")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("always")),
        "{problems:#?}"
    );
}
