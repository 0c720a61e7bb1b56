#!/usr/bin/env python3
"""The lab's stand-in for a CVMFS stratum-1: serves a directory over HTTP/1.1 with a stratum-1's caching headers.

usage: sitekit-origin-server DIRECTORY [PORT]

CVMFS data objects never change (content-addressed): a stratum-1 lets caches keep them for days.
The manifest (.cvmfspublished) changes on every publish: caches may keep it about a minute.
"""

import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as squids and CVMFS clients use it
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the client's delayed
    # ACK hold every keep-alive response for ~40 ms.
    disable_nagle_algorithm = True

    def end_headers(self):
        if "/data/" in self.path:
            self.send_header("Cache-Control", "max-age=259200")
        else:
            self.send_header("Cache-Control", "max-age=61")
        super().end_headers()

    def log_message(self, *_args):
        pass


def main():
    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    server = ThreadingHTTPServer(("", port), functools.partial(Handler, directory=directory))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
