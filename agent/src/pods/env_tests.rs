use super::*;
use k8s_openapi::api::core::v1::{EnvVarSource, ObjectFieldSelector, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use oci_spec::image::ConfigBuilder;

fn image(entry: &[&str], cmd: &[&str]) -> ImageConfig {
    ConfigBuilder::default()
        .entrypoint(entry.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .cmd(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/img/bin".to_string(), "A=image".to_string()])
        .build()
        .expect("config")
}

fn c(command: &[&str], args: &[&str]) -> Container {
    let v = |x: &[&str]| {
        if x.is_empty() {
            None
        } else {
            Some(x.iter().map(|s| s.to_string()).collect())
        }
    };
    Container {
        name: "c".into(),
        command: v(command),
        args: v(args),
        ..Default::default()
    }
}

#[test]
fn command_args_merge() {
    let img = image(&["/docker-entrypoint.sh"], &["nginx", "-g", "daemon off;"]);
    assert_eq!(
        argv(&c(&[], &[]), Some(&img), &[]),
        ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    );
    assert_eq!(argv(&c(&["sh"], &[]), Some(&img), &[]), ["sh"]);
    assert_eq!(
        argv(&c(&[], &["x"]), Some(&img), &[]),
        ["/docker-entrypoint.sh", "x"]
    );
    assert_eq!(
        argv(&c(&["sh"], &["-c", "echo"]), Some(&img), &[]),
        ["sh", "-c", "echo"]
    );
    let env = vec![("NAME".to_string(), "world".to_string())];
    assert_eq!(
        argv(
            &c(&["echo", "$(NAME)", "$$(NAME)", "$(NOPE)"], &[]),
            None,
            &env
        ),
        ["echo", "world", "$(NAME)", "$(NOPE)"]
    );
}

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("prod".into()),
            uid: Some("u-1".into()),
            labels: Some(BTreeMap::from([("app".to_string(), "x".to_string())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn env_resolution() {
    let p = pod();
    let services = [
        ("WEB_SERVICE_HOST".to_string(), "10.96.0.7".to_string()),
        ("A".to_string(), "from-service".to_string()),
    ];
    let d = Downward {
        pod: &p,
        pod_ip: Some("10.244.0.5".parse().expect("ip")),
        host_ip: "10.0.0.1".parse().expect("ip"),
        objects: &Objects::default(),
        services: &services,
    };
    let mut ct = c(&[], &[]);
    ct.env = Some(vec![
        EnvVar {
            name: "A".into(),
            value: Some("container".into()),
            ..Default::default()
        },
        EnvVar {
            name: "B".into(),
            value: Some("$(A)-b".into()),
            ..Default::default()
        },
        from_field("POD", "metadata.name"),
        from_field("NS", "metadata.namespace"),
        from_field("UID", "metadata.uid"),
        from_field("NODE", "spec.nodeName"),
        from_field("IP", "status.podIP"),
        from_field("HOST", "status.hostIP"),
        from_field("APP", "metadata.labels['app']"),
        EnvVar {
            name: "URL".into(),
            value: Some("http://$(WEB_SERVICE_HOST)/".into()),
            ..Default::default()
        },
    ]);
    let img = image(&[], &["sh"]);
    let env = environment(&ct, Some(&img), &d).expect("env");
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(env[0], ("PATH".to_string(), "/img/bin".to_string()));
    assert_eq!(get("A"), Some("container"));
    assert_eq!(get("B"), Some("container-b"));
    assert_eq!(get("POD"), Some("web"));
    assert_eq!(get("NS"), Some("prod"));
    assert_eq!(get("UID"), Some("u-1"));
    assert_eq!(get("NODE"), Some("n1"));
    assert_eq!(get("IP"), Some("10.244.0.5"));
    assert_eq!(get("HOST"), Some("10.0.0.1"));
    assert_eq!(get("APP"), Some("x"));
    // Service variables are set, the container's own env wins over them, and `$(VAR)` sees them.
    assert_eq!(get("WEB_SERVICE_HOST"), Some("10.96.0.7"));
    assert_eq!(get("URL"), Some("http://10.96.0.7/"));
    ct.env = Some(vec![from_field("X", "spec.bogus")]);
    assert!(environment(&ct, None, &d).is_err());
    let env = environment(&c(&[], &[]), None, &d).expect("env");
    assert_eq!(env[0].0, "PATH");
}

fn objects() -> Objects {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let mut o = Objects {
        namespace: "prod".into(),
        ..Default::default()
    };
    o.config_maps.insert(
        "cfg".into(),
        Some(ConfigMap {
            data: Some(BTreeMap::from([
                ("mode".to_string(), "fast".to_string()),
                ("bad key".to_string(), "x".to_string()),
            ])),
            ..Default::default()
        }),
    );
    o.config_maps.insert("gone".into(), None);
    o.secrets.insert(
        "creds".into(),
        Some(Secret {
            data: Some(BTreeMap::from([(
                "password".to_string(),
                ByteString(b"s3cret".to_vec()),
            )])),
            ..Default::default()
        }),
    );
    o
}

fn key_ref_var(
    name: &str,
    cm: Option<(&str, &str)>,
    secret: Option<(&str, &str)>,
    optional: Option<bool>,
) -> EnvVar {
    use k8s_openapi::api::core::v1::{ConfigMapKeySelector, SecretKeySelector};
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: cm.map(|(n, k)| ConfigMapKeySelector {
                name: n.into(),
                key: k.into(),
                optional,
            }),
            secret_key_ref: secret.map(|(n, k)| SecretKeySelector {
                name: n.into(),
                key: k.into(),
                optional,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn env_from_config_maps_and_secrets() {
    use k8s_openapi::api::core::v1::{ConfigMapEnvSource, EnvFromSource, SecretEnvSource};
    let p = pod();
    let objs = objects();
    let d = Downward {
        pod: &p,
        pod_ip: None,
        host_ip: "10.0.0.1".parse().expect("ip"),
        objects: &objs,
        services: &[],
    };
    let mut ct = c(&[], &[]);
    ct.env_from = Some(vec![
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "cfg".into(),
                optional: None,
            }),
            prefix: Some("CFG_".into()),
            ..Default::default()
        },
        EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "creds".into(),
                optional: None,
            }),
            ..Default::default()
        },
        EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "gone".into(),
                optional: Some(true),
            }),
            ..Default::default()
        },
    ]);
    ct.env = Some(vec![
        key_ref_var("MODE", Some(("cfg", "mode")), None, None),
        key_ref_var("PW", None, Some(("creds", "password")), None),
        key_ref_var("OPT", Some(("gone", "k")), None, Some(true)),
        key_ref_var("OPTKEY", Some(("cfg", "nokey")), None, Some(true)),
        EnvVar {
            name: "URL".into(),
            value: Some("db://$(PW)@$(MODE)".into()),
            ..Default::default()
        },
    ]);
    let env = environment(&ct, None, &d).expect("env");
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("CFG_mode"), Some("fast"));
    assert_eq!(get("CFG_bad key"), None, "invalid names are skipped");
    assert_eq!(get("password"), Some("s3cret"));
    assert_eq!(get("MODE"), Some("fast"));
    assert_eq!(get("PW"), Some("s3cret"));
    assert_eq!(get("OPT"), None);
    assert_eq!(get("OPTKEY"), None);
    assert_eq!(get("URL"), Some("db://s3cret@fast"));

    let err = |v: EnvVar| {
        let mut ct = c(&[], &[]);
        ct.env = Some(vec![v]);
        environment(&ct, None, &d).err()
    };
    assert_eq!(
        err(key_ref_var("X", Some(("gone", "k")), None, None)).as_deref(),
        Some("configmap \"gone\" not found")
    );
    assert_eq!(
        err(key_ref_var("X", Some(("cfg", "k")), None, None)).as_deref(),
        Some("couldn't find key k in ConfigMap prod/cfg")
    );
    assert_eq!(
        err(key_ref_var("X", None, Some(("nope", "k")), None)).as_deref(),
        Some("secret \"nope\" not found")
    );
    assert_eq!(
        err(key_ref_var("X", None, Some(("creds", "user")), None)).as_deref(),
        Some("couldn't find key user in Secret prod/creds")
    );
    let mut ct = c(&[], &[]);
    ct.env_from = Some(vec![EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: "nope".into(),
            optional: Some(false),
        }),
        ..Default::default()
    }]);
    assert_eq!(
        environment(&ct, None, &d).err().as_deref(),
        Some("secret \"nope\" not found")
    );
}

