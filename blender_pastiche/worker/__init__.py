"""Starting, talking to and stopping the worker process; the Install PyTorch button."""
