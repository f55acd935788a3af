//! The same agent, unchanged, on Debian's reference CNI plugins (`bridge` + `host-local` + `portmap`
//! from containernetworking-plugins in /usr/lib/cni) instead of skiff-cni, end to end: the shared
//! cluster harness (API server + the real `skiff-agent` binary + a private containerd + a local
//! registry) and real kubectl. The agent gets a conf dir holding only a bridge + host-local + portmap
//! conflist on this test's own bridge `sktest91` and subnet 10.251.91.0/24, and a CNI cache dir of its
//! own. Needs root.
//!
//! This test works in the host network namespace (that is where the agent's plugins run): it creates
//! the bridge, and portmap and the bridge plugin write iptables rules in the host's `nat` table. The
//! per-pod rules go with DEL; the bridge is removed on drop. portmap's shared chains
//! (`CNI-HOSTPORT-*`) are removed on drop only when no other container has host ports in them.

mod cni_support;
mod support;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cni_support::Netns;
use skiff_agent::cni::{Attachment, CniRuntime, PortMapping};
use support::cluster::{self, Agent, Cluster, PodCleanup, Setup, wait_until};
use support::{TempDir, TestRegistry};

const BRIDGE: &str = "sktest91";
const NETWORK: &str = "sktest91-ref";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 251, 91, 1);

fn subnet_contains(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == [10, 251, 91]
}