#[test]
fn resource_fields() {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let mut ct = c(&[], &[]);
    ct.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("500m".into())),
            ("memory".to_string(), Quantity("64Mi".into())),
        ])),
        requests: Some(BTreeMap::from([(
            "cpu".to_string(),
            Quantity("250m".into()),
        )])),
        ..Default::default()
    });
    assert_eq!(resource_value(&ct, "limits.cpu", None).as_deref(), Ok("1"));
    assert_eq!(
        resource_value(&ct, "limits.cpu", Some("1m")).as_deref(),
        Ok("500")
    );
    assert_eq!(
        resource_value(&ct, "requests.cpu", Some("1m")).as_deref(),
        Ok("250")
    );
    assert_eq!(
        resource_value(&ct, "limits.memory", None).as_deref(),
        Ok("67108864")
    );
    assert_eq!(
        resource_value(&ct, "limits.memory", Some("1Mi")).as_deref(),
        Ok("64")
    );
    assert_eq!(
        resource_value(&ct, "requests.memory", None).as_deref(),
        Ok("0")
    );
    let node_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        resource_value(&c(&[], &[]), "limits.cpu", None),
        Ok(node_cpus.to_string())
    );
    assert!(resource_value(&ct, "limits.gpu", None).is_err());
    assert!(resource_value(&ct, "limits.cpu", Some("0")).is_err());
}

