#!/usr/bin/env python3
"""The work one Describe page does as the account grows, counted rather than timed.

`stratus-bench pages` times pages; on these machines a page's time swings by tens of percent
between runs while the pages themselves do not change (docs/benchmarks.md, "Describe pages").
This runs the same cases under valgrind's callgrind, each stored size in a process of its own
over the stores `stratus-bench pages --keep DIR` filled, and counts for each timed loop (the
bench marks its start and end, `counted_calls_begin`/`counted_calls_end` in bench/src/pages.rs):

- instructions per call: the request handler's whole work (signing the request, parsing,
  reading the store, writing the XML), which no other process's load changes;
- redb page reads per call (`PagedCachedFile::read`, from redb's cache or the file) and
  reads from the file (`pread64`), which show how deep the B-trees are and whether the
  page cache holds what the page reads;
- the answer's length, since a page that says more costs more to write.

What it does not count is where in memory the records lie: a page whose records sit far
apart misses the CPU's caches more often, which shows in time but not here. (Callgrind's
cache model takes this machine's last-level cache for 384 MiB, more than the stores hold.)

    python3 bench/pages_count.py --bench target/release/stratus-bench --keep DIR \\
        --sizes 1000,10000,100000 --calls 20 --out DIR [--only CASES]

Writes `count.json` in `--out` and prints one line per case and page size.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

# Every action's cases; without `--only` the bench would also walk every page, which takes
# hours under valgrind at 100,000 stored and is a time, not a count.
ALL = ("DescribeInstances,DescribeVolumes,DescribeTags,DescribeVpcs,DescribeSubnets,DescribeRouteTables,"
       "DescribeInternetGateways,DescribeNetworkAcls")


def parse_dump(path):
    """Totals of one callgrind dump: its events, and calls to the functions counted."""
    events, totals = [], {}
    calls = {"redb_page_reads": 0, "file_reads": 0}
    callee = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                totals = dict(zip(events, map(int, line.split()[1:])))
            elif line.startswith("cfn="):
                callee = line[4:].strip()
            elif line.startswith("calls=") and callee is not None:
                n = int(line[6:].split()[0])
                if "PagedCachedFile::read" in callee and "read_direct" not in callee:
                    calls["redb_page_reads"] += n
                elif callee.startswith("pread") or callee.startswith("__libc_pread"):
                    calls["file_reads"] += n
    return totals, calls


def run_size(args, size):
    out = os.path.join(args.out, f"stored-{size}")
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "callgrind.out*")):
        os.remove(old)
    profile = os.path.join(out, "callgrind.out")
    command = ["valgrind", "--tool=callgrind", "--compress-strings=no", f"--callgrind-out-file={profile}",
               # A dump writes every thread's counts and zeroes them; --zero-before would zero only
               # the thread that calls the marker, not the blocking pool that does the work. So
               # both markers dump, and the dumps that end a timed loop are the even ones.
               "--dump-before=*counted_calls_*"]
    command += [args.bench, "pages", "--sizes", str(size), "--calls", str(args.calls), "--keep", args.keep,
                "--only", args.only, "--out", out]
    print(f"counting {size} stored: {' '.join(command)}", file=sys.stderr, flush=True)
    with open(os.path.join(out, "valgrind.log"), "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"valgrind failed for {size} stored: see {out}/valgrind.log")
    with open(os.path.join(out, "pages.json")) as f:
        pages = json.load(f)["pages"]
    # Two dumps per timed loop (its start, its end), numbered in the order the loops ran, which
    # is the order the bench lists its pages in.
    dumps = sorted(glob.glob(profile + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))[1::2]
    if len(dumps) != len(pages):
        sys.exit(f"{len(dumps)} profiles for {len(pages)} timed loops at {size} stored: "
                 "is the bench built with its markers, and valgrind's --dump-before honoured?")
    rows = []
    for page, dump in zip(pages, dumps):
        totals, calls = parse_dump(dump)
        n = page["calls"]
        row = {k: page[k] for k in ("action", "filter", "max_results", "page", "stored", "items", "bytes", "calls")}
        row["instructions_per_call"] = totals.get("Ir", 0) / n
        row["redb_page_reads_per_call"] = calls["redb_page_reads"] / n
        row["file_reads_per_call"] = calls["file_reads"] / n
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default="target/release/stratus-bench")
    parser.add_argument("--keep", required=True, help="the stores `stratus-bench pages --keep` filled")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--only", default=ALL, help="the bench's --only: actions or action:filter pairs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind (Debian's package)")
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} does not exist: cargo build --release -p stratus-bench")
    sizes = [int(s) for s in args.sizes.split(",")]
    # Filling 100,000 instances under valgrind would take hours: the stores are filled natively.
    missing = [s for s in sizes if not os.path.exists(os.path.join(args.keep, f"stored-{s}", "kept.json"))]
    if missing:
        sys.exit(f"no kept store of {missing} in {args.keep}: fill them first with {args.bench} pages "
                 f"--sizes {','.join(map(str, missing))} --calls 5 --only DescribeVpcs:none --keep {args.keep} --out DIR")
    rows = [row for size in sizes for row in run_size(args, size)]
    with open(os.path.join(args.out, "count.json"), "w") as f:
        json.dump({"sizes": sizes, "calls": args.calls, "rows": rows}, f, indent=1)
    cases = {}
    for row in rows:
        cases.setdefault((row["action"], row["filter"], row["max_results"], row["page"]), {})[row["stored"]] = row
    for (action, filt, max_results, page), by_size in cases.items():
        if len(by_size) != len(sizes):
            continue  # a middle page that not every size has
        smallest = by_size[sizes[0]]
        cells = []
        for size in sizes:
            r = by_size[size]
            growth = r["instructions_per_call"] / smallest["instructions_per_call"] - 1
            cell = (f"{size}: {r['instructions_per_call'] / 1e6:.2f} M ({growth * 100:+.1f} %), "
                    f"{r['redb_page_reads_per_call']:.0f} reads, {r['file_reads_per_call']:.1f} from file, "
                    f"{r['bytes']} B")
            cells.append(cell)
        print(f"{action:<24} {filt:<13} {max_results:>5} {page:<6} " + " | ".join(cells))


if __name__ == "__main__":
    main()