/// Extra agent arguments for the harness; writes the reference conflist into the conf dir first (the
/// agent writes its own skiff-cni conflist only into an empty conf dir).
fn reference_args(dir: &TempDir) -> Vec<OsString> {
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": true, "isDefaultGateway": true,
             "ipMasq": true, "hairpinMode": true,
             "ipam": {"type": "host-local", "subnet": "10.251.91.0/24",
                      "dataDir": dir.join("ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    });
    let net_d = dir.join("net.d");
    std::fs::create_dir_all(&net_d).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(net_d.join("50-reference.conflist"), conflist.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    vec![
        "--container-log-dir".into(),
        dir.join("containers").into_os_string(),
    ]
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Debian .deb of `pkg`: from the lab cache (read only), or `apt-get download` into `dir`.
fn deb(pkg: &str, dir: &Path) -> PathBuf {
    let prefix = format!("{pkg}_");
    let find = |d: &Path| {
        std::fs::read_dir(d).ok().and_then(|rd| {
            rd.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
        })
    };
    if let Some(p) = find(Path::new("/var/cache/skiff/debs")) {
        return p;
    }
    support::run(
        "sh",
        &[
            "-c",
            &format!("cd {} && apt-get download -q {pkg}", dir.display()),
        ],
    );
    find(dir).unwrap_or_else(|| panic!("apt-get download {pkg} gave no .deb"))
}

/// Debian's nginx (IPv4-only default site, logs to stdout/stderr) as `<registry>/library/nginx:e2e`,
/// built as scripts/build-images.sh does it, with umoci and skopeo.
fn push_nginx(reg: &TestRegistry) {
    let dir = TempDir::new("cniref-nginx");
    let rootfs = dir.join("rootfs");
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap_or_else(|e| panic!("{e}"));
    for pkg in [
        "nginx",
        "nginx-common",
        "libc6",
        "libcrypt1",
        "libgcc-s1",
        "libpcre2-8-0",
        "libssl3",
        "zlib1g",
    ] {
        let d = deb(pkg, &debs);
        support::run(
            "dpkg",
            &["-x", &d.to_string_lossy(), &rootfs.to_string_lossy()],
        );
    }
    let w = |p: &str, s: &str| {
        let f = rootfs.join(p);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&f, s).unwrap_or_else(|e| panic!("write {}: {e}", f.display()));
    };
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n",
    );
    w("etc/group", "root:x:0:\nwww-data:x:33:\n");
    w("etc/nsswitch.conf", "passwd: files\ngroup: files\n");
    w(
        "etc/nginx/sites-enabled/default",
        "server {\n listen 80 default_server;\n root /var/www/html;\n \
         index index.nginx-debian.html;\n location / { try_files $uri $uri/ =404; }\n}\n",
    );
    for d in [
        "var/lib/nginx/body",
        "var/lib/nginx/proxy",
        "var/lib/nginx/fastcgi",
        "var/lib/nginx/uwsgi",
        "var/lib/nginx/scgi",
        "var/log/nginx",
        "var/www/html",
        "etc/nginx/modules-enabled",
        "etc/nginx/conf.d",
        "run",
        "tmp",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap_or_else(|e| panic!("{e}"));
    }
    support::run(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && chown 33:33 var/lib/nginx/* && ln -sf /dev/stdout var/log/nginx/access.log \
                 && ln -sf /dev/stderr var/log/nginx/error.log \
                 && cp usr/share/nginx/html/index.html var/www/html/index.nginx-debian.html",
                rootfs.display()
            ),
        ],
    );
    let layout = dir.join("oci");
    let image = format!("{}:e2e", layout.display());
    support::run("umoci", &["init", "--layout", &layout.to_string_lossy()]);
    support::run("umoci", &["new", "--image", &image]);
    support::run(
        "umoci",
        &["insert", "--image", &image, &rootfs.to_string_lossy(), "/"],
    );
    support::run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.env",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.cmd",
            "nginx",
            "--config.cmd",
            "-g",
            "--config.cmd",
            "daemon off;",
        ],
    );
    support::run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{}/library/nginx:e2e", reg.host()),
        ],
    );
}

/// One HTTP/1.0 GET from this (host) namespace; the whole answer.
fn http_get(ip: Ipv4Addr, port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(3))
        .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: e2e\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

fn welcome(answer: &Result<String, String>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|a| a.starts_with("HTTP/1.1 200") && a.contains("Welcome to nginx!"))
}

/// The host veths enslaved to the test bridge.
fn veths() -> Vec<String> {
    sh("ip", &["-o", "link", "show", "master", BRIDGE])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// host-local's reservation files: `<dataDir>/<network>/<ip>`.
fn reservations(dir: &TempDir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("ipam").join(NETWORK))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn nat_rules() -> String {
    sh("iptables", &["-w", "5", "-t", "nat", "-S"])
}

/// Removes the test bridge, and portmap's shared chains when nothing uses them any more.
struct HostCleanup;

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let _ = sh("ip", &["link", "del", BRIDGE]);
        if nat_rules().contains("-A CNI-HOSTPORT-DNAT") {
            return;
        }
        let ipt = |args: &[&str]| {
            let mut full = vec!["-w", "5", "-t", "nat"];
            full.extend_from_slice(args);
            let _ = sh("iptables", &full);
        };
        let dnat = [
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "CNI-HOSTPORT-DNAT",
        ];
        for (hook, extra) in [
            ("PREROUTING", &[][..]),
            ("OUTPUT", &[][..]),
            (
                "POSTROUTING",
                &[
                    "-m",
                    "comment",
                    "--comment",
                    "CNI portfwd requiring masquerade",
                ][..],
            ),
        ] {
            let mut rule = vec!["-D", hook];
            if hook == "POSTROUTING" {
                rule.extend(extra);
                rule.extend(["-j", "CNI-HOSTPORT-MASQ"]);
            } else {
                rule.extend(dnat);
            }
            ipt(&rule);
        }
        for chain in [
            "CNI-HOSTPORT-DNAT",
            "CNI-HOSTPORT-SETMARK",
            "CNI-HOSTPORT-MASQ",
        ] {
            ipt(&["-F", chain]);
            ipt(&["-X", chain]);
        }
    }
}

fn pod_ip(k: &cluster::Kubectl, pod: &str) -> Ipv4Addr {
    let s = k.jsonpath(pod, "{.status.podIP}");
    s.parse()
        .unwrap_or_else(|e| panic!("pod {pod} has no IPv4 podIP ({s:?}): {e}"))
}

/// Stop the agent (SIGTERM: pods keep running); its command line, to start it again.
fn stop_agent(agent: &mut Agent) -> Vec<String> {
    let pid = agent.child.id();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_else(|e| panic!("{e}"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = agent.child.wait();
    cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Start the agent binary again with `args` (from [`stop_agent`]), logging to the same file.
fn start_agent(agent: &mut Agent, args: &[String]) {
    let stderr = std::fs::OpenOptions::new()
        .append(true)
        .open(&agent.log)
        .unwrap_or_else(|e| panic!("{e}"));
    agent.child = Command::new(&args[0])
        .args(&args[1..])
        .env("RUST_LOG", "skiff_agent=debug,info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
}

fn gc_runs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("CNI GC done")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_pods_on_reference_bridge_host_local_portmap() {
    let _host = HostCleanup;
    let _ = sh("ip", &["link", "del", BRIDGE]);
    let Cluster {
        ctrd,
        reg,
        dir,
        server,
        admin,
        data_dir,
        node,
        kubelet_port,
        mut agent,
        k,
    } = cluster::start(Setup {
        name: "cni-ref",
        tag: "cr",
        busybox_dir: "cr-busybox",
        applets: &["sh", "sleep", "wget"],
        cluster_cidr: "10.251.0.0/16",
        service_cidr: "10.252.0.0/16",
        agent_args: reference_args,
    });
    let _ = (&ctrd, &server, &admin, &data_dir, kubelet_port);
    push_nginx(&reg);
    let host_port = support::free_port();
    let _cleanup = PodCleanup(k.clone(), vec!["web", "client"]);

    let pods = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: nginx\n    image: nginx:e2e\n    \
         ports:\n    - {{containerPort: 80, hostPort: {host_port}}}\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:test\n    \
         command: [sleep, '3600']\n"
    );
    let manifest = dir.join("pods.yaml");
    std::fs::write(&manifest, pods).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        "pod/client",
        "--timeout=180s",
    ]);

    // The node is Ready with the reference plugins too (their lists are 1.0.0: no STATUS).
    k.wait_for("node Ready", Duration::from_secs(60), |k| {
        let out = k.run(
            &[
                "get",
                "node",
                &node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
            None,
        );
        String::from_utf8_lossy(&out.stdout) == "True"
    });

    // The addresses come from host-local, on the test's subnet, one reservation file each.
    let (web, client) = (pod_ip(&k, "web"), pod_ip(&k, "client"));
    assert!(
        subnet_contains(web) && subnet_contains(client),
        "{web} {client}"
    );
    assert_ne!(web, client);
    assert_eq!(reservations(&dir), {
        let mut v = vec![web.to_string(), client.to_string()];
        v.sort();
        v
    });
    assert_eq!(veths().len(), 2, "one host veth per pod on {BRIDGE}");
    let cache = || {
        std::fs::read_dir(dir.join("cni-cache"))
            .map(|rd| rd.count())
            .unwrap_or(0)
    };
    assert_eq!(
        cache(),
        2,
        "the agent cached both ADD results in its own dir"
    );

    // Host -> pod IP over the bridge.
    let a = http_get(web, 80);
    assert!(welcome(&a), "GET http://{web}/ from the host: {a:?}");
    // Host port through portmap: on the host's address on the bridge (the gateway) and on localhost
    // (portmap with snat sets route_localnet on the bridge and masquerades 127.0.0.0/8).
    let a = http_get(GATEWAY, host_port);
    assert!(welcome(&a), "GET http://{GATEWAY}:{host_port}/: {a:?}");
    let a = http_get(Ipv4Addr::LOCALHOST, host_port);
    assert!(welcome(&a), "GET http://127.0.0.1:{host_port}/: {a:?}");

    // Pod -> pod, directly and through the host port (hairpin through the bridge).
    for url in [
        format!("http://{web}/"),
        format!("http://{GATEWAY}:{host_port}/"),
    ] {
        let out = k.ok(&["exec", "client", "--", "wget", "-q", "-O", "-", &url]);
        assert!(out.contains("Welcome to nginx!"), "client -> {url}: {out}");
    }

    eprintln!("host -> pod, host port (gateway, localhost), pod -> pod and pod -> host port: ok");
    // Agent restart. While the agent is down, a pod that no longer exists leaves an attachment
    // behind: ADD through the same conflist, bin dir and cache dir, with a host port, in a netns
    // of its own. The restarted agent's GC at start must tear that one down and keep the live ones.
    let args = stop_agent(&mut agent);
    let stale_ns = Netns::new("sktest91-stale");
    let stale_port = support::free_port();
    let rt = CniRuntime::new(
        dir.join("net.d"),
        vec!["/usr/lib/cni".into()],
        dir.join("cni-cache"),
    );
    let stale = rt
        .add(&Attachment {
            container_id: "stale-pod".into(),
            netns: stale_ns.path(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "stale".into())],
            port_mappings: vec![PortMapping {
                host_port: stale_port,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
        })
        .await
        .unwrap_or_else(|e| panic!("ADD of the stale attachment: {e}"));
    let stale_ip = stale.ips[0].to_string();
    assert_eq!(reservations(&dir).len(), 3);
    assert_eq!((veths().len(), cache()), (3, 3));
    assert!(nat_rules().contains(&format!("--dport {stale_port} ")));
    let before = gc_runs(&agent.log);
    start_agent(&mut agent, &args);
    wait_until(
        "the restarted agent ran CNI GC",
        Duration::from_secs(60),
        || gc_runs(&agent.log) > before,
    );
    assert!(
        !reservations(&dir).contains(&stale_ip),
        "GC released the stale address {stale_ip}"
    );
    assert_eq!(reservations(&dir).len(), 2, "GC kept the live reservations");
    assert_eq!(
        veths().len(),
        2,
        "GC removed the stale veth, kept the live ones"
    );
    assert_eq!(cache(), 2, "GC kept the live cache entries only");
    assert!(
        !nat_rules().contains(&format!("--dport {stale_port} ")),
        "GC removed the stale host port"
    );
    let a = http_get(Ipv4Addr::LOCALHOST, host_port);
    assert!(welcome(&a), "host port after the agent restart: {a:?}");
    assert_eq!(k.ready("web"), "True");
    eprintln!("agent restarted, GC kept {:?}", reservations(&dir));

    // Delete: DEL through the chain releases the address, removes the veth and the host port.
    k.ok(&["delete", "pod", "web", "--grace-period=1", "--timeout=60s"]);
    wait_until("web's teardown", Duration::from_secs(30), || {
        reservations(&dir) == vec![client.to_string()] && veths().len() == 1
    });
    assert_eq!(cache(), 1);
    assert!(
        !nat_rules().contains(&format!("--dport {host_port} ")),
        "portmap's DNAT for {host_port} is gone:\n{}",
        nat_rules()
    );
    assert!(http_get(Ipv4Addr::LOCALHOST, host_port).is_err());
    k.ok(&[
        "delete",
        "pod",
        "client",
        "--grace-period=1",
        "--timeout=60s",
    ]);
    wait_until("client's teardown", Duration::from_secs(30), || {
        reservations(&dir).is_empty() && veths().is_empty()
    });
    assert_eq!(cache(), 0);
}
