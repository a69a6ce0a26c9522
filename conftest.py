"""Root pytest configuration: skip the doctests of the optional torch interop without torch."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["numbaconv/torch.py"]
