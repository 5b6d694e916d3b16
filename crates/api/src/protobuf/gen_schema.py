#!/usr/bin/env python3
"""Regenerate schema.txt, the wire schema the protobuf decoder walks.

Usage: gen_schema.py API_DIR APIMACHINERY_DIR RELEASE > schema.txt

API_DIR and APIMACHINERY_DIR are checkouts of the k8s.io/api and k8s.io/apimachinery
modules at the release r8s serves (v0.33.x for Kubernetes 1.33). Field numbers and types
come from each package's generated.proto; the JSON name and the Go shape of each field
(pointer or not, omitempty, inline) come from the Go struct tags next to it, because the
JSON form of a decoded object depends on them and the .proto files do not say.

Output format (one record per line, space separated):
  P <proto package> <apiVersion>
  M <full message name> <flags>        flags: L = JSON array of the `items` field, or -
  F <number> <json name> <card> <type> <value type> <flags>
      card: o optional, r repeated, m map (type = key type, value type = map value)
      value type is - unless card is m
      flags: n nilable in Go (pointer, slice or map; absent means omitted),
             e omitempty, i inline (fields merge into the parent), x not in JSON, or -
"""

import os
import re
import sys

SCALARS = {
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
}

# apimachinery packages whose messages the API types refer to.
MACHINERY_PKGS = [
    "pkg/apis/meta/v1",
    "pkg/api/resource",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_proto(path):
    """Returns (package, {message: [(num, name, card, type, valtype)]})."""
    text = strip_comments(open(path, encoding="utf-8").read())
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    messages = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = re.match(r"message\s+(\w+)\s*\{\s*(\})?$", line)
        if m:
            if current is not None:
                sys.exit(f"{path}: nested message {m.group(1)} is not supported")
            current = m.group(1)
            messages[current] = []
            if m.group(2):
                current = None
            continue
        if current is None:
            if line.startswith(("syntax", "package", "import", "option")):
                continue
            sys.exit(f"{path}: unexpected line outside a message: {line}")
        if line == "}":
            current = None
            continue
        m = re.match(r"(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;$", line)
        if m:
            card = "r" if m.group(1) == "repeated" else "o"
            messages[current].append((int(m.group(4)), m.group(3), card, m.group(2), "-"))
            continue
        m = re.match(r"map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;$", line)
        if m:
            messages[current].append((int(m.group(4)), m.group(3), "m", m.group(1), m.group(2)))
            continue
        sys.exit(f"{path}: unsupported line in message {current}: {line}")
    return package, messages


def resolve(typ, package, known):
    if typ in SCALARS:
        return typ
    full = typ[1:] if typ.startswith(".") else f"{package}.{typ}"
    if full not in known:
        sys.exit(f"unknown type {typ} in package {package}")
    return full


TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go(dirpath):
    """Returns ({struct: {proto number: (json, flags)}}, {named slice types}, group name)."""
    structs = {}
    slices = set()
    nilable_named = set()
    group = None
    for name in sorted(os.listdir(dirpath)):
        if not name.endswith(".go") or name.endswith("_test.go"):
            continue
        text = open(os.path.join(dirpath, name), encoding="utf-8").read()
        m = re.search(r'^\s*(?:const\s+)?GroupName\s*=\s*"([^"]*)"', text, re.M)
        if m and name == "register.go":
            group = m.group(1)
        for m in re.finditer(r"^type\s+(\w+)\s+(\[\]|map\[)", text, re.M):
            nilable_named.add(m.group(1))
            if m.group(2) == "[]":
                slices.add(m.group(1))
        current = None
        for line in text.splitlines():
            if current is None:
                m = re.match(r"^type\s+(\w+)\s+struct\s*\{(.*)$", line)
                if m:
                    structs.setdefault(m.group(1), {})
                    if "}" not in m.group(2):
                        current = m.group(1)
                continue
            if line.startswith("}"):
                current = None
                continue
            code = line.strip()
            if code.startswith("//") or "`" not in code:
                continue
            decl, _, tag = code.partition("`")
            tags = dict(TAG_RE.findall(tag))
            proto = tags.get("protobuf")
            if not proto or proto == "-":
                continue
            number = int(proto.split(",")[1])
            tokens = decl.split()
            gotype = tokens[-1]
            json_tag = tags.get("json", "")
            json_parts = json_tag.split(",")
            flags = ""
            base = gotype.lstrip("*").split(".")[-1]
            if gotype.startswith(("*", "[]", "map[")) or base in nilable_named:
                flags += "n"
            if "omitempty" in json_parts[1:]:
                flags += "e"
            if "inline" in json_parts[1:]:
                flags += "i"
            json_name = json_parts[0]
            if json_name == "-":
                flags += "x"
            structs[current][number] = (json_name, flags, base)
    return structs, slices, nilable_named, group


def main():
    api_dir, machinery_dir, release = sys.argv[1], sys.argv[2], sys.argv[3]
    dirs = []
    for grp in sorted(os.listdir(api_dir)):
        gdir = os.path.join(api_dir, grp)
        if not os.path.isdir(gdir):
            continue
        for ver in sorted(os.listdir(gdir)):
            if re.fullmatch(r"v\d+", ver) and os.path.exists(os.path.join(gdir, ver, "generated.proto")):
                dirs.append(os.path.join(gdir, ver))
    dirs += [os.path.join(machinery_dir, p) for p in MACHINERY_PKGS]

    packages = []
    for d in dirs:
        package, messages = parse_proto(os.path.join(d, "generated.proto"))
        structs, slices, nilable_named, group = parse_go(d)
        packages.append((d, package, messages, structs, slices, nilable_named, group))
    # Named slice and map types are nilable wherever they are used, whichever package
    # declares them.
    all_nilable = set()
    for p in packages:
        all_nilable |= p[5]
    known = {f"{p[1]}.{m}" for p in packages for m in p[2]}

    out = [
        f"# Generated by gen_schema.py from k8s.io/api and k8s.io/apimachinery {release}.",
        "# Do not edit; see gen_schema.py for the format.",
    ]
    missing = 0
    for d, package, messages, structs, slices, _, group in packages:
        if group is not None and (d.startswith(api_dir) or group == "meta.k8s.io"):
            version = os.path.basename(d)
            out.append(f"P {package} {group + '/' if group else ''}{version}")
        for msg in sorted(messages):
            go = structs.get(msg, {})
            mflags = "L" if msg in slices else "-"
            out.append(f"M {package}.{msg} {mflags}")
            for num, name, card, typ, valtyp in sorted(messages[msg]):
                typ = resolve(typ, package, known)
                if valtyp != "-":
                    valtyp = resolve(valtyp, package, known)
                info = go.get(num)
                if info is None:
                    if msg not in slices:
                        missing += 1
                        print(f"note: no Go field for {package}.{msg}.{name}", file=sys.stderr)
                    json_name, flags = name, "n"
                else:
                    json_name, flags, base = info
                    if base in all_nilable and "n" not in flags:
                        flags += "n"
                    if "i" in flags:
                        json_name = name
                    elif json_name != name and "x" not in flags:
                        print(f"note: {package}.{msg}.{name} is {json_name} in JSON", file=sys.stderr)
                    if not json_name:
                        json_name = name
                out.append(f"F {num} {json_name} {card} {typ} {valtyp} {flags or '-'}")
    print(f"note: {missing} fields without Go struct info", file=sys.stderr)
    print("\n".join(out))


if __name__ == "__main__":
    main()
