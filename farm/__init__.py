"""reelfarm: a distributed streaming render farm for generative video.

The import name is `farm`; the distribution is `reelfarm`. Importing this package
imports nothing heavy (no torch, ray or grpc).
"""

__version__ = "0.1.0"
