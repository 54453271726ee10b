#!/usr/bin/env python3
"""Start-up to ready of the Lambda functions: wall time from spawn to the first GET /next.

Each binary is started against a fake Lambda Runtime API on 127.0.0.1, with a clean environment
holding only what the function needs (its README's Environment table). The first
`GET /2018-06-01/runtime/invocation/next` is "ready": it is timed, held unanswered, and the process
is killed. Stdlib only, so it runs on any Python 3.11 without a venv.

    python3 local/python/startup_probe.py ~/.cache/deftunes/target/debug/transform --runs 11
"""
import argparse
import http.server
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NEXT = "/2018-06-01/runtime/invocation/next"
# Never answered: a call the function makes at start-up fails at once instead of reaching AWS.
DEAD_ENDPOINT = "http://127.0.0.1:9"


def function_env(name: str, tmp: str, aws: bool) -> dict:
    """The settings `name` needs to reach its poll loop (its README's required variables).

    Local stores by default (file lake, SQLite catalog under `tmp`). `aws` gives the stores of the
    deployed functions (S3 lake, Glue catalog, Secrets Manager), with every AWS endpoint dead, so
    it measures the SDK clients' construction without any request leaving the machine.
    """
    if aws:
        lake = {"LAKE_URI": "s3://deftunes-startup-probe/lake", "AWS_ENDPOINT_URL": DEAD_ENDPOINT}
        catalog = {"CATALOG": "glue"}
        pg_password = {"PG_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:pg"}
    else:
        lake = {"LAKE_URI": f"file://{tmp}/lake"}
        catalog = {"CATALOG": "sql", "CATALOG_URI": f"sqlite:{tmp}/catalog.db?mode=rwc"}
        pg_password = {"PG_PASSWORD": "unused"}
    spec = {"PIPELINES_ROOT": str(REPO / "pipelines"), "SPOOL_DIR": tmp}
    known = {
        "api-extract": {**lake, **spec, "API_BASE_URL": DEAD_ENDPOINT + "/"},
        "songs-extract": {**lake, **spec, **pg_password, "PG_HOST": "127.0.0.1"},
        "transform": {**lake, **catalog, **spec},
        "run-control": {**lake, **catalog, **spec},
        "redshift-setup": {
            "REDSHIFT_WORKGROUP": "startup-probe",
            "GLUE_DATABASE": "deftunes_transform",
            "SPECTRUM_ROLE_ARN": "arn:aws:iam::000000000000:role/startup-probe",
            **({"AWS_ENDPOINT_URL": DEAD_ENDPOINT} if aws else {}),
        },
        # Generates its dataset at start-up; the defaults are the deployed ones.
        "api-emulator": {},
    }
    if name not in known:
        sys.exit(f"startup_probe: no settings known for a function named {name!r} "
                 f"(the binary's file name); known: {', '.join(sorted(known))}")
    return known[name]


