//! The Kubernetes manifests in `deploy/kubernetes/` (issue 14). No cluster
//! ever applies them here, so this file is what keeps them honest: each is
//! parsed with a real YAML parser, the container's arguments with `mpecho
//! serve`'s own parser, and their numbers are held to each other, to
//! mpecho's defaults and to `contrib/systemd/mpecho.service`, whose limits
//! they translate (read with `systemd/units.rs`'s helpers). It starts no
//! process and never judges what only a cluster could (annotations' effect,
//! the image).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use mpecho::cli::{self, Command, DEFAULT_LISTEN, DEFAULT_MAX_WORKERS, ServeArgs};
use yaml_rust2::{Yaml, YamlLoader};

use crate::systemd::units::{exec_args, option_value, seconds, setting, unit};

/// The manifests `kubectl apply -k` applies (kustomization.yaml's list).
const RESOURCES: [&str; 3] = ["deployment.yaml", "service.yaml", "pdb.yaml"];

/// Not a resource: the kubelet's own configuration, for the nodes.
const KUBELET_CONFIG: &str = "kubelet-config.yaml";

/// The container that runs mpecho, by name.
const CONTAINER: &str = "mpecho";

/// Seconds of stop time beyond the drain itself, as `units.rs` asks of
/// TimeoutStopSec= over --grace: SIGKILL, reaping, the final figures.
const STOP_MARGIN: u64 = 5;

/// What the start-up check asks beyond --max-workers (`units.rs` holds
/// TasksMax= to the same).
const PIDS_MARGIN: u64 = 64;

/// The annotation that makes the AWS load balancer send PROXY v2.
const PROXY_ANNOTATION: &str = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The one YAML document in `name`.
fn manifest(name: &str) -> Yaml {
    let mut docs =
        YamlLoader::load_from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document expected");
    docs.remove(0)
}

/// The value at `path` (mapping keys) in `name`'s document `doc`.
fn at<'a>(doc: &'a Yaml, name: &str, path: &[&str]) -> &'a Yaml {
    path.iter().fold(doc, |node, key| {
        let next = &node[*key];
        assert!(!next.is_badvalue(), "{name}: no {}", path.join("."));
        next
    })
}

fn text<'a>(doc: &'a Yaml, name: &str, path: &[&str]) -> &'a str {
    at(doc, name, path)
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {} is not a string", path.join(".")))
}

fn number(doc: &Yaml, name: &str, path: &[&str]) -> u64 {
    at(doc, name, path)
        .as_i64()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or_else(|| panic!("{name}: {} is not a whole number", path.join(".")))
}

fn flag(doc: &Yaml, name: &str, path: &[&str]) -> bool {
    at(doc, name, path)
        .as_bool()
        .unwrap_or_else(|| panic!("{name}: {} is not true or false", path.join(".")))
}

fn strings(doc: &Yaml, name: &str, path: &[&str]) -> Vec<String> {
    at(doc, name, path)
        .as_vec()
        .unwrap_or_else(|| panic!("{name}: {} is not a list", path.join(".")))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{name}: {} holds a non-string", path.join(".")))
                .to_string()
        })
        .collect()
}

/// A label mapping (`matchLabels`, `labels`, a Service's `selector`).
fn labels(doc: &Yaml, name: &str, path: &[&str]) -> BTreeMap<String, String> {
    let map = at(doc, name, path)
        .as_hash()
        .unwrap_or_else(|| panic!("{name}: {} is not a mapping", path.join(".")));
    map.iter()
        .map(|(k, v)| match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => (k.to_string(), v.to_string()),
            _ => panic!("{name}: {} holds a non-string label", path.join(".")),
        })
        .collect()
}

/// The pod template's labels, which every selector must pick.
fn pod_labels(deployment: &Yaml) -> BTreeMap<String, String> {
    labels(
        deployment,
        "deployment.yaml",
        &["spec", "template", "metadata", "labels"],
    )
}

/// Asserts that `selector` is not empty and picks pods labelled `pod`.
fn assert_selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>, what: &str) {
    assert!(!selector.is_empty(), "{what} selects every pod");
    for (key, value) in selector {
        assert_eq!(
            pod.get(key),
            Some(value),
            "{what} asks {key}={value}; the pod template's labels are {pod:?}"
        );
    }
}

