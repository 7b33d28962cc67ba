"""The Python API: ``ask``, ``stream``, ``map_rows`` and ``Chat``, with no IPython needed.

The magics are thin glue over the same engine; a script, a test, another frontend or a
worker process calls these instead. Keywords mirror the ``%%step`` flags.
"""
