#!/usr/bin/env python3
"""Regenerates extensions_data.rs: the x-kubernetes-* list/patch metadata of upstream types.

The facts (which field of which type merges by which key) come from the struct tags and
`+listType`/`+listMapKey`/`+mapType`/`+structType` markers of the Kubernetes API types at
one release branch. Usage, with git clones (or bare mirrors) of the upstream repositories:

    gen_extensions.py BRANCH API_REPO APIMACHINERY_REPO APIEXTENSIONS_REPO AGGREGATOR_REPO \
        K8S_OPENAPI_SRC > extensions_data.rs

BRANCH is e.g. release-1.33; K8S_OPENAPI_SRC the k8s-openapi crate's `src/v1_33` directory,
used to keep only the API versions that crate models. Only the data is extracted.
"""

import os
import re
import subprocess
import sys

FIELD = re.compile(r"^\t(\w+)\s+(\S.*?)\s+`(.*)`\s*$")
TYPE = re.compile(r"^type (\w+) struct \{")
STRING_TYPE = re.compile(r"^type (\w+) string\b")
CONST = re.compile(r'^(?:const )?\t?(\w+)\s+(\w+)\s*=\s*"([^"]*)"')
TAG = re.compile(r'(\w+):"([^"]*)"')


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout


def go_files(repo, branch, under):
    names = git(repo, "ls-tree", "-r", "--name-only", branch, under).split()
    for name in names:
        if not name.endswith(".go") or name.endswith("_test.go"):
            continue
        base = name.rsplit("/", 1)[-1]
        if base.startswith("zz_generated") or base.startswith("generated") or "swagger_doc" in base:
            continue
        yield name


def markers(comments):
    out = {}
    for c in comments:
        m = re.match(r"//\s*\+([\w.-]+)(?:=(.*))?$", c.strip())
        if m:
            out.setdefault(m.group(1), []).append((m.group(2) or "").strip())
    return out


def parse(source, prefix, out):
    comments = []
    current = None
    for line in source.splitlines():
        stripped = line.strip()
        if current is None:
            m = STRING_TYPE.match(line)
            if m and "enum" in markers(comments):
                out["enum_types"].add(prefix + m.group(1))
            m = CONST.match(line)
            if m:
                out["consts"].setdefault(prefix + m.group(2), set()).add(m.group(3))
            m = TYPE.match(line)
            if m:
                current = prefix + m.group(1)
                mk = markers(comments)
                if mk.get("structType") == ["atomic"] or mk.get("mapType") == ["atomic"]:
                    out["atomic"].add(current)
                comments = []
            elif stripped.startswith("//"):
                comments.append(stripped)
            else:
                comments = []
            continue
        if line.startswith("}"):
            current = None
            comments = []
            continue
        if stripped.startswith("//"):
            comments.append(stripped)
            continue
        m = FIELD.match(line)
        if not m:
            comments = []
            continue
        tags = dict(TAG.findall(m.group(3)))
        json_name = tags.get("json", "").split(",")[0]
        if not json_name or json_name == "-":
            comments = []
            continue
        mk = markers(comments)
        comments = []
        strategy = tags.get("patchStrategy") or (mk.get("patchStrategy") or [None])[0]
        merge_key = tags.get("patchMergeKey") or (mk.get("patchMergeKey") or [None])[0]
        if strategy:
            out["patch"].append((current, json_name, merge_key, strategy))
        list_type = (mk.get("listType") or [None])[0]
        if list_type:
            keys = mk.get("listMapKey") or []
            out["list"].append((current, json_name, list_type, keys))
        go_type = m.group(2).lstrip("*")
        is_list = go_type.startswith("[]")
        go_type = go_type.removeprefix("[]").lstrip("*").split(".")[-1]
        out["fields"].append((current, json_name, prefix + go_type, is_list))
        map_type = (mk.get("mapType") or [None])[0]
        if map_type:
            out["map"].append((current, json_name, map_type))


def rust_str(s):
    return '"' + s + '"'