/// The mpecho container of the Deployment.
fn container(deployment: &Yaml) -> &Yaml {
    at(
        deployment,
        "deployment.yaml",
        &["spec", "template", "spec", "containers"],
    )
    .as_vec()
    .and_then(|cs| cs.iter().find(|c| c["name"].as_str() == Some(CONTAINER)))
    .unwrap_or_else(|| panic!("deployment.yaml: no container named {CONTAINER}"))
}

/// The container's `command` and `args`.
fn command_line(deployment: &Yaml) -> (Vec<String>, Vec<String>) {
    let c = container(deployment);
    (
        strings(c, "deployment.yaml", &["command"]),
        strings(c, "deployment.yaml", &["args"]),
    )
}

/// `mpecho ARGS` as `mpecho` itself parses it (options, values, conflicts).
fn parse_serve(args: &[String], origin: &str) -> ServeArgs {
    let argv: Vec<OsString> = std::iter::once("mpecho")
        .chain(args.iter().map(String::as_str))
        .map(OsString::from)
        .collect();
    match cli::parse(argv) {
        Ok(cli::Cli {
            command: Command::Serve(serve),
        }) => *serve,
        Ok(other) => panic!("{origin}: {args:?} is not `mpecho serve`: {other:?}"),
        Err(status) => {
            panic!("{origin}: mpecho refuses {args:?} ({status:?}; its message is on stderr above)")
        }
    }
}

/// The container's arguments, parsed.
fn container_serve(deployment: &Yaml) -> ServeArgs {
    let (command, args) = command_line(deployment);
    assert!(
        command.len() == 1 && command[0].ends_with("/mpecho"),
        "deployment.yaml: the container's command {command:?} must be the mpecho binary alone"
    );
    parse_serve(&args, "deployment.yaml")
}

/// `mpecho serve` with no option: the defaults.
fn defaults() -> ServeArgs {
    parse_serve(&["serve".to_string()], "the defaults")
}

/// A port of the mpecho container, given as a number or by its name.
fn container_port(deployment: &Yaml, port: &Yaml, what: &str) -> u64 {
    if let Some(n) = port.as_i64() {
        return u64::try_from(n).unwrap_or_else(|_| panic!("{what}: port {n}"));
    }
    let wanted = port
        .as_str()
        .unwrap_or_else(|| panic!("{what}: the port is neither a number nor a name"));
    at(container(deployment), "deployment.yaml", &["ports"])
        .as_vec()
        .and_then(|ports| ports.iter().find(|p| p["name"].as_str() == Some(wanted)))
        .and_then(|p| p["containerPort"].as_i64())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or_else(|| panic!("{what}: no containerPort named {wanted} in deployment.yaml"))
}

/// The seconds of the first `sleep N` in the preStop hook's script.
fn pre_stop_sleep(script: &str) -> u64 {
    let words: Vec<&str> = script
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[0] == "sleep")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("deployment.yaml: no `sleep N` in the preStop hook {script:?}"))
}

