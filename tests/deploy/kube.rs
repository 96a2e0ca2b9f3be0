//! What the Kubernetes manifests must agree on with the configuration they ship: the pod
//! reads the ConfigMap's file at the `--config` path, that file (with the pod's environment)
//! is one the binary accepts, and its ports, probe paths, drain time, Redis address and
//! writable directories are the ones the manifests use.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The pod IP the downward API would give (`status.podIP`).
pub const POD_IP: &str = "10.0.0.7";
/// What a `secretKeyRef` resolves to here (the Secret is created by the operator).
const SECRET: &str = "test-secret";
/// Margin past preStop + drain before SIGKILL, in seconds.
const GRACE_MARGIN: u64 = 5;

/// Index of the document of `kind` named `name`; panics when missing.
pub fn index(docs: &[Value], kind: &str, name: &str) -> usize {
    find(docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn find(docs: &[Value], kind: &str, name: &str) -> Option<usize> {
    docs.iter()
        .position(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

/// Set the value at a JSON pointer (`Null` removes the key or array element).
pub fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer");
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match (parent, value) {
        (Value::Array(a), Value::Null) => {
            a.remove(last.parse::<usize>().expect("index"));
        }
        (Value::Array(a), v) => a[last.parse::<usize>().expect("index")] = v,
        (Value::Object(o), Value::Null) => {
            o.remove(&last);
        }
        (Value::Object(o), v) => {
            o.insert(last, v);
        }
        (other, _) => panic!("{pointer}: parent is {other}"),
    }
}

/// The binary's effective configuration (`--print-config`) for the file text `toml` (none:
/// the defaults) and environment `env`, nothing inherited but PATH; the error is its stderr.
pub fn effective_config(
    exe: &str,
    toml: Option<&str>,
    env: &[(&str, &str)],
) -> Result<toml::Value, String> {
    let file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    if let Some(text) = toml {
        std::fs::write(file.path(), text).expect("write config");
        cmd.arg("--config").arg(file.path());
    }
    let out = cmd.arg("--print-config").output().expect("run reflector");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| format!("--print-config output: {e}"))
}

/// An HTTP probe: path and the container port it reaches.
#[derive(Debug)]
pub struct Probe {
    pub path: String,
    pub port: Option<u64>,
}

/// The reflector pod as the manifests define it, resolved.
#[derive(Debug)]
pub struct Pod {
    /// The container spec.
    container: Value,
    /// The pod spec.
    spec: Value,
    pub labels: Value,
    /// Container port names to numbers.
    ports: BTreeMap<String, u64>,
    /// The `--config` argument and the ConfigMap text mounted there.
    pub config_path: String,
    pub config_text: String,
    /// Environment with `valueFrom` and `$(VAR)` resolved as kubelet would.
    pub env: Vec<(String, String)>,
    pub readiness_path: String,
    pub liveness_path: String,
    pub pre_stop_seconds: u64,
    pub grace_seconds: u64,
}

impl Pod {
    pub fn of(docs: &[Value]) -> Result<Pod, String> {
        let deploy =
            &docs[find(docs, "Deployment", "reflector").ok_or("no Deployment reflector")?];
        let spec = deploy["spec"]["template"]["spec"].clone();
        let container = spec["containers"][0].clone();
        let ports: BTreeMap<String, u64> = container["ports"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p["containerPort"].as_u64()?)))
            .collect();
        let args: Vec<&str> = container["args"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let config_path = args
            .iter()
            .position(|a| *a == "--config")
            .and_then(|i| args.get(i + 1))
            .ok_or("the container's args have no --config FILE")?
            .to_string();
        let config_text = mounted_config(docs, &spec, &container, &config_path)?;
        let probe_path = |kind: &str| {
            container[kind]["httpGet"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let pre_stop_seconds = pre_stop_seconds(&container["lifecycle"]["preStop"]);
        Ok(Pod {
            labels: deploy["spec"]["template"]["metadata"]["labels"].clone(),
            env: service_links(docs, &spec)
                .into_iter()
                .chain(resolve_env(&container["env"]))
                .collect(),
            readiness_path: probe_path("readinessProbe"),
            liveness_path: probe_path("livenessProbe"),
            pre_stop_seconds: pre_stop_seconds.unwrap_or(0),
            grace_seconds: spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30),
            container,
            spec,
            ports,
            config_path,
            config_text,
        })
    }

    fn probe(&self, kind: &str) -> Option<Probe> {
        let get = self.container[kind].get("httpGet")?;
        Some(Probe {
            path: get["path"].as_str().unwrap_or_default().to_owned(),
            port: self.resolve_port(&get["port"]),
        })
    }

    /// A port given by number or by the container port's name.
    fn resolve_port(&self, port: &Value) -> Option<u64> {
        port.as_u64()
            .or_else(|| self.ports.get(port.as_str()?).copied())
    }

    fn has_port(&self, port: u64) -> bool {
        self.ports.values().any(|p| *p == port)
    }
}

/// The file at `path` inside the container, from the ConfigMap volume mounted above it.
fn mounted_config(
    docs: &[Value],
    spec: &Value,
    container: &Value,
    path: &str,
) -> Result<String, String> {
    let mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (mount, file) = mounts
        .iter()
        .find_map(|m| {
            let dir = m["mountPath"].as_str()?;
            match m["subPath"].as_str() {
                Some(sub) if dir == path => Some((m, sub.to_owned())),
                None => Some((m, path.strip_prefix(dir)?.strip_prefix('/')?.to_owned())),
                Some(_) => None,
            }
        })
        .ok_or_else(|| format!("--config {path} is under no volumeMount"))?;
    let volume = spec["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .ok_or_else(|| format!("--config {path}: no volume {}", mount["name"]))?;
    let cm = &volume["configMap"];
    let name = cm["name"].as_str().ok_or_else(|| {
        format!(
            "--config {path}: volume {} is not a ConfigMap",
            volume["name"]
        )
    })?;
    let key = match cm["items"].as_array() {
        Some(items) => items
            .iter()
            .find(|i| i["path"] == file.as_str())
            .and_then(|i| i["key"].as_str())
            .ok_or_else(|| format!("--config {path}: ConfigMap {name} maps nothing to {file}"))?
            .to_owned(),
        None => file,
    };
    let doc = find(docs, "ConfigMap", name).ok_or_else(|| format!("no ConfigMap {name}"))?;
    docs[doc]["data"][&key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("--config {path}: ConfigMap {name} has no key {key}"))
}

/// The pause a `preStop` hook makes: `sleep N` as a command, or the sleep action.
fn pre_stop_seconds(hook: &Value) -> Option<u64> {
    if let Some(s) = hook["sleep"]["seconds"].as_u64() {
        return Some(s);
    }
    let command: Vec<&str> = hook["exec"]["command"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match command.as_slice() {
        [sleep, n] if sleep.ends_with("sleep") => n.parse().ok(),
        _ => None,
    }
}

/// The variables kubelet gives every container for every Service of its namespace unless
/// `enableServiceLinks: false` (`NAME_SERVICE_HOST`, `NAME_SERVICE_PORT`, `NAME_PORT`, ...):
/// Services named `reflector-*` make `REFLECTOR_*` variables. The server ignores those (they
/// are not `REFLECTOR_SECTION__KEY`) and says so at start-up; the manifests turn the links off
/// all the same, and the check feeds them to the binary to show they are harmless.
fn service_links(docs: &[Value], spec: &Value) -> Vec<(String, String)> {
    if spec["enableServiceLinks"] == false {
        return Vec::new();
    }
    let mut vars = Vec::new();
    for svc in docs.iter().filter(|d| d["kind"] == "Service") {
        let name = svc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_uppercase()
            .replace('-', "_");
        let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap_or(0);
        vars.push((format!("{name}_SERVICE_HOST"), "10.96.0.10".into()));
        vars.push((format!("{name}_SERVICE_PORT"), port.to_string()));
        vars.push((format!("{name}_PORT"), format!("tcp://10.96.0.10:{port}")));
    }
    vars
}

fn resolve_env(env: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for var in env.as_array().map(|a| a.as_slice()).unwrap_or_default() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = var["value"].as_str() {
            // $(VAR) refers to a variable defined earlier in the list.
            out.iter()
                .fold(v.to_owned(), |v, (k, x)| v.replace(&format!("$({k})"), x))
        } else if var["valueFrom"].get("secretKeyRef").is_some() {
            SECRET.to_owned()
        } else if var["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP" {
            POD_IP.to_owned()
        } else {
            String::new()
        };
        out.push((name, value));
    }
    out
}

fn port_of(addr: &str) -> Option<u64> {
    addr.rsplit_once(':')?.1.parse().ok()
}

fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// Everything wrong with the manifests, as sentences naming the key, port or field.
pub fn problems(docs: &[Value], exe: &str) -> Vec<String> {
    let pod = match Pod::of(docs) {
        Ok(pod) => pod,
        Err(e) => return vec![e],
    };
    let env: Vec<(&str, &str)> = pod
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let config = match effective_config(exe, Some(&pod.config_text), &env) {
        Ok(c) => c,
        Err(e) => {
            return vec![format!(
                "the ConfigMap's {} is refused: {e}",
                pod.config_path
            )]
        }
    };
    let mut p = Vec::new();
    let text = |v: &toml::Value| v.as_str().unwrap_or_default().to_owned();
    let listen = text(&config["server"]["listen"]);
    let admin_listen = text(&config["server"]["admin_listen"]);
    let (rtmp, admin) = (
        port_of(&listen).unwrap_or(0),
        port_of(&admin_listen).unwrap_or(0),
    );
    for (key, addr, port) in [
        ("server.listen", &listen, rtmp),
        ("server.admin_listen", &admin_listen, admin),
    ] {
        if !addr.starts_with("0.0.0.0:") && !addr.starts_with("[::]:") {
            p.push(format!("{key} {addr} is loopback or one address: the kubelet and Services reach the pod IP"));
        }
        if !pod.has_port(port) {
            p.push(format!("{key} port {port} is no containerPort of the pod"));
        }
    }
    for (kind, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        match pod.probe(kind) {
            None => p.push(format!("no {kind} (httpGet {path} on the admin port)")),
            Some(probe) if probe.path != path || probe.port != Some(admin) => p.push(format!(
                "{kind} is {} on port {:?}, not {path} on the admin port {admin}",
                probe.path, probe.port
            )),
            Some(_) => {}
        }
    }
    if let Some(probe) = pod.probe("startupProbe") {
        if probe.port != Some(admin) || !["/healthz", "/readyz"].contains(&probe.path.as_str()) {
            p.push(format!(
                "startupProbe {probe:?} is not a probe path of the admin port"
            ));
        }
    }

    // Drain: the preStop pause, then SIGTERM and server.drain_timeout_ms, inside the grace.
    let drain = config["server"]["drain_timeout_ms"]
        .as_integer()
        .unwrap_or(0) as u64;
    if pre_stop_seconds(&pod.container["lifecycle"]["preStop"]).is_none() {
        p.push("no preStop pause: the pod stops accepting before the Services stop sending".into());
    }
    let needed = pod.pre_stop_seconds + drain.div_ceil(1000) + GRACE_MARGIN;
    if pod.grace_seconds < needed {
        p.push(format!(
            "terminationGracePeriodSeconds {} < preStop {} s + drain {drain} ms + {GRACE_MARGIN} s",
            pod.grace_seconds, pod.pre_stop_seconds
        ));
    }

    // Security: non-root, read-only root, no privilege, resources bounded.
    let (sec, pod_sec) = (
        &pod.container["securityContext"],
        &pod.spec["securityContext"],
    );
    if sec["runAsNonRoot"] != true && pod_sec["runAsNonRoot"] != true {
        p.push("runAsNonRoot is not set".into());
    }
    for (field, want) in [
        ("readOnlyRootFilesystem", true),
        ("allowPrivilegeEscalation", false),
    ] {
        if sec[field] != want {
            p.push(format!("securityContext.{field} is not {want}"));
        }
    }
    if !sec["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.contains(&"ALL".into()))
    {
        p.push("securityContext.capabilities does not drop ALL".into());
    }
    let res = &pod.container["resources"];
    for field in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
        if res.pointer(field).is_none() {
            p.push(format!("resources{} is not set", field.replace('/', ".")));
        }
    }
    // The root is read-only: the only directory the server writes must be a writable mount.
    let dir = text(&config["shared_objects"]["dir"]);
    let writable = pod.container["volumeMounts"]
        .as_array()
        .is_some_and(|mounts| {
            mounts.iter().any(|m| {
                m["readOnly"] != true
                    && m["mountPath"]
                        .as_str()
                        .is_some_and(|d| dir.starts_with(&format!("{d}/")))
            })
        });
    if !writable {
        p.push(format!(
            "shared_objects.dir {dir:?} is under no writable volumeMount"
        ));
    }

    // Cluster: the advertised address is this pod's, on the RTMP port.
    let advertise = text(&config["cluster"]["advertise"]);
    if advertise != format!("{POD_IP}:{rtmp}") {
        p.push(format!(
            "cluster.advertise is {advertise:?}, not the pod IP and RTMP port"
        ));
    }
    p.extend(service_problems(docs, &pod, rtmp, admin));
    p.extend(redis_problems(
        docs,
        &pod,
        &text(&config["cluster"]["redis_url"]),
    ));
    p
}

/// The RTMP Service reaches server.listen; the admin port stays inside the cluster.
fn service_problems(docs: &[Value], pod: &Pod, rtmp: u64, admin: u64) -> Vec<String> {
    let mut p = Vec::new();
    for (name, port, target) in [
        ("reflector-rtmp", 1935, rtmp),
        ("reflector-admin", admin, admin),
    ] {
        let Some(i) = find(docs, "Service", name) else {
            p.push(format!("no Service {name}"));
            continue;
        };
        let svc = &docs[i]["spec"];
        if !selects(&svc["selector"], &pod.labels) {
            p.push(format!(
                "Service {name}: selector {} does not select the reflector pods",
                svc["selector"]
            ));
        }
        let found = svc["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|sp| sp["port"].as_u64() == Some(port)));
        match found.map(|sp| pod.resolve_port(&sp["targetPort"])) {
            None => p.push(format!("Service {name} has no port {port}")),
            Some(t) if t != Some(target) => p.push(format!(
                "Service {name} port {port} goes to container port {t:?}, not {target}"
            )),
            Some(_) => {}
        }
    }
    // No Service may carry the admin port out of the cluster.
    for svc in docs.iter().filter(|d| d["kind"] == "Service") {
        let exposed = !matches!(svc["spec"]["type"].as_str(), None | Some("ClusterIP"));
        let to_admin = selects(&svc["spec"]["selector"], &pod.labels)
            && svc["spec"]["ports"].as_array().is_some_and(|ports| {
                ports
                    .iter()
                    .any(|sp| pod.resolve_port(&sp["targetPort"]) == Some(admin))
            });
        if exposed && to_admin {
            p.push(format!(
                "Service {} exposes the admin port outside the cluster (type {})",
                svc["metadata"]["name"], svc["spec"]["type"]
            ));
        }
    }
    p
}

/// cluster.redis_url names a Service whose port reaches a Redis pod.
fn redis_problems(docs: &[Value], pod: &Pod, url: &str) -> Vec<String> {
    let Some((host, port)) = url
        .strip_prefix("redis://")
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_owned(), p.trim_end_matches('/').parse::<u64>().ok()?)))
    else {
        return vec![format!(
            "cluster.redis_url {url:?} is not redis://SERVICE:PORT"
        )];
    };
    let Some(svc) = find(docs, "Service", &host).map(|i| &docs[i]["spec"]) else {
        return vec![format!("cluster.redis_url {url}: no Service {host}")];
    };
    let Some(sp) = svc["ports"]
        .as_array()
        .and_then(|a| a.iter().find(|sp| sp["port"].as_u64() == Some(port)))
    else {
        return vec![format!(
            "cluster.redis_url {url}: Service {host} has no port {port}"
        )];
    };
    // The Redis pods' labels and the container port the Service's port reaches.
    let target = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .find_map(|d| {
            let tpl = &d["spec"]["template"];
            if !selects(&svc["selector"], &tpl["metadata"]["labels"]) {
                return None;
            }
            let ports = tpl["spec"]["containers"].as_array()?.iter();
            let port = ports
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|cp| {
                    cp["containerPort"] == sp["targetPort"] || cp["name"] == sp["targetPort"]
                })?;
            Some((
                tpl["metadata"]["labels"].clone(),
                port["containerPort"].clone(),
            ))
        });
    let Some((labels, port)) = target else {
        return vec![format!(
            "cluster.redis_url {url}: Service {host} reaches no redis container port"
        )];
    };
    // Redis has no password: a NetworkPolicy must admit the reflector pods, and only them.
    let admits = docs
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .filter(|d| selects(&d["spec"]["podSelector"]["matchLabels"], &labels))
        .flat_map(|d| d["spec"]["ingress"].as_array().cloned().unwrap_or_default())
        .any(|rule| {
            let from = rule["from"].as_array().cloned().unwrap_or_default();
            let ports = rule["ports"].as_array().cloned().unwrap_or_default();
            from.iter()
                .all(|f| selects(&f["podSelector"]["matchLabels"], &pod.labels))
                && !from.is_empty()
                && ports.iter().any(|p| p["port"] == port)
        });
    if admits {
        Vec::new()
    } else {
        vec![format!(
            "no NetworkPolicy admits only the reflector pods to Redis port {port} (it has no password)"
        )]
    }
}
