#!/usr/bin/env python3
"""Requests per second for small objects: through a squid (cached) against the origin fetched directly.

usage: proxy-load.py PROXY_HOST:PORT ORIGIN_URL_PREFIX OBJECTS SECONDS CLIENTS
  ORIGIN_URL_PREFIX/<name> for each of OBJECTS names (lab/origin.yml's data objects). Each of CLIENTS processes
  keeps one HTTP/1.1 connection and fetches the objects round-robin for SECONDS; first through the squid (after
  one warm-up pass fills its cache), then straight from the origin. Prints one JSON object.
"""

import http.client
import json
import multiprocessing
import sys
import time
from urllib.parse import urlsplit


def names(count):
    return [f"0{i % 2}/{i:038x}" for i in range(count)]


def client(target, prefix, objects, seconds, queue):
    host, port, proxied = target
    base = urlsplit(prefix)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    done, hits, failed = 0, 0, 0
    deadline = time.monotonic() + seconds
    while True:
        for name in objects:
            url = f"{prefix}/{name}" if proxied else f"{base.path}/{name}"
            conn.request("GET", url, headers={"Host": base.netloc})
            resp = conn.getresponse()
            resp.read()
            done += 1
            failed += resp.status != 200
            hits += ";hit" in (resp.getheader("Cache-Status") or "")
        if time.monotonic() >= deadline:  # at least one pass over the objects
            break
    queue.put((done, hits, failed))


def measure(target, prefix, objects, seconds, clients):
    queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=client, args=(target, prefix, objects, seconds, queue)) for _ in range(clients)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.monotonic() - started
    done = sum(r[0] for r in results)
    return {
        "requests": done,
        "hits": sum(r[1] for r in results),
        "failed": sum(r[2] for r in results),
        "seconds": round(wall, 3),
        "rps": round(done / wall, 1),
    }


def main():
    proxy, prefix, count, seconds, clients = (
        sys.argv[1],
        sys.argv[2].rstrip("/"),
        int(sys.argv[3]),
        float(sys.argv[4]),
        int(sys.argv[5]),
    )
    phost, pport = proxy.rsplit(":", 1)
    origin = urlsplit(prefix)
    objects = names(count)
    squid = (phost, int(pport), True)
    measure(squid, prefix, objects, 0, 1)  # warm-up: one pass fills the cache
    through = measure(squid, prefix, objects, seconds, clients)
    direct = measure((origin.hostname, origin.port or 80, False), prefix, objects, seconds, clients)
    print(json.dumps({"squid": through, "origin": direct, "objects": count, "clients": clients}))


if __name__ == "__main__":
    main()