def base_env(name: str, tmp: str, port: int) -> dict:
    return {
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        # Nominal (Terraform's usual size): only reported by the runtime, never acted upon.
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "startup-probe",
        "AWS_REGION": "us-east-1",
        # Static credentials: the SDK's provider chain never reaches for IMDS or a profile.
        "AWS_ACCESS_KEY_ID": "AKIDSTARTUPPROBE",
        "AWS_SECRET_ACCESS_KEY": "startup-probe-not-a-secret",
        # The SDK reads ~/.aws/config: an empty home keeps the caller's profiles out.
        "HOME": tmp,
    }


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Fake Runtime API: stamps the first GET /next and holds it, so the function stays idle."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ready_at = None
        self.ready = threading.Event()
        self.release = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == NEXT:
            # Stamped here, not in the main thread, so the parent's polling adds nothing.
            if not self.server.ready.is_set():
                self.server.ready_at = time.perf_counter()
                self.server.ready.set()
            self.server.release.wait()
        else:
            self.send_error(404)

    def do_POST(self):
        # /init/error and the like: acknowledged, so a failing function exits and is reported.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def probe_once(binary: Path, tmp: str, args) -> tuple[float, float]:
    """Milliseconds from just before spawn to the first GET /next, and the CPU the process used."""
    name = binary.name
    server = RuntimeApi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = (base_env(name, tmp, server.server_address[1]) | function_env(name, tmp, args.aws)
           | args.env)
    # Both streams: the runtime's logger writes to stdout, a failed main() to stderr.
    with open(Path(tmp) / "output", "w+b") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen([str(binary)], env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        except OSError as e:
            sys.exit(f"startup_probe: cannot start {name} ({binary}): {e}")
        try:
            while not server.ready.wait(0.002):
                if proc.poll() is not None:
                    out.seek(0)
                    fail_exited(name, proc.returncode, out.read().decode(errors="replace"), env)
                if time.perf_counter() - t0 > args.timeout:
                    sys.exit(f"startup_probe: {name} did not poll {NEXT} within {args.timeout:g} s")
        finally:
            cpu = 0.0
            if proc.returncode is None:
                proc.kill()
                # wait4, not wait: its rusage is the CPU time of the start (idle after /next).
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = (usage.ru_utime + usage.ru_stime) * 1000
            server.release.set()
            server.shutdown()
            server.server_close()
    return (server.ready_at - t0) * 1000, cpu


def fail_exited(name: str, code: int, output: str, env: dict):
    sys.stderr.write(f"--- output of {name} ---\n{output}--- end ---\n")
    # The config errors name the variable they wanted; the ones not given are the likely gap.
    wanted = "\n".join(re.findall(r"(?im)^.*\b(?:required|not set|missing)\b.*$", output))
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", wanted)) - set(env)
    hint = (f"it probably lacks {', '.join(sorted(named))}" if named else
            "see the Environment table of its README for the settings it requires")
    sys.exit(f"startup_probe: {name} exited with code {code} before polling {NEXT}; {hint} "
             f"(given: {', '.join(sorted(env))})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+", type=Path,
                    help="function binaries; the file name picks the settings (e.g. .../transform)")
    ap.add_argument("--runs", "-n", type=int, default=11, help="measured starts per function")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured starts first (binary in the page cache, local stores created)")
    ap.add_argument("--aws", action="store_true",
                    help="deployed stores (S3 lake, Glue catalog, secrets) behind a dead endpoint")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="a setting added or overridden for every function (repeatable)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for /next")
    ap.add_argument("--goal-ms", type=float, default=20.0, help="the start-up budget")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be at least 1 and --warmup at least 0")
    if bad := [e for e in args.env if "=" not in e]:
        ap.error(f"--env wants NAME=VALUE, got: {', '.join(bad)}")
    args.env = dict(e.split("=", 1) for e in args.env)
    for b in args.binaries:
        if not (b.is_file() and os.access(b, os.X_OK)):
            ap.error(f"not an executable file: {b}")
        function_env(b.name, "", args.aws)  # an unknown name fails now, not halfway through

    results = {}
    # Absolute: each function runs in its own dir.
    for binary in (b.resolve() for b in args.binaries):
        name = binary.name
        # Kept across the function's starts: the warm-up creates the local catalog and lake, as a
        # deployment's first run does, and the measured starts find them, as cold starts do.
        with tempfile.TemporaryDirectory(prefix=f"startup-{name}-") as tmp:
            starts = [probe_once(binary, tmp, args) for _ in range(args.warmup + args.runs)]
        runs = [wall for wall, _ in starts[args.warmup:]]
        median = statistics.median(runs)
        results[name] = {
            "binary": str(binary), "median_ms": round(median, 2), "min_ms": round(min(runs), 2),
            "max_ms": round(max(runs), 2), "goal_met": median < args.goal_ms,
            "runs_ms": [round(r, 2) for r in runs],
            # Less sensitive than wall time to other work on the machine (all threads summed).
            "cpu_median_ms": round(statistics.median(c for _, c in starts[args.warmup:]), 2)}

    print(f"{'function':<16}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'CPU ms':>9}"
          f"  goal < {args.goal_ms:g} ms")
    for name, r in results.items():
        verdict = "met" if r["goal_met"] else "NOT met"
        print(f"{name:<16}{r['median_ms']:>10.1f}{r['min_ms']:>9.1f}{r['max_ms']:>9.1f}"
              f"{r['cpu_median_ms']:>9.1f}  {verdict}")
    # Load shares the cores with the function: numbers taken on a busy machine say so.
    load = [round(x, 2) for x in os.getloadavg()]
    extra = "".join(f", {k}={v}" for k, v in args.env.items())
    print(f"({args.runs} runs each after {args.warmup} warm-up, {'AWS' if args.aws else 'local'} "
          f"stores{extra}, {os.cpu_count()} cores {platform.machine()}, load average {load[0]:g})")
    if args.json:
        args.json.write_text(json.dumps({
            "runs": args.runs, "warmup": args.warmup, "stores": "aws" if args.aws else "local",
            "env": args.env, "goal_ms": args.goal_ms, "cores": os.cpu_count(),
            "machine": platform.machine(), "loadavg": load, "functions": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
