#!/usr/bin/env python3
"""Fails when a module of src/ imports one it must never import (see DESIGN.md):

- model/ (the plain domain types), tls.rs and callers/ (the callers file) import nothing
  of the crate;
- graph/ is a leaf: it may use model/, tls and metrics, nothing else of the crate;
- sandbox/ never imports graph/ (an independent reading of Meta's contract), nor store/;
- store/ may use model/, nothing else of the crate (and graph/, a leaf, never uses it);
- keyring/ (whose token each call carries) may use model/, graph/ and store/ only;
- numbers/ (the domain) never imports the layers above it: customers/, watch/, grpc/, http/;
- only main.rs, server.rs and config.rs wire the sandbox in;
- metrics.rs knows no tonic (gRPC call metrics live in grpc/).

fuzzing.rs (test builds only: proptest settings and strategies) may be used by any layer.

Paths are read from the source text: `crate::x`, `crate::{x, y::z}`, `super::...` climbing
out of a module, and `waba_numbers::x` in main.rs. Comments are skipped.
Usage: scripts/check-layers.py [SRC_DIR]   (default: src)
"""
import pathlib
import re
import sys

LEAVES = {"model", "tls", "callers"}  # import nothing of the crate
ONLY = {  # may import these and nothing else
    "graph": {"model", "tls", "metrics"},
    "store": {"model"},
    "keyring": {"model", "graph", "store"},
}
FORBIDDEN = {
    "sandbox": {"graph", "store"},
    "numbers": {"customers", "watch", "grpc", "http", "server"},
}
SANDBOX_WIRING = {"main", "server", "config", "sandbox"}
# Test-only support every layer's `#[cfg(test)]` code may use (src/fuzzing.rs).
TEST_SUPPORT = {"fuzzing"}
NO_TONIC = {"metrics"}

PATH = re.compile(r"\b(crate|waba_numbers|(?:super::)*super|self)::(\{|[A-Za-z_]\w*)")


def module_path(src: pathlib.Path, file: pathlib.Path) -> list:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return [] if parts == ["lib"] else ["main"]
    return parts


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def braced_names(text: str, start: int) -> list:
    """Top-level names inside the `{...}` that opens at `start`."""
    depth, names, current = 0, [], ""
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1:
            if ch == ",":
                names.append(current)
                current = ""
            else:
                current += ch
    names.append(current)
    firsts = []
    for name in names:
        name = name.strip()
        m = re.match(r"[A-Za-z_]\w*", name)
        if m and m.group(0) != "self":
            firsts.append(m.group(0))
    return firsts


def imported_modules(text: str, own: list) -> set:
    """Top-level crate modules a file refers to, other than its own."""
    found = set()
    for m in PATH.finditer(text):
        root, first = m.group(1), m.group(2)
        if root == "self":
            continue
        if root.startswith("super"):
            # `super` is the parent of the file's module (foo/bar.rs: foo; foo/mod.rs:
            # the crate root).
            ups = root.count("super")
            if ups > len(own) or own[: len(own) - ups]:
                continue  # still inside a top-level module: not a crossing
            # Climbed to the crate root: `first` names a top-level module.
        names = braced_names(text, m.start(2)) if first == "{" else [first]
        found.update(names)
    top = own[0] if own else None
    return {n for n in found if n != top}


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    crate_modules = {p.stem if p.is_file() else p.name for p in src.iterdir()} - {"lib", "main"}
    problems = []
    for file in sorted(src.rglob("*.rs")):
        own = module_path(src, file)
        top = own[0] if own else "lib"
        text = strip_comments(file.read_text())
        used = (imported_modules(text, own) & crate_modules) - TEST_SUPPORT
        rel = file.as_posix()
        if top in LEAVES and used:
            problems.append(f"{rel}: {top} imports nothing of the crate, but uses {sorted(used)}")
        for bad in sorted(used & FORBIDDEN.get(top, set())):
            problems.append(f"{rel}: {top} must not import {bad}")
        if top in ONLY:
            for bad in sorted(used - ONLY[top]):
                problems.append(f"{rel}: {top} may import only {sorted(ONLY[top])}, not {bad}")
        if "sandbox" in used and top not in SANDBOX_WIRING:
            problems.append(f"{rel}: only main.rs, server.rs and config.rs may import sandbox")
        if top in NO_TONIC and re.search(r"\btonic\b", text):
            problems.append(f"{rel}: {top} must not know tonic")
    for problem in problems:
        print(f"layering: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"layering: ok ({len(list(src.rglob('*.rs')))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
