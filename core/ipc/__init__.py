"""The worker process the add-on talks to: the wire protocol (standard library only) and the requests the worker serves."""
