"""The Python `kubernetes` client against skiff-apiserver: the new kinds, paging, watch, deletecollection,
server-side apply with a conflict. Usage: python3 client_flows.py KUBECONFIG. Exits non-zero on failure."""

import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    ns = "default"

    for i in range(5):
        v1.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"py{i}", labels={"app": "py", "n": str(i % 2)}),
            data={"i": str(i)}))

    # Paging with limit/continue.
    names, token = [], None
    while True:
        page = v1.list_namespaced_config_map(ns, label_selector="app=py", limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"py{i}" for i in range(5)], names

    # Secrets: stringData lands in data; services get a cluster IP.
    sec = v1.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="pysecret"), string_data={"k": "v"}))
    assert sec.data == {"k": "dg=="}, sec.data
    assert sec.type == "Opaque"
    svc = v1.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="pysvc"),
        spec=client.V1ServiceSpec(selector={"app": "py"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    assert svc.spec.cluster_ip.startswith("10."), svc.spec.cluster_ip
    try:
        v1.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="badsvc"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=0)])))
        raise AssertionError("port 0 accepted")
    except ApiException as e:
        assert e.status == 422, e.status
    sas = [s.metadata.name for s in v1.list_namespaced_service_account(ns).items]
    assert "default" in sas, sas

    # Watch: a configmap created after the watch starts arrives as ADDED.
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version
    seen = []
    w = watch.Watch()

    def consume():
        for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "pylate":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="pylate"), data={"x": "1"}))
    t.join(15)
    assert ("ADDED", "pylate") in seen, seen

    # Server-side apply: create, conflict (409), force.
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pyssa"}, "data": {"a": "1"}}
    v1.patch_namespaced_config_map("pyssa", ns, body, field_manager="alice",
                                   _content_type="application/apply-patch+yaml")
    body["data"]["a"] = "2"
    try:
        v1.patch_namespaced_config_map("pyssa", ns, body, field_manager="bob",
                                       _content_type="application/apply-patch+yaml")
        raise AssertionError("conflict not detected")
    except ApiException as e:
        assert e.status == 409 and "alice" in e.body, (e.status, e.body)
    got = v1.patch_namespaced_config_map("pyssa", ns, body, field_manager="bob", force=True,
                                         _content_type="application/apply-patch+yaml")
    assert got.data["a"] == "2"
    assert "bob" in [m.manager for m in got.metadata.managed_fields]

    # deletecollection with a label selector.
    v1.delete_collection_namespaced_config_map(ns, label_selector="n=0")
    left = sorted(c.metadata.name for c in v1.list_namespaced_config_map(ns, label_selector="app=py").items)
    assert left == ["py1", "py3"], left
    print("python client flows: ok")


if __name__ == "__main__":
    main(sys.argv[1])
