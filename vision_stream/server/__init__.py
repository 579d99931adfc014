"""The gRPC service and what only the server owns.

- :mod:`.app` - start and stop the server (health, reflection, shutdown);
- :mod:`.service` - the RPC handlers;
- :mod:`.registry` - the running sessions: bound, owners, lookup, stop;
- :mod:`.cameras` - the ``serve --config`` cameras file (TOML) and its validation;
- :mod:`.auth`, :mod:`.access`, :mod:`.limits` - who may call, open what, and how much;
- :mod:`.convert`, :mod:`.stream_input`, :mod:`.status` - the wire in, errors out.
"""
