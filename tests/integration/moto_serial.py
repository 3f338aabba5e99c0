"""moto's S3 server answering one request at a time, for test_storage.py.

moto checks `If-None-Match: *` and then stores the object without a lock, so under its
usual threaded server two racing conditional PUTs can both succeed (seen: 2 winners of 16).
Real S3 decides them atomically. Serving requests one by one gives moto that atomicity,
so the race checks judge sluice's client, not moto. Usage: moto_serial.py HOST PORT"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app),
           threaded=False)
