"""IPython glue for ``%%step --map``: one prompt over every row of a frame (see batch.scheduler).

The frame comes from the user namespace; the result (a copy with the new columns, or the
frame itself with ``--inplace``) is bound to ``_step_map`` and ``-o NAME``.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from IPython.core.error import UsageError

from step_magic.core.errors import InputError
from step_magic.core.settings import Settings


def run_map(
    magics: Any, args: argparse.Namespace, template: str, settings: Settings, schema: Any = None
) -> None:
    """Map ``template`` over ``args.map``, showing progress, then bind the result."""
    from step_magic.api.rows import row_request, run_rows
    from step_magic.batch.cache import reply_cache
    from step_magic.batch.mapflags import parse_fields
    from step_magic.batch.plan import plan_map
    from step_magic.batch.table import MapOptions
    from step_magic.context.interpolate import resolve
    from step_magic.display.progress import map_dry_run_text
    from step_magic.wire.transport import endpoint, request_body

    namespace = magics.shell.user_ns
    try:
        frame = resolve(args.map, namespace)
        options = MapOptions(
            args.as_column, args.concurrency, args.rpm, args.limit, args.inplace,
            args.reasoning_col, parse_fields(args.fields) or (schema.columns() if schema else ()),
            args.format == "json", args.strict, schema_sent=schema is not None,
        )  # fmt: skip
        make_request = row_request(settings, schema)
        if args.dry_run:
            body = partial(request_body, settings)
            where = endpoint(settings)
            plan = plan_map(
                frame,
                template,
                make_request,
                options,
                body=body,
                namespace=namespace,
                endpoint=where,
                api=settings.api,
            )
            print(map_dry_run_text(plan))
            return
        cache = reply_cache(magics.cassette_path(args), magics.history_store())
        result, summary = run_rows(
            frame,
            template,
            settings,
            options,
            cache=cache,
            display=True,
            namespace=namespace,
            schema=schema,
        )
    except InputError as err:  # bad flags, names or frames, found before any request
        raise UsageError(str(err)) from None
    namespace["_step_map"] = result
    if args.output:
        namespace[args.output] = result
    if summary.interrupted:
        from step_magic.core.errors import StepInterrupted

        raise StepInterrupted()