/// Every manifest in `deploy/kubernetes/` is YAML of a known kind, and
/// kustomization.yaml lists exactly the resources (not the kubelet's
/// configuration, which kubectl cannot apply).
#[test]
fn every_manifest_parses_and_the_kustomization_lists_the_resources() {
    let mut found: Vec<String> = fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("list {}: {e}", dir().display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    found.sort();
    let mut expected: Vec<String> = RESOURCES
        .iter()
        .chain(&[KUBELET_CONFIG, "kustomization.yaml"])
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(found, expected, "the YAML files in deploy/kubernetes/");
    let kinds = [
        ("deployment.yaml", "apps/v1", "Deployment"),
        ("service.yaml", "v1", "Service"),
        ("pdb.yaml", "policy/v1", "PodDisruptionBudget"),
        (
            KUBELET_CONFIG,
            "kubelet.config.k8s.io/v1beta1",
            "KubeletConfiguration",
        ),
        (
            "kustomization.yaml",
            "kustomize.config.k8s.io/v1beta1",
            "Kustomization",
        ),
    ];
    for (name, api, kind) in kinds {
        let doc = manifest(name);
        assert_eq!(text(&doc, name, &["apiVersion"]), api, "{name}: apiVersion");
        assert_eq!(text(&doc, name, &["kind"]), kind, "{name}: kind");
    }
    let listed = strings(
        &manifest("kustomization.yaml"),
        "kustomization.yaml",
        &["resources"],
    );
    assert_eq!(listed, RESOURCES, "kustomization.yaml: resources");
}

/// The container runs `mpecho serve` with options mpecho accepts, and its
/// --max-workers and --grace are mpecho's defaults and mpecho.service's.
#[test]
fn the_container_runs_mpecho_serve_with_its_defaults() {
    let deployment = manifest("deployment.yaml");
    let serve = container_serve(&deployment);
    let defaults = defaults();
    assert_eq!(serve.max_workers(), defaults.max_workers());
    assert_eq!(serve.max_workers(), DEFAULT_MAX_WORKERS);
    assert_eq!(serve.grace, defaults.grace, "deployment.yaml: --grace");
    let service_args = exec_args(&unit("mpecho.service"));
    assert_eq!(
        u64::from(serve.max_workers()),
        option_value(&service_args, "--max-workers"),
        "--max-workers in deployment.yaml and mpecho.service"
    );
    assert_eq!(
        serve.grace,
        option_value(&service_args, "--grace"),
        "--grace in deployment.yaml and mpecho.service"
    );
    assert!(
        serve.metrics.is_some(),
        "deployment.yaml: the probes need --metrics"
    );
    assert!(
        serve.user.is_none(),
        "deployment.yaml: the pod runs unprivileged, --user cannot work"
    );
}

/// The README's table of `mpecho serve` options states the defaults the
/// container runs with: a newcomer reading it and the manifests sees the
/// same numbers.
#[test]
fn the_readme_states_the_defaults_the_pod_runs_with() {
    let serve = container_serve(&manifest("deployment.yaml"));
    let listen = serve.listen.unwrap_or(DEFAULT_LISTEN);
    for (option, value) in [
        ("--max-workers N", serve.max_workers().to_string()),
        ("--grace SECS", serve.grace.to_string()),
        ("--listen ADDR", format!("127.0.0.1:{}", listen.port())),
    ] {
        let stated = readme_default(option);
        assert_eq!(
            stated, value,
            "README.md's default of {option} and deployment.yaml"
        );
    }
}

/// The default column of `option`'s row in README.md's tables: the first
/// backticked word of the second cell.
fn readme_default(option: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read README.md: {e}"));
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `") && l.split('|').nth(1).is_some_and(|c| c.contains(option)))
        .unwrap_or_else(|| panic!("README.md has no table row for {option}"));
    let cell = row.split('|').nth(2).unwrap_or_default();
    cell.split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("README.md's row for {option} states no default: {row}"))
        .to_string()
}

/// A client reaches the listener: the Service's port goes to the
/// containerPort mpecho listens on (mpecho's default port), and the
/// metrics port is not exposed by the load balancer.
#[test]
fn the_service_port_leads_to_the_listener() {
    let deployment = manifest("deployment.yaml");
    let serve = container_serve(&deployment);
    let listen = serve
        .listen
        .unwrap_or_else(|| panic!("deployment.yaml: --listen must name all interfaces"));
    assert!(
        listen.ip().is_unspecified(),
        "deployment.yaml: --listen {listen}: the balancer connects to the pod's address"
    );
    assert_eq!(listen.port(), DEFAULT_LISTEN.port(), "mpecho's port");
    let echo = container_port(&deployment, &Yaml::String("echo".into()), "deployment.yaml");
    assert_eq!(
        echo,
        u64::from(listen.port()),
        "deployment.yaml: containerPort echo"
    );
    let service = manifest("service.yaml");
    let ports = at(&service, "service.yaml", &["spec", "ports"])
        .as_vec()
        .unwrap_or_else(|| panic!("service.yaml: spec.ports is not a list"));
    assert_eq!(ports.len(), 1, "service.yaml: the echo port only");
    let port = &ports[0];
    assert_eq!(text(port, "service.yaml", &["protocol"]), "TCP");
    assert_eq!(
        number(port, "service.yaml", &["port"]),
        u64::from(listen.port())
    );
    let target = container_port(&deployment, &port["targetPort"], "service.yaml: targetPort");
    assert_eq!(
        target,
        u64::from(listen.port()),
        "service.yaml: targetPort against --listen {listen}"
    );
    assert_eq!(
        text(&service, "service.yaml", &["spec", "type"]),
        "LoadBalancer"
    );
}

/// Both probes ask GET /metrics on the --metrics port (a tcpSocket probe
/// on a --proxy-protocol port would be refused and logged every period).
#[test]
fn the_probes_ask_the_metrics_endpoint() {
    let deployment = manifest("deployment.yaml");
    let serve = container_serve(&deployment);
    let metrics = serve
        .metrics
        .unwrap_or_else(|| panic!("deployment.yaml: no --metrics"));
    let c = container(&deployment);
    for probe in ["readinessProbe", "livenessProbe"] {
        let origin = format!("deployment.yaml: {probe}");
        assert!(
            c[probe]["tcpSocket"].is_badvalue(),
            "{origin}: no tcpSocket probe"
        );
        assert_eq!(
            text(c, "deployment.yaml", &[probe, "httpGet", "path"]),
            "/metrics"
        );
        let port = container_port(&deployment, &c[probe]["httpGet"]["port"], &origin);
        assert_eq!(
            port,
            u64::from(metrics.port()),
            "{origin} against --metrics {metrics}"
        );
        let timeout = number(c, "deployment.yaml", &[probe, "timeoutSeconds"]);
        let period = number(c, "deployment.yaml", &[probe, "periodSeconds"]);
        assert!(
            timeout < period,
            "{origin}: timeoutSeconds {timeout} within periodSeconds {period}"
        );
    }
    let metrics_port = container_port(
        &deployment,
        &Yaml::String("metrics".into()),
        "deployment.yaml",
    );
    assert_eq!(metrics_port, u64::from(metrics.port()));
}

/// Stopping a pod: the preStop hook sleeps, then SIGTERMs the master (PID
/// 1), and the pod's grace period covers the sleep, --grace and a margin,
/// at least as much as mpecho.service's TimeoutStopSec= after the sleep.
#[test]
fn the_pod_outlasts_its_drain() {
    let deployment = manifest("deployment.yaml");
    let grace = container_serve(&deployment).grace;
    let hook = strings(
        container(&deployment),
        "deployment.yaml",
        &["lifecycle", "preStop", "exec", "command"],
    );
    assert_eq!(
        hook.iter().take(2).collect::<Vec<_>>(),
        ["/bin/sh", "-c"],
        "deployment.yaml: the preStop hook is a shell script"
    );
    let script = hook.get(2).map(String::as_str).unwrap_or_default();
    assert!(
        script.contains("kill -TERM 1"),
        "deployment.yaml: the preStop hook must SIGTERM the master, PID 1: {script:?}"
    );
    let sleep = pre_stop_sleep(script);
    assert!(
        sleep > 0,
        "deployment.yaml: the preStop hook must wait first"
    );
    let period = number(
        &deployment,
        "deployment.yaml",
        &["spec", "template", "spec", "terminationGracePeriodSeconds"],
    );
    assert!(
        period > sleep + grace + STOP_MARGIN,
        "deployment.yaml: terminationGracePeriodSeconds {period} against \
         a preStop sleep of {sleep}, --grace {grace} and {STOP_MARGIN} s"
    );
    let stop = seconds(&setting(&unit("mpecho.service"), "TimeoutStopSec"));
    assert!(
        period >= sleep + stop,
        "deployment.yaml: terminationGracePeriodSeconds {period} against \
         the preStop sleep {sleep} plus mpecho.service's TimeoutStopSec={stop}s"
    );
}

/// The kubelet's podPidsLimit is mpecho.service's TasksMax=, room for
/// --max-workers workers, the master and the start-up check's margin.
#[test]
fn the_pids_limit_is_the_units_tasks_max() {
    let config = manifest(KUBELET_CONFIG);
    let pids = number(&config, KUBELET_CONFIG, &["podPidsLimit"]);
    let tasks: u64 = setting(&unit("mpecho.service"), "TasksMax")
        .parse()
        .expect("mpecho.service: TasksMax=N");
    assert_eq!(
        pids, tasks,
        "{KUBELET_CONFIG}: podPidsLimit against mpecho.service's TasksMax="
    );
    let max_workers = u64::from(container_serve(&manifest("deployment.yaml")).max_workers());
    assert!(
        pids > max_workers + PIDS_MARGIN,
        "{KUBELET_CONFIG}: podPidsLimit {pids} for {max_workers} workers and the master"
    );
}

/// The Deployment's, the Service's and the PodDisruptionBudget's selectors
/// pick the pod template's pods, the budget leaves pods standing, and a
/// rolling update brings a new pod up before it takes an old one down.
#[test]
fn the_selectors_pick_the_pods() {
    let deployment = manifest("deployment.yaml");
    let pod = pod_labels(&deployment);
    assert_selects(
        &labels(
            &deployment,
            "deployment.yaml",
            &["spec", "selector", "matchLabels"],
        ),
        &pod,
        "deployment.yaml: spec.selector",
    );
    assert_selects(
        &labels(
            &manifest("service.yaml"),
            "service.yaml",
            &["spec", "selector"],
        ),
        &pod,
        "service.yaml: spec.selector",
    );
    let pdb = manifest("pdb.yaml");
    assert_selects(
        &labels(&pdb, "pdb.yaml", &["spec", "selector", "matchLabels"]),
        &pod,
        "pdb.yaml: spec.selector",
    );
    let replicas = number(&deployment, "deployment.yaml", &["spec", "replicas"]);
    let unavailable = number(&pdb, "pdb.yaml", &["spec", "maxUnavailable"]);
    assert!(
        unavailable >= 1 && unavailable < replicas,
        "pdb.yaml: maxUnavailable {unavailable} of {replicas} replicas"
    );
    let path = |key| ["spec", "strategy", "rollingUpdate", key];
    assert_eq!(
        number(&deployment, "deployment.yaml", &path("maxUnavailable")),
        0
    );
    assert_eq!(number(&deployment, "deployment.yaml", &path("maxSurge")), 1);
}

/// The load balancer sends PROXY v2 exactly when the pods require it:
/// one without the other refuses every client, or hands the pods the
/// balancer's address as the client's.
#[test]
fn the_proxy_protocol_is_on_at_both_ends_or_neither() {
    let serve = container_serve(&manifest("deployment.yaml"));
    let service = manifest("service.yaml");
    let annotation = service["metadata"]["annotations"][PROXY_ANNOTATION].as_str();
    assert_eq!(
        annotation == Some("*"),
        serve.proxy_protocol,
        "service.yaml's {PROXY_ANNOTATION} ({annotation:?}) against --proxy-protocol in \
         deployment.yaml"
    );
    if serve.proxy_protocol {
        assert!(
            !serve.trusted_proxy.is_empty(),
            "deployment.yaml: --trusted-proxy"
        );
    }
}

/// The pod runs unprivileged, on a read-only root, with no capability and
/// the runtime's seccomp profile, and has a memory limit.
#[test]
fn the_pod_is_locked_down() {
    let deployment = manifest("deployment.yaml");
    let name = "deployment.yaml";
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(flag(pod, name, &["securityContext", "runAsNonRoot"]));
    assert!(number(pod, name, &["securityContext", "runAsUser"]) > 0);
    assert_eq!(
        text(pod, name, &["securityContext", "seccompProfile", "type"]),
        "RuntimeDefault"
    );
    let c = container(&deployment);
    assert!(flag(
        c,
        name,
        &["securityContext", "readOnlyRootFilesystem"]
    ));
    assert!(!flag(
        c,
        name,
        &["securityContext", "allowPrivilegeEscalation"]
    ));
    assert_eq!(
        strings(c, name, &["securityContext", "capabilities", "drop"]),
        ["ALL"]
    );
    text(c, name, &["resources", "limits", "memory"]);
}

/// The Containerfile puts mpecho where the pod's command looks for it and
/// runs as the pod's user.
#[test]
fn the_image_is_what_the_pod_runs() {
    let containerfile = read("Containerfile");
    let instruction = |word: &str| {
        containerfile
            .lines()
            .find_map(|l| l.strip_prefix(word))
            .map(str::trim)
            .unwrap_or_else(|| panic!("Containerfile: no {word}"))
    };
    let deployment = manifest("deployment.yaml");
    let (command, _) = command_line(&deployment);
    let copy: Vec<&str> = instruction("COPY ").split_whitespace().collect();
    assert_eq!(
        copy.last().copied(),
        command.first().map(String::as_str),
        "Containerfile: COPY against the pod's command"
    );
    let uid = number(
        &deployment,
        "deployment.yaml",
        &["spec", "template", "spec", "securityContext", "runAsUser"],
    );
    assert_eq!(
        instruction("USER ").split(':').next(),
        Some(uid.to_string().as_str()),
        "Containerfile: USER against runAsUser"
    );
    let image = text(container(&deployment), "deployment.yaml", &["image"]);
    assert_eq!(
        image.rsplit(':').next(),
        Some(env!("CARGO_PKG_VERSION")),
        "deployment.yaml: the image's tag is this version"
    );
}
