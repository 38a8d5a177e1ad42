#!/usr/bin/env python3
"""Where a process's CPU goes per call, from `perf script -F ip,sym,dso` output.

  --by crate     self time (the sampled frame) by crate; the kernel and the allocator apart
  --by category  each sample to the first category below (in list order) one of whose
                 patterns matches any frame of its stack: specific work first, then the
                 libraries it runs in

CPU_PER_CALL_US (measured without perf, from /proc) turns shares into µs per call.

  perf record -e cpu-clock -F 4000 --call-graph dwarf,16384 -p PID -o x.data -- sleep 4
  perf script -i x.data -F ip,sym,dso > x.script
  bench/perf-fold.py --by category x.script 105
"""
import argparse
import re
from collections import Counter

CATEGORIES = [
    ("tracing (spans, log events)", [r"\btracing_subscriber::", r"tracing_core::", r"tracing::span"]),
    ("metrics (counters, histograms, gauges)",
     [r"\bmetrics::", r"metrics_exporter_prometheus", r"waba_numbers::metrics::", r"grpc::metrics::"]),
    ("JSON decode (serde_json)", [r"serde_json::de"]),
    ("time parsing / formatting (chrono)", [r"\bchrono::"]),
    ("usage header (X-Business-Use-Case-Usage)", [r"graph::usage::"]),
    ("Graph field conversion (wire → model → proto)", [r"graph::wire::", r"grpc::convert::"]),
    ("URL and query building (url, form_urlencoded)",
     [r"\burl::", r"form_urlencoded", r"RequestBuilder::query", r"IntoUrl"]),
    ("memory allocation (malloc/free)",
     [r" (_int_malloc|_int_free|malloc|cfree@GLIBC_2.2.5|realloc|_int_realloc|malloc_consolidate"
      r"|unlink_chunk\.constprop\.0)( \(|$)"]),
    ("futex (thread wake-ups, contended locks)", [r"futex"]),
    ("socket writes (kernel TCP send, loopback receive)",
     [r"writev|__x64_sys_write|sock_write_iter|tcp_sendmsg"]),
    ("socket reads", [r"recvfrom|__x64_sys_read|tcp_recvmsg"]),
    ("epoll wait, park, context switch",
     [r"epoll_wait|finish_task_switch|__schedule|Context::park|time::Driver::park"
      r"|io::driver::Driver::turn|_raw_spin_unlock_irqrestore|irqentry_exit"]),
    ("HTTP/1 client (hyper client, reqwest)", [r"hyper::client|hyper_util::client|\breqwest::"]),
    ("HTTP/2 server (h2, hyper server, tonic, prost)",
     [r"\bh2::|hyper::proto::h2|hyper::server|\btonic::|\bprost|grpc::transport|grpc::codec"]),
    ("Graph client (GraphClient: retries, token, errors)", [r"waba_numbers::graph::"]),
    ("read path (cache, single-flight, directory, spawn)",
     [r"numbers::read::", r"numbers::flight", r"\bmoka::", r"numbers::directory",
      r"numbers::throttle", r"futures_util::future::future::shared"]),
    ("gRPC handler (validate, deadline)", [r"waba_numbers::grpc::"]),
    ("tokio runtime", [r"\btokio::"]),
]
COMPILED = [(name, [re.compile(p) for p in pats]) for name, pats in CATEGORIES]
ALLOCATOR = re.compile(r"^(_int_malloc|_int_free|malloc|cfree@GLIBC_2.2.5|realloc|_int_realloc"
                       r"|malloc_consolidate|unlink_chunk\.constprop\.0|__libc_malloc|__GI___libc_\w+)$")


def stacks(path):
    stack = []
    for line in open(path, errors="replace"):
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line.startswith((" ", "\t")):
            stack.append(line.rstrip())
    if stack:
        yield stack


def by_category(stack):
    for name, patterns in COMPILED:
        if any(p.search(frame) for p in patterns for frame in stack):
            return name
    return "other"


def by_crate(stack):
    parts = stack[0].strip().split(None, 1)
    rest = parts[1] if len(parts) > 1 else "?"
    if "kernel.kallsyms" in rest:
        return "kernel"
    symbol = re.sub(r"\s*\(.*\)\s*$", "", rest)
    if ALLOCATOR.match(symbol):
        return "libc malloc/free"
    if "libc.so" in rest:
        return "libc other (memcpy, ...)"
    m = re.search(r"([a-z_][a-z0-9_]*)::", symbol)
    return m.group(1) if m else symbol[:40]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--by", choices=["crate", "category"], default="category")
    parser.add_argument("script")
    parser.add_argument("cpu_per_call_us", type=float)
    args = parser.parse_args()
    key = by_crate if args.by == "crate" else by_category
    counts = Counter(key(stack) for stack in stacks(args.script))
    total = sum(counts.values())
    for name, n in counts.most_common(16):
        print(f"{100 * n / total:5.1f} %  {args.cpu_per_call_us * n / total:6.1f} µs/call  {name}")


if __name__ == "__main__":
    main()
