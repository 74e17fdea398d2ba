"""The control plane: people's `appliance` commands reach the appliance service over a local Unix socket.

`wire.py` frames messages, `server.py` is the service (`appliance service`), `request.py` runs one person's
command inside it, `client.py` is the person's side, `routing.py` decides which side a command runs on.
"""
