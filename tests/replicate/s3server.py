"""A local S3 server for the replication tests: moto's, in this process, single-threaded.

Run as ``python s3server.py [--ignore-conditions] [--auth]``; it binds 127.0.0.1 on a free
port and prints that port on one line once it accepts connections. Single-threaded because
moto's threaded mode checks a condition and then writes without a lock, so two conditional
writers could both win. ``--ignore-conditions`` strips If-Match/If-None-Match from every
request (a server that ignores conditional writes); ``--auth`` makes moto check
credentials (none are known to it, so every request is refused as with bad credentials).
"""

import os
import sys


def main():
    if "--auth" in sys.argv:
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    if "--ignore-conditions" in sys.argv:
        inner = app

        def app(environ, start_response):
            for name in ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"):
                environ.pop(name, None)
            return inner(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=False)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
