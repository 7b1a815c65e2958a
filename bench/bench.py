#!/usr/bin/env python3
"""Portcullis against a plain nginx reverse proxy, in one run on one machine.

Started by bench/run.sh (which builds the release binary and installs what is missing). Everything
listens on 127.0.0.1 on free ports and stops at the end; every load run is bounded by a duration.

Processes: redis-server; an nginx upstream answering a small JSON body; an nginx `proxy_pass`
reverse proxy in front of it with upstream keep-alive (no authentication at all); Portcullis with
Redis sessions and its session cache (the default), and a second Portcullis on the same Redis with
the cache off (`session.cache_ttl: 0s`), so every request reads the store.

Each round runs every target once, in order, so slow drifts of the machine hit all targets alike;
ratios are computed within a round and the median over the rounds is reported.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BINARY = os.path.join(ROOT, "target", "release", "portcullis")
BINARY = DEFAULT_BINARY
BODY = '{"id":42,"name":"widget","tags":["a","b"],"price":9.99}'
USER = "bench"
KEY_PREFIX = "portcullis:"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def which(name):
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if not path:
        sys.exit(f"{name} not found: run bench/run.sh, which installs it")
    return path


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="portcullis-bench-")
        self.procs = []
        self.oha_bin = which("oha")
        self.nginx = which("nginx")
        self.redis_server = which("redis-server")
        self.redis_cli = which("redis-cli")

    # ---- processes -------------------------------------------------------------------------

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start_redis(self):
        self.redis_port = free_port()
        proc = self.spawn("redis", [self.redis_server, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", self.dir])
        wait_port(self.redis_port, proc, "redis-server")

    def redis(self, *args):
        out = subprocess.run([self.redis_cli, "-p", str(self.redis_port), *args],
                             check=True, capture_output=True, text=True, timeout=120)
        return out.stdout

    def start_nginx(self, name, server):
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        conf = f"""daemon off;
worker_processes auto;
pid {path}/nginx.pid;
error_log {path}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {path}/body;
    proxy_temp_path {path}/proxy;
    fastcgi_temp_path {path}/fastcgi;
    uwsgi_temp_path {path}/uwsgi;
    scgi_temp_path {path}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{server}
}}
"""
        with open(os.path.join(path, "nginx.conf"), "w") as f:
            f.write(conf)
        proc = self.spawn(name, [self.nginx, "-p", path, "-e", f"{path}/error.log", "-c", f"{path}/nginx.conf"])
        return proc

    def start_upstream(self):
        self.upstream_port = free_port()
        body = BODY.replace("'", "\\'")
        server = f"""    access_log off;
    server {{
        listen 127.0.0.1:{self.upstream_port};
        default_type application/json;
        location / {{ return 200 '{body}'; }}
    }}"""
        self.upstream = self.start_nginx("upstream", server)
        wait_port(self.upstream_port, self.upstream, "nginx upstream")

    def start_nginx_proxy(self):
        self.nginx_port = free_port()
        # A plain reverse proxy with upstream keep-alive, logging each request like Portcullis.
        server = f"""    access_log {self.dir}/nginx-proxy/access.log;
    upstream api {{ server 127.0.0.1:{self.upstream_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{self.nginx_port};
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}"""
        self.nginx_proxy = self.start_nginx("nginx-proxy", server)
        wait_port(self.nginx_port, self.nginx_proxy, "nginx proxy")

    def start_portcullis(self, name, cache_ttl):
        port, admin = free_port(), free_port()
        self.password = getattr(self, "password", None) or secrets.token_urlsafe(18)
        if not getattr(self, "password_hash", None):
            out = subprocess.run([BINARY, "hash-password"], input=self.password + "\n",
                                 capture_output=True, text=True, check=True)
            self.password_hash = out.stdout.strip()
        window = "{max_retries: 1000000000, find_time: 1s, ban_time: 1s}"
        conf = f"""listen: "127.0.0.1:{port}"
admin_listen: "127.0.0.1:{admin}"
upstream:
  url: "http://127.0.0.1:{self.upstream_port}"
session:
  store: redis
  redis_url: "redis://127.0.0.1:{self.redis_port}/0"
  key_prefix: "{KEY_PREFIX}"
  secrets: ["${{PORTCULLIS_BENCH_SECRET}}"]
  cache_ttl: {cache_ttl}
users:
  - username: {USER}
    password_hash: "{self.password_hash}"
    roles: [reader]
access:
  default: authenticated
# The login target measures hashing, not regulation: these windows never ban.
regulation:
  per_user_and_address: {window}
  per_user: {window}
  per_address: {window}
"""
        path = os.path.join(self.dir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(conf)
        env = dict(os.environ, PORTCULLIS_BENCH_SECRET=self.secret)
        env.pop("RUST_LOG", None)
        proc = self.spawn(name, [BINARY, "--config", path], env=env)
        wait_port(port, proc, name)
        wait_port(admin, proc, name)
        return proc, port

    # ---- measuring -------------------------------------------------------------------------

    def oha(self, url, *, seconds=None, connections=None, headers=(), method="GET", body=None, rate=None):
        seconds = seconds or self.args.duration
        connections = connections or self.args.connections
        argv = [self.oha_bin, "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
                "-c", str(connections), "-m", method]
        for header in headers:
            argv += ["-H", header]
        if body is not None:
            argv += ["-d", body, "-T", "application/json"]
        if rate:
            argv += ["-q", str(rate)]
        argv.append(url)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        if out.returncode != 0:
            sys.exit(f"oha failed ({out.returncode}): {out.stderr}")
        return json.loads(out.stdout)

    def commandstats(self):
        stats = {}
        for line in self.redis("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_"):].split(":", 1)
                fields = dict(kv.split("=") for kv in rest.split(","))
                stats[name] = int(fields["calls"])
        return stats

    def measure(self, name, url, expect, *, store=False, **kwargs):
        if store:
            self.redis("CONFIG", "RESETSTAT")
        result = self.oha(url, **kwargs)
        statuses = {int(k): v for k, v in result["statusCodeDistribution"].items()}
        errors = {k: v for k, v in result["errorDistribution"].items() if k != "aborted due to deadline"}
        answered = sum(statuses.values())
        total = answered + sum(errors.values())
        row = {
            "target": name,
            "rps": result["summary"]["requestsPerSec"],
            "p50": result["latencyPercentiles"]["p50"] * 1000,
            "p99": result["latencyPercentiles"]["p99"] * 1000,
            "expected": expect,
            "success": statuses.get(expect, 0) / total if total else 0.0,
            "requests": answered,
            "statuses": statuses,
            "errors": errors,
        }
        if store:
            # The bench's own INFO and CONFIG RESETSTAT (Redis 7 names it "config|resetstat").
            stats = {k: v for k, v in self.commandstats().items() if k.split("|")[0] not in ("info", "config")}
            row["redis_commands"] = sum(stats.values())
            row["redis_non_ping"] = sum(v for k, v in stats.items() if k != "ping")
            row["redis_by_command"] = stats
        print(f"  {name:<28} {row['rps']:>10.0f} req/s  p50 {row['p50']:6.2f} ms  p99 {row['p99']:6.2f} ms"
              f"  {100 * row['success']:6.2f}% {expect}"
              + (f"  redis: {row['redis_non_ping']} commands besides PING" if store else ""), flush=True)
        return row

    def login(self, port):
        data = json.dumps({"username": USER, "password": self.password}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            response = b""
            while chunk := s.recv(65536):
                response += chunk
        head = response.split(b"\r\n\r\n", 1)[0].decode()
        if not head.startswith("HTTP/1.1 201"):
            sys.exit(f"login failed: {head.splitlines()[0]}")
        for line in head.split("\r\n"):
            if line.lower().startswith("set-cookie:"):
                return line.split(":", 1)[1].strip().split(";", 1)[0]
        sys.exit("login answered 201 without a cookie")

    def rss_kib(self, pid, field="VmRSS"):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def nginx_rss_kib(self, proc):
        pids = [proc.pid]
        try:
            children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        return sum(self.rss_kib(p) for p in pids)

    def open_connections(self, port, cookie, count, sample):
        """Open `count` keep-alive connections, make one request on each, and call `sample`
        while all of them are still open."""

        async def one(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /api/conn/{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            return head.startswith(b"HTTP/1.1 200"), writer

        async def run():
            results = []
            for start in range(0, count, 100):
                results += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
            ok = sum(1 for good, _ in results if good)
            await asyncio.sleep(0.5)
            value = sample()
            for _, writer in results:
                writer.close()
            return ok, value

        return asyncio.run(asyncio.wait_for(run(), timeout=60))

    def storm(self, auth_url, cookie, login_url):
        """The authenticated target at a steady `storm_rate` requests/s (a busy API, not a
        saturated machine), alone and then while logins arrive at `login_rate` per second."""
        steady = dict(headers=[f"Cookie: {cookie}"], rate=self.args.storm_rate)
        quiet = self.measure("portcullis at steady rate", auth_url, 200, **steady)
        login_result = {}

        def logins():
            login_result["row"] = self.oha(login_url, connections=16, method="POST",
                                           body=json.dumps({"username": USER, "password": self.password}),
                                           rate=self.args.login_rate)

        thread = threading.Thread(target=logins)
        thread.start()
        row = self.measure("portcullis during logins", auth_url, 200, **steady)
        thread.join()
        logins_row = login_result["row"]
        row["logins_per_sec"] = logins_row["statusCodeDistribution"].get("201", 0) / self.args.duration
        row["login_statuses"] = logins_row["statusCodeDistribution"]
        print(f"  {'':<28} with {row['logins_per_sec']:.1f} logins/s completed {row['login_statuses']}", flush=True)
        return [quiet, row]

    def fill(self, total):
        """Add session-shaped records until the store holds about `total` session keys."""
        prefix = KEY_PREFIX + "s:"
        key = self.redis("--scan", "--pattern", prefix + "*").split()[0]
        value = self.redis("GET", key).rstrip("\n")
        have = int(self.redis("DBSIZE").strip())
        script = ("for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do "
                  "redis.call('SET', KEYS[1] .. redis.sha1hex('fill' .. i) .. '000000000000000000000000', "
                  "ARGV[3], 'EX', 7200) end return 0")
        start = have
        while start < total:
            end = min(total, start + 100_000)
            self.redis("EVAL", script, "1", prefix, str(start), str(end - 1), value)
            start = end
        return int(self.redis("DBSIZE").strip())

    # ---- the run ---------------------------------------------------------------------------

    def run(self):
        a = self.args
        self.secret = secrets.token_hex(32)
        self.start_redis()
        self.start_upstream()
        self.start_nginx_proxy()
        gateway, port = self.start_portcullis("portcullis", "1s")
        _, nocache_port = self.start_portcullis("portcullis-nocache", "0s")
        time.sleep(1)
        rss_idle = self.rss_kib(gateway.pid)
        cookie = self.login(port)
        name, value = cookie.split("=", 1)
        # Same length and alphabet, one character changed: the signature cannot verify.
        flip = len(value) // 2
        forged = f"{name}={value[:flip]}{'A' if value[flip] != 'A' else 'B'}{value[flip + 1:]}"

        direct = f"http://127.0.0.1:{self.upstream_port}/api/items/42"
        via_nginx = f"http://127.0.0.1:{self.nginx_port}/api/items/42"
        via_portcullis = f"http://127.0.0.1:{port}/api/items/42"
        via_nocache = f"http://127.0.0.1:{nocache_port}/api/items/42"
        login_url = f"http://127.0.0.1:{port}/session"

        report = {"machine": machine(), "settings": vars(a), "rounds": [], "rss_idle_kib": rss_idle}
        time.sleep(1)
        report["rss_after_login_kib"] = self.rss_kib(gateway.pid)
        ok, rss = self.open_connections(port, cookie, 1000, lambda: self.rss_kib(gateway.pid))
        report["rss_1000_conns_kib"], report["rss_1000_conns_ok"] = rss, ok
        ok, rss = self.open_connections(self.nginx_port, "x=y", 1000, lambda: self.nginx_rss_kib(self.nginx_proxy))
        report["nginx_rss_1000_conns_kib"] = rss
        print(f"RSS idle {report['rss_idle_kib'] / 1024:.1f} MiB, after one login"
              f" {report['rss_after_login_kib'] / 1024:.1f} MiB; with 1,000 open keep-alive connections"
              f" {report['rss_1000_conns_kib'] / 1024:.1f} MiB ({report['rss_1000_conns_ok']} answered 200;"
              f" nginx proxy, all processes: {report['nginx_rss_1000_conns_kib'] / 1024:.1f} MiB)", flush=True)

        targets = {
            "direct": lambda: self.measure("upstream direct", direct, 200),
            "nginx": lambda: self.measure("nginx proxy_pass", via_nginx, 200),
            "auth": lambda: self.measure("portcullis authenticated", via_portcullis, 200, store=True,
                                         headers=[f"Cookie: {cookie}"]),
            "nocache": lambda: self.measure("portcullis, cache off", via_nocache, 200, store=True,
                                            headers=[f"Cookie: {cookie}"]),
            "nocookie": lambda: self.measure("portcullis no cookie", via_portcullis, 401, store=True),
            "forged": lambda: self.measure("portcullis forged cookie", via_portcullis, 401, store=True,
                                           headers=[f"Cookie: {forged}"]),
            "login": lambda: self.measure("portcullis login", login_url, 201, store=True, method="POST",
                                          connections=a.login_connections,
                                          body=json.dumps({"username": USER, "password": self.password})),
            "storm": lambda: self.storm(via_portcullis, cookie, login_url),
        }
        chosen = [t for t in a.targets.split(",") if t != "storm" or a.login_rate]
        for r in range(a.rounds):
            print(f"round {r + 1} of {a.rounds}", flush=True)
            rows = []
            for t in chosen:
                result = targets[t]()
                rows += result if isinstance(result, list) else [result]
            report["rounds"].append(rows)
        report["rss_peak_kib"] = self.rss_kib(gateway.pid, "VmHWM")

        if a.scale:
            report["scale"] = {}
            for total in (1_000, a.scale):
                keys = self.fill(total)
                print(f"store holds {keys} keys", flush=True)
                runs = [[self.measure("portcullis authenticated", via_portcullis, 200,
                                      headers=[f"Cookie: {cookie}"]),
                         self.measure("portcullis, cache off", via_nocache, 200,
                                      headers=[f"Cookie: {cookie}"])] for _ in range(a.rounds)]
                report["scale"][str(total)] = {"keys": keys, "runs": runs}
        return report


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "nginx": version([which("nginx"), "-v"]),
        "redis": version([which("redis-server"), "--version"]),
        "oha": version([which("oha"), "--version"]),
        "commit": version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
    }


TARGETS = ["direct", "nginx", "auth", "nocache", "nocookie", "forged", "login", "storm"]


def median(values):
    return statistics.median(values) if values else float("nan")


def summarize(report):
    """The table: per target, the median over rounds of each figure and of each per-round ratio."""
    rounds = report["rounds"]
    names = [row["target"] for row in rounds[0]]
    lines = [
        "| target | req/s | p50 ms | p99 ms | expected status | x direct req/s | x nginx req/s | p99 / nginx p99 | Redis commands per 1k requests (besides PING) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name in names:
        rows = [next(r for r in rnd if r["target"] == name) for rnd in rounds]
        directs = [next(r for r in rnd if r["target"] == "upstream direct") for rnd in rounds]
        nginxes = [next(r for r in rnd if r["target"] == "nginx proxy_pass") for rnd in rounds]
        store = ""
        if "redis_non_ping" in rows[0]:
            store = f"{median([1000 * r['redis_non_ping'] / max(1, r['requests']) for r in rows]):.2f}"
        lines.append(
            f"| {name} | {median([r['rps'] for r in rows]):.0f} | {median([r['p50'] for r in rows]):.2f}"
            f" | {median([r['p99'] for r in rows]):.2f} | {100 * min(r['success'] for r in rows):.2f}% {rows[0]['expected']}"
            f" | {median([r['rps'] / d['rps'] for r, d in zip(rows, directs)]):.2f}"
            f" | {median([r['rps'] / n['rps'] for r, n in zip(rows, nginxes)]):.2f}"
            f" | {median([r['p99'] / n['p99'] for r, n in zip(rows, nginxes)]):.2f} | {store} |"
        )
    out = ["\n".join(lines), ""]
    storms = [next((r for r in rnd if r["target"] == "portcullis during logins"), None) for rnd in rounds]
    steady = [next((r for r in rnd if r["target"] == "portcullis at steady rate"), None) for rnd in rounds]
    if all(storms) and all(steady):
        out.append(
            f"Login storm at {report['settings']['storm_rate']} authenticated requests/s: p99 during "
            f"{report['settings']['login_rate']} logins/s / p99 without = "
            f"{median([s['p99'] / q['p99'] for s, q in zip(storms, steady)]):.2f} (median of rounds; "
            f"{median([q['p99'] for q in steady]):.2f} ms -> {median([s['p99'] for s in storms]):.2f} ms; "
            f"{median([s['logins_per_sec'] for s in storms]):.1f} logins/s completed).")
    quiet = [next((r for r in rnd if r["target"] == "portcullis authenticated"), None) for rnd in rounds]
    if all(quiet):
        gets = [r["redis_by_command"].get("get", 0) for r in quiet]
        writes = [sum(v for k, v in r["redis_by_command"].items() if k not in ("get", "ping")) for r in quiet]
        out.append(
            f"Authenticated with the cache: GETs per {report['settings']['duration']} s run {gets}, other"
            f" commands besides PING {writes}, PINGs {[r['redis_by_command'].get('ping', 0) for r in quiet]}.")
    out.append(
        f"RSS: idle {report['rss_idle_kib'] / 1024:.1f} MiB, after one login "
        f"{report['rss_after_login_kib'] / 1024:.1f} MiB; 1,000 open keep-alive connections "
        f"{report['rss_1000_conns_kib'] / 1024:.1f} MiB (nginx proxy, all processes: "
        f"{report['nginx_rss_1000_conns_kib'] / 1024:.1f} MiB); peak over the run (login storm included) "
        f"{report['rss_peak_kib'] / 1024:.1f} MiB.")
    if "scale" in report:
        out.append("")
        out.append("| sessions in Redis (keys in the database) | authenticated p99 ms | cache off p99 ms | cache off req/s |")
        out.append("|---|---:|---:|---:|")
        for total, data in report["scale"].items():
            runs = data["runs"]
            out.append(f"| {int(total):,} ({data['keys']:,}) | {median([r[0]['p99'] for r in runs]):.2f}"
                       f" | {median([r[1]['p99'] for r in runs]):.2f} | {median([r[1]['rps'] for r in runs]):.0f} |")
    m = report["machine"]
    out.append("")
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
               f"{m['nginx']}; {m['redis']}; {m['oha']}; commit {m['commit']}. "
               f"{len(rounds)} rounds of {report['settings']['duration']} s per target, "
               f"{report['settings']['connections']} connections.")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per target and round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="oha connections (default 64)")
    parser.add_argument("--login-connections", type=int, default=8, help="connections for the login target")
    parser.add_argument("--login-rate", type=int, default=50,
                        help="logins per second during the storm target (0: no storm; default 50)")
    parser.add_argument("--storm-rate", type=int, default=10_000,
                        help="authenticated requests/s, steady, for the login storm target (default 10000)")
    parser.add_argument("--scale", type=int, default=1_000_000,
                        help="sessions in Redis for the scale figure (0: skip; default 1000000)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated subset of " + ",".join(TARGETS) + " (direct and nginx are always run)")
    parser.add_argument("--binary", default=DEFAULT_BINARY,
                        help="the portcullis binary (default: the release build), e.g. to compare two builds")
    args = parser.parse_args()
    wanted = [t for t in args.targets.split(",") if t]
    unknown = set(wanted) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    args.targets = ",".join(t for t in TARGETS if t in wanted or t in ("direct", "nginx"))
    global BINARY
    BINARY = args.binary
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY} missing: run bench/run.sh, which builds it")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = bench.run()
    finally:
        bench.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print()
    print(summarize(report))


if __name__ == "__main__":
    main()