#[test]
fn users() {
    assert_eq!(parse_user(""), Ok((0, 0)));
    assert_eq!(parse_user("101"), Ok((101, 101)));
    assert_eq!(parse_user("101:7"), Ok((101, 7)));
    assert_eq!(parse_user("root:root"), Ok((0, 0)));
    assert!(parse_user("nginx").is_err());
    let p = pod();
    let mut ct = c(&[], &[]);
    ct.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        ..Default::default()
    });
    assert_eq!(user(&p, &ct, ""), Ok((1000, 3000, vec![])));
    assert_eq!(user(&p, &c(&[], &[]), "101:101"), Ok((101, 101, vec![])));
}

#[test]
fn run_as_non_root() {
    use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
    let mut p = pod();
    if let Some(spec) = p.spec.as_mut() {
        spec.security_context = Some(PodSecurityContext {
            run_as_non_root: Some(true),
            supplemental_groups: Some(vec![5, 6]),
            fs_group: Some(2000),
            ..Default::default()
        });
    }
    let plain = c(&[], &[]);
    assert_eq!(
        user(&p, &plain, ""),
        Err("container has runAsNonRoot and image will run as root".into())
    );
    assert_eq!(
        user(&p, &plain, "0:0"),
        Err("container has runAsNonRoot and image will run as root".into())
    );
    assert_eq!(user(&p, &plain, "1000"), Ok((1000, 1000, vec![5, 6, 2000])));
    assert!(verify_non_root_user(&p, &plain, "nginx").is_err_and(|e| e.contains("non-numeric")));
    assert!(verify_non_root_user(&p, &plain, "1000").is_ok());
    let mut as_1000 = c(&[], &[]);
    as_1000.security_context = Some(SecurityContext {
        run_as_user: Some(1000),
        ..Default::default()
    });
    assert!(verify_non_root_user(&p, &as_1000, "nginx").is_ok());
    assert_eq!(user(&p, &as_1000, ""), Ok((1000, 0, vec![5, 6, 2000])));
    let mut as_root = c(&[], &[]);
    as_root.security_context = Some(SecurityContext {
        run_as_user: Some(0),
        ..Default::default()
    });
    assert!(user(&p, &as_root, "").is_err_and(|e| e.contains("breaks non-root policy")));
}
