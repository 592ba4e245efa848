#!/usr/bin/env python3
"""Start moto's server on 127.0.0.1 with a port the OS picks, print the port, serve until stdin closes.

The test harness reads the first line of stdout for the port and keeps stdin open; when the test drops
the child, stdin closes and this process exits. Binding port 0 here avoids any bind-drop-rebind race.
"""

import logging
import sys

from moto.server import ThreadedMotoServer

# One line per request would drown the test output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
