#!/usr/bin/env python3
"""Generate apiserver-lite/src/patch/table.rs: the strategic-merge-patch and list metadata of the kinds skiff
serves, read from the Go struct tags and markers of k8s.io/api (the facts kube's API server and kubectl use:
`patchStrategy`, `patchMergeKey`, `+listType`, `+listMapKey`), plus the type of every struct-typed field so
that a patch can be walked type by type.

    git clone https://github.com/kubernetes/api && git -C api checkout v0.32.13
    scripts/gen-patch-meta.py api > apiserver-lite/src/patch/table.rs

Only the metadata is taken; nothing of kube's code.
"""

import os
import re
import subprocess
import sys

PACKAGES = [
    "core/v1", "apps/v1", "batch/v1", "policy/v1", "rbac/v1", "storage/v1", "networking/v1",
    "autoscaling/v1", "autoscaling/v2", "coordination/v1", "certificates/v1", "discovery/v1",
    "events/v1", "authentication/v1", "authorization/v1", "scheduling/v1", "node/v1",
]
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
# k8s.io/apimachinery's meta/v1 fields that carry metadata (types.go of apimachinery v0.32).
META_FIELDS = [
    (f"{META}.ObjectMeta", "ownerReferences", f"{META}.OwnerReference", "merge", "uid", "map", ["uid"]),
    (f"{META}.ObjectMeta", "finalizers", "", "merge", "", "set", []),
    (f"{META}.ObjectMeta", "managedFields", f"{META}.ManagedFieldsEntry", "", "", "atomic", []),
    (f"{META}.LabelSelector", "matchExpressions", f"{META}.LabelSelectorRequirement", "", "", "atomic", []),
    (f"{META}.LabelSelectorRequirement", "values", "", "", "", "atomic", []),
]
META_STRUCTS = {"ObjectMeta", "LabelSelector", "LabelSelectorRequirement", "OwnerReference",
                "ManagedFieldsEntry", "Condition", "ListMeta"}

STRUCT_RE = re.compile(r"^type (\w+) struct \{$")
FIELD_RE = re.compile(r"^\t(?:(\w+)\s+)?([\w.\[\]*]+)\s+`([^`]*)`")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def schema_prefix(pkg):
    group, version = pkg.split("/")
    return f"io.k8s.api.{group}.{version}"


def imports(src):
    out = {}
    block = re.search(r"^import \((.*?)^\)", src, re.S | re.M)
    lines = block.group(1).splitlines() if block else re.findall(r"^import (.*)$", src, re.M)
    for line in lines:
        m = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
        if not m:
            continue
        alias = m.group(1) or m.group(2).rsplit("/", 1)[-1]
        out[alias] = m.group(2)
    return out


def resolve(go_type, pkg, imp):
    """Schema name of a Go type used in package `pkg`, as (kind, name): kind is 'list', 'map' or ''."""
    kind = ""
    t = go_type.lstrip("*")
    if t.startswith("[]"):
        kind, t = "list", t[2:].lstrip("*")
    elif t.startswith("map["):
        kind, t = "map", t[t.index("]") + 1:].lstrip("*")
    if "." in t:
        alias, name = t.split(".", 1)
        path = imp.get(alias, "")
        if path == "k8s.io/apimachinery/pkg/apis/meta/v1":
            return kind, (f"{META}.{name}" if name in META_STRUCTS else "")
        m = re.match(r"k8s\.io/api/(\w+)/(\w+)$", path)
        return kind, (f"io.k8s.api.{m.group(1)}.{m.group(2)}.{name}" if m else "")
    return kind, (f"{schema_prefix(pkg)}.{t}" if t[:1].isupper() else "")


def parse(root):
    structs = {}  # schema name -> list of field dicts (inline embeds as {"inline": name})
    for pkg in PACKAGES:
        d = os.path.join(root, pkg)
        for f in sorted(os.listdir(d)):
            if not f.endswith(".go") or f.endswith("_test.go") or f.startswith(("zz_", "generated")) \
                    or "swagger" in f:
                continue
            src = open(os.path.join(d, f)).read()
            imp = imports(src)
            current, markers = None, []
            for line in src.splitlines():
                if current is None:
                    m = STRUCT_RE.match(line)
                    if m:
                        current = f"{schema_prefix(pkg)}.{m.group(1)}"
                        structs[current] = []
                        markers = []
                    continue
                if line == "}":
                    current = None
                    continue
                s = line.strip()
                if s.startswith("//"):
                    markers.append(s[2:].strip())
                    continue
                m = FIELD_RE.match(line)
                if not m:
                    markers = []
                    continue
                name, go_type, tag = m.groups()
                tags = dict(TAG_RE.findall(tag))
                json_name = tags.get("json", "").split(",")[0]
                kind, item = resolve(go_type, pkg, imp)
                if name is None and tags.get("json", "").startswith(",inline"):
                    if item:
                        structs[current].append({"inline": item})
                    markers = []
                    continue
                if not json_name or json_name == "-":
                    markers = []
                    continue
                list_type = next((x.split("=", 1)[1] for x in markers if x.startswith("+listType=")), "")
                map_keys = [x.split("=", 1)[1] for x in markers if x.startswith("+listMapKey=")]
                # A map's values are not walked by type (the served kinds have maps of strings, string
                # lists and quantities only).
                if kind == "map":
                    item = ""
                structs[current].append({
                    "field": json_name,
                    "item": item,
                    "strategy": tags.get("patchStrategy", ""),
                    "key": tags.get("patchMergeKey", ""),
                    "list": list_type,
                    "keys": map_keys,
                })
                markers = []
    return structs


def flatten(structs, name, seen=()):
    out = []
    for f in structs.get(name, []):
        if "inline" in f:
            if f["inline"] not in seen:
                out.extend(flatten(structs, f["inline"], seen + (name,)))
        else:
            out.append(f)
    return out


def rust_str(s):
    return '"' + s + '"'


def main():
    root = sys.argv[1]
    structs = parse(root)
    rows = []
    for name in structs:
        for f in flatten(structs, name):
            item = f["item"] if (f["item"] in structs or f["item"].startswith(META)) else ""
            if not (item or f["strategy"] or f["list"]):
                continue
            rows.append((name, f["field"], item, f["strategy"], f["key"], f["list"], f["keys"]))
    rows.extend(META_FIELDS)
    rows = sorted(set((r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6])) for r in rows))
    described = subprocess.run(["git", "-C", root, "describe", "--tags"], capture_output=True, text=True)
    version = described.stdout.strip() or "unknown"
    print(f"// Generated by scripts/gen-patch-meta.py from k8s.io/api {version} (struct tags and markers); do not edit.")
    print("// (type, field, the field's struct type or \"\", patchStrategy, patchMergeKey, +listType, +listMapKey)")
    print()
    print("use super::meta::Field;")
    print()
    print("#[rustfmt::skip]")
    print("pub(super) const FIELDS: &[Field] = &[")
    for t, field, item, strategy, key, list_type, keys in rows:
        ks = ", ".join(rust_str(k) for k in keys)
        print(f"    Field({rust_str(t)}, {rust_str(field)}, {rust_str(item)}, {rust_str(strategy)}, "
              f"{rust_str(key)}, {rust_str(list_type)}, &[{ks}]),")
    print("];")


if __name__ == "__main__":
    main()
