"""What data_prep shares with bench, and the one door through which bench reads datasets.

- The dataset contract: the shard format (``shard_format``), ``manifest.json`` with its
  per-shard records and verification (``manifest``), and where datasets live (``storage``:
  local paths or any pyarrow filesystem URI); named sizes (``sizes``).
- Helpers both tools use: ``cores`` (CPUs this process may use), ``errors`` and ``failures``
  (what the user is told), ``cli`` (how both CLIs are made and run), ``progress``, and
  ``images`` (one image decoded, converted or resized with Pillow).
"""
