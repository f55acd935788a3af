use super::*;
use crate::resources::{Kind, ResourceDef, by_kind};

fn statefulset() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
}

fn created(def: &ResourceDef, mut obj: Value) -> Value {
    obj = def.normalize(&obj).expect("normalizes");
    def.default_on_create(&mut obj);
    obj
}

fn fields(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.field.clone()).collect()
}

#[test]
fn served_as_apps_v1_with_scale() {
    let def = by_kind(Kind::StatefulSet);
    assert_eq!(
        (def.api_version(), def.plural, def.kind),
        ("apps/v1".to_string(), "statefulsets", "StatefulSet")
    );
    assert_eq!(def.short_names, ["sts"]);
    assert_eq!(def.categories, ["all"]);
    assert_eq!(def.subresources, ["status", "scale"]);
}

#[test]
fn defaults_follow_apps_v1() {
    let def = by_kind(Kind::StatefulSet);
    let s = created(def, statefulset());
    let spec = &s["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(s["status"], json!({"replicas": 0, "availableReplicas": 0}));
    assert!(
        def.validate_create(&s).is_empty(),
        "{:?}",
        def.validate_create(&s)
    );
    // OnDelete gets no rollingUpdate; a given partition stays.
    let mut d = statefulset();
    d["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    assert_eq!(
        created(def, d)["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
    let mut p = statefulset();
    p["spec"]["updateStrategy"] = json!({"rollingUpdate": {"partition": 2}});
    assert_eq!(
        created(def, p)["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        2
    );
}

#[test]
fn validation_follows_kube() {
    let def = by_kind(Kind::StatefulSet);
    let check = |edit: &dyn Fn(&mut Value)| {
        let mut s = created(def, statefulset());
        edit(&mut s);
        def.validate_create(&s)
    };
    let errs = check(&|s| {
        s["spec"].as_object_mut().expect("spec").remove("selector");
    });
    assert_eq!(
        fields(&errs),
        ["spec.selector", "spec.template.metadata.labels"]
    );
    let errs = check(&|s| s["spec"]["selector"] = json!({"matchLabels": {"app": "db"}}));
    assert_eq!(
        errs[0].message,
        "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
    );
    let errs = check(&|s| s["spec"]["template"]["spec"]["restartPolicy"] = json!("Never"));
    assert_eq!(
        errs[0].to_line(),
        "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
    );
    let errs = check(&|s| s["spec"]["podManagementPolicy"] = json!("Random"));
    assert_eq!(
        errs[0].to_line(),
        "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"
    );
    let errs = check(&|s| s["spec"]["updateStrategy"] = json!({"type": "Sometimes"}));
    assert_eq!(
        errs[0].to_line(),
        "spec.updateStrategy: Invalid value: \"Sometimes\": must be 'RollingUpdate' or 'OnDelete'"
    );
    let errs = check(&|s| s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(-1));
    assert_eq!(
        fields(&errs),
        ["spec.updateStrategy.rollingUpdate.partition"]
    );
    let errs = check(&|s| s["spec"]["ordinals"] = json!({"start": -2}));
    assert_eq!(fields(&errs), ["spec.ordinals.start"]);
    let errs =
        check(&|s| s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Keep"));
    assert_eq!(
        errs[0].to_line(),
        "spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\""
    );
    let errs = check(&|s| s["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5));
    assert_eq!(
        errs[0].to_line(),
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported"
    );
    // serviceName may be empty; when set it becomes the pods' subdomain and must be a DNS label.
    assert!(check(&|s| s["spec"]["serviceName"] = json!("")).is_empty());
    assert_eq!(
        fields(&check(&|s| s["spec"]["serviceName"] = json!("Web.x"))),
        ["spec.serviceName"]
    );
    let errs = check(&|s| {
        s["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 0})
    });
    assert_eq!(
        errs[0].to_line(),
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"
    );
}

fn with_claims(templates: Value) -> Value {
    let mut s = statefulset();
    s["spec"]["volumeClaimTemplates"] = templates;
    s
}

fn claim(name: &str) -> Value {
    json!({"metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
}

#[test]
fn volume_claim_templates_are_defaulted_like_claims() {
    let def = by_kind(Kind::StatefulSet);
    let s = created(def, with_claims(json!([claim("www")])));
    let t = &s["spec"]["volumeClaimTemplates"][0];
    assert_eq!(t["apiVersion"], "v1");
    assert_eq!(t["kind"], "PersistentVolumeClaim");
    assert_eq!(t["spec"]["volumeMode"], "Filesystem");
    assert_eq!(t["status"], json!({"phase": "Pending"}));
    // No class: the API server's admission picks the default one for each claim made from it.
    assert!(t["spec"].get("storageClassName").is_none(), "{t}");
    assert!(
        def.validate_create(&s).is_empty(),
        "{:?}",
        def.validate_create(&s)
    );
    let mut block = claim("raw");
    block["spec"]["volumeMode"] = json!("Block");
    let s = created(def, with_claims(json!([block])));
    assert_eq!(
        s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Block"
    );
}

#[test]
fn volume_claim_templates_are_validated_as_claims() {
    let def = by_kind(Kind::StatefulSet);
    let check = |templates: Value| def.validate_create(&created(def, with_claims(templates)));
    let lines = |errs: Vec<FieldError>| errs.iter().map(FieldError::to_line).collect::<Vec<_>>();
    let mut bare = claim("www");
    bare["spec"] = json!({});
    assert_eq!(
        lines(check(json!([bare]))),
        [
            "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
            "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value",
        ]
    );
    let mut bad = claim("www");
    bad["spec"]["accessModes"] = json!(["ReadWriteOncePod", "ReadWriteSometimes"]);
    bad["spec"]["resources"]["requests"]["storage"] = json!("0");
    bad["spec"]["storageClassName"] = json!("Fast_Disks");
    bad["spec"]["volumeMode"] = json!("Tape");
    let errs = lines(check(json!([claim("data"), bad])));
    assert_eq!(
        errs,
        [
            "spec.volumeClaimTemplates[1].spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.volumeClaimTemplates[1].spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            format!("spec.volumeClaimTemplates[1].spec.storageClassName: Invalid value: \"Fast_Disks\": {}", crate::resources::validation::DNS1123_SUBDOMAIN_MSG).as_str(),
            "spec.volumeClaimTemplates[1].spec.volumeMode: Unsupported value: \"Tape\": supported values: \"Block\", \"Filesystem\"",
        ]
    );
    let mut mixed = claim("www");
    mixed["spec"]["accessModes"] = json!(["ReadWriteOncePod", "ReadWriteOnce"]);
    assert_eq!(
        lines(check(json!([mixed]))),
        [
            "spec.volumeClaimTemplates[0].spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
        ]
    );
    // Names: each becomes a pod volume, so a DNS label, unique.
    let errs = check(json!([
        claim("data"),
        claim("data"),
        claim("Data.x"),
        claim("")
    ]));
    assert_eq!(
        fields(&errs),
        [
            "spec.volumeClaimTemplates[1].metadata.name",
            "spec.volumeClaimTemplates[2].metadata.name",
            "spec.volumeClaimTemplates[3].metadata.name"
        ]
    );
    assert_eq!(
        errs[0].to_line(),
        "spec.volumeClaimTemplates[1].metadata.name: Duplicate value: \"data\""
    );
    let mut labelled = claim("www");
    labelled["metadata"]["labels"] = json!({"tier": "-bad-"});
    assert_eq!(
        fields(&check(json!([labelled]))),
        ["spec.volumeClaimTemplates[0].metadata.labels"]
    );
}

#[test]
fn mounts_may_name_claim_templates() {
    let def = by_kind(Kind::StatefulSet);
    let mount = |s: &mut Value, name: &str| {
        s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": name, "mountPath": "/usr/share/nginx/html"}]);
    };
    let mut s = with_claims(json!([claim("data")]));
    mount(&mut s, "data");
    let errs = def.validate_create(&created(def, s));
    assert!(errs.is_empty(), "{errs:?}");
    // A template volume of the claim's name is replaced by the claim, as the controller does.
    let mut s = with_claims(json!([claim("data")]));
    mount(&mut s, "data");
    s["spec"]["template"]["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    assert!(def.validate_create(&created(def, s)).is_empty());
    // An unknown volume is still refused, with or without claim templates.
    for templates in [json!([claim("data")]), json!([])] {
        let mut s = with_claims(templates);
        mount(&mut s, "cache");
        let errs = def.validate_create(&created(def, s));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_line(),
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"cache\""
        );
    }
}

#[test]
fn updates_change_only_the_mutable_fields() {
    let def = by_kind(Kind::StatefulSet);
    let old = created(def, statefulset());
    let update = |edit: &dyn Fn(&mut Value)| {
        let mut new = old.clone();
        edit(&mut new);
        def.default_on_update(&old, &mut new);
        def.validate_update(&old, &new)
    };
    assert!(update(&|n| n["spec"]["replicas"] = json!(5)).is_empty());
    assert!(
        update(&|n| n["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2"))
            .is_empty()
    );
    assert!(update(&|n| n["spec"]["updateStrategy"] = json!({"type": "OnDelete"})).is_empty());
    assert!(update(&|n| n["spec"]["ordinals"] = json!({"start": 1})).is_empty());
    assert!(update(&|n| n["spec"]["minReadySeconds"] = json!(3)).is_empty());
    assert!(
        update(
            &|n| n["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Delete")
        )
        .is_empty()
    );
    for edit in [
        &(|n: &mut Value| n["spec"]["serviceName"] = json!("other")) as &dyn Fn(&mut Value),
        &|n| n["spec"]["podManagementPolicy"] = json!("Parallel"),
        // kube 1.32 keeps revisionHistoryLimit as created.
        &|n| n["spec"]["revisionHistoryLimit"] = json!(3),
        &|n| {
            n["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}])
        },
        &|n| {
            n["spec"]["selector"] = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "app", "operator": "Exists"}]})
        },
    ] {
        let errs = update(edit);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_line(),
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        );
    }
    // The claim templates of a set stay as they are; sending them again unchanged is no change.
    let old = created(def, with_claims(json!([claim("www")])));
    let resend = |edit: &dyn Fn(&mut Value)| {
        let mut new = created(def, with_claims(json!([claim("www")])));
        edit(&mut new);
        def.default_on_update(&old, &mut new);
        def.validate_update(&old, &new)
    };
    assert!(resend(&|n| n["spec"]["replicas"] = json!(3)).is_empty());
    let errs = resend(&|n| {
        n["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
            json!("2Gi")
    });
    assert_eq!(fields(&errs), ["spec"]);
}

#[test]
fn table_has_kubes_columns() {
    let def = by_kind(Kind::StatefulSet);
    let mut s = created(def, statefulset());
    s["spec"]["replicas"] = json!(3);
    s["status"]["readyReplicas"] = json!(2);
    let t = crate::resources::table::table(def, &[s], None, "None", true);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Name", "Ready", "Age", "Containers", "Images"]);
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "web");
    assert_eq!(cells[1], "2/3");
    assert_eq!(cells[3], "nginx");
    assert_eq!(cells[4], "nginx:1.27");
}