def main():
    branch, api, apimachinery, apiext, aggregator, k8s_openapi = sys.argv[1:7]
    out = {"patch": [], "list": [], "map": [], "atomic": set(), "enum_types": set(),
           "consts": {}, "fields": []}
    sources = []
    for name in go_files(api, branch, "."):
        pkg = name.rsplit("/", 1)[0]
        if pkg.count("/") != 1 or not os.path.isdir(os.path.join(k8s_openapi, "api", pkg)):
            continue
        sources.append((api, name, "io.k8s.api." + pkg.replace("/", ".") + "."))
    for name in go_files(apimachinery, branch, "pkg/apis/meta/v1"):
        if name.count("/") == 4:
            sources.append((apimachinery, name, "io.k8s.apimachinery.pkg.apis.meta.v1."))
    for name in go_files(apiext, branch, "pkg/apis/apiextensions/v1"):
        if name.count("/") == 4:
            sources.append((apiext, name, "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."))
    for name in go_files(aggregator, branch, "pkg/apis/apiregistration/v1"):
        if name.count("/") == 4:
            sources.append((aggregator, name, "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1."))
    for repo, name, prefix in sources:
        parse(git(repo, "show", f"{branch}:{name}"), prefix, out)

    print(f"// @generated by gen_extensions.py from the upstream API types at {branch}.")
    print("// Do not edit by hand: rerun the script.")
    print()
    print("use super::extensions::Enum;")
    print("use super::{ListType, MapType, PatchStrategy};")
    print()
    print("const fn p(definition: &'static str, field: &'static str, merge_key: Option<&'static str>, "
          "strategy: &'static str) -> PatchStrategy {")
    print("    PatchStrategy { definition, field, merge_key, strategy }")
    print("}")
    print()
    print("const fn l(definition: &'static str, field: &'static str, list_type: &'static str, "
          "map_keys: &'static [&'static str]) -> ListType {")
    print("    ListType { definition, field, list_type, map_keys }")
    print("}")
    print()
    print("pub(super) static PATCH_STRATEGIES: &[PatchStrategy] = &[")
    for d, f, k, s in sorted(set(out["patch"]), key=lambda x: (x[0], x[1])):
        key = f"Some({rust_str(k)})" if k else "None"
        print(f"    p({rust_str(d)}, {rust_str(f)}, {key}, {rust_str(s)}),")
    print("];")
    print()
    print("pub(super) static LIST_TYPES: &[ListType] = &[")
    seen = set()
    for d, f, t, keys in sorted(out["list"], key=lambda x: (x[0], x[1])):
        if (d, f) in seen:
            continue
        seen.add((d, f))
        ks = ", ".join(rust_str(k) for k in keys)
        print(f"    l({rust_str(d)}, {rust_str(f)}, {rust_str(t)}, &[{ks}]),")
    print("];")
    print()
    print("pub(super) static MAP_TYPES: &[MapType] = &[")
    for d, f, t in sorted(set(out["map"])):
        print(f"    MapType {{ definition: {rust_str(d)}, field: {rust_str(f)}, map_type: {rust_str(t)} }},")
    print("];")
    print()
    print("/// Fields whose Go type is a `+enum` string type: their allowed values (on the items")
    print("/// for lists).")
    print("pub(super) static ENUMS: &[Enum] = &[")
    by_name = {}
    for t in out["enum_types"]:
        by_name.setdefault(t.rsplit(".", 1)[1], []).append(t)
    for d, f, t, is_list in sorted(set(out["fields"])):
        if t not in out["enum_types"]:
            # A type from another package (`v1.PullPolicy`): resolve it if the name is unique.
            candidates = by_name.get(t.rsplit(".", 1)[1], [])
            if len(candidates) != 1:
                continue
            t = candidates[0]
        values = sorted(out["consts"].get(t, ()))
        if not values:
            continue
        vs = ", ".join(rust_str(v) for v in values)
        print(f"    Enum {{ definition: {rust_str(d)}, field: {rust_str(f)}, list: {str(is_list).lower()}, "
              f"values: &[{vs}] }},")
    print("];")
    print()
    print("/// Definitions marked `+structType=atomic` (or `+mapType=atomic`) as a whole.")
    print("pub(super) static ATOMIC_STRUCTS: &[&str] = &[")
    for d in sorted(out["atomic"]):
        print(f"    {rust_str(d)},")
    print("];")


if __name__ == "__main__":
    main()
