#!/usr/bin/env python3
"""Sanity check of startup_probe.py without the Rust binaries: fake functions stand in for them.

A fake `transform` that polls /next must be measured (table and JSON); one that exits with a
config error must fail the probe with a message naming the function and the missing variable.
Stdlib only; not part of `make test`:  python3 local/python/startup_probe_check.py
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = Path(__file__).with_name("startup_probe.py")

POLLS = """
import os, urllib.request
urllib.request.urlopen(f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}"
                       "/2018-06-01/runtime/invocation/next")
"""
EXITS = """
import sys
sys.exit("Configuration: environment variable CATALOG_URI_TYPO is required but not set")
"""


def fake(tmp: Path, sub: str, body: str) -> Path:
    # Named like the real binary, since the probe picks the settings by file name.
    path = tmp / sub / "transform"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def probe(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROBE), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def main():
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        r = probe("--help")
        assert r.returncode == 0 and "--runs" in r.stdout, r.stderr

        out = tmp / "out.json"
        r = probe(fake(tmp, "ok", POLLS), "--runs", 3, "--json", out)
        assert r.returncode == 0, r.stderr
        got = json.loads(out.read_text())["functions"]["transform"]
        assert len(got["runs_ms"]) == 3 and 0 < got["min_ms"] <= got["median_ms"] <= got["max_ms"], got
        assert "transform" in r.stdout, r.stdout

        r = probe(fake(tmp, "bad", EXITS), "--runs", 1)
        assert r.returncode != 0, r.stdout
        assert "transform exited" in r.stderr and "CATALOG_URI_TYPO" in r.stderr, r.stderr

        r = probe(tmp / "missing" / "transform")
        assert r.returncode != 0 and "not an executable file" in r.stderr, r.stderr
    print("startup_probe: ok")


if __name__ == "__main__":
    main()
