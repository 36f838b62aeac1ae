"""The `helpdesk` command line (DESIGN §5)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from helpdesk.config import EX_CONFIG, ConfigError, Settings, load_settings
from helpdesk.errors import HelpdeskError

EX_TEMPFAIL = 75


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
    try:
        result = args.handler(settings, args)
    except HelpdeskError as exc:
        print(f"helpdesk: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description="Helpdesk for course providers")
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate an embedded database and serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=_serve)

    commands.add_parser("migrate", help="alembic upgrade head").set_defaults(handler=_migrate)

    ingest = commands.add_parser("ingest", help="ingest RFC 5322 messages from files or stdin")
    ingest.add_argument("files", nargs="*", metavar="FILE")
    ingest.add_argument("--mbox", action="store_true", help="the files are mbox mailboxes")
    ingest.set_defaults(handler=_ingest)

    operator = commands.add_parser("operator", help="manage operators")
    operator_commands = operator.add_subparsers(metavar="ACTION")
    add = operator_commands.add_parser("add", help="create an operator")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=["agent", "admin"], default="agent")
    add.add_argument("--password-stdin", action="store_true")
    add.set_defaults(handler=_operator_add)
    link = operator_commands.add_parser(
        "setup-link", help="print a one-time link to choose a password (3 days)"
    )
    link.add_argument("email")
    link.set_defaults(handler=_operator_setup_link)
    reset = operator_commands.add_parser(
        "reset-second-factor", help="turn off an operator's two-step sign-in (lost phone)"
    )
    reset.add_argument("email")
    reset.set_defaults(handler=_operator_reset_second_factor)

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(metavar="ACTION")
    create = token_commands.add_parser("create", help="print a new API token for an operator")
    create.add_argument("email")
    create.set_defaults(handler=_token_create)

    commands.add_parser("worker", help="run a taskiq worker").set_defaults(handler=_worker)
    commands.add_parser("scheduler", help="run the taskiq scheduler").set_defaults(
        handler=_scheduler
    )
    commands.add_parser("demo-data", help="fill an empty database with demo data").set_defaults(
        handler=_demo_data
    )

    fetch_mail = commands.add_parser(
        "fetch-mail", help="fetch support mail from HELPDESK_IMAP_URL (IDLE, else polling)"
    )
    fetch_mail.add_argument("--once", action="store_true", help="process what is there, then exit")
    fetch_mail.set_defaults(handler=_fetch_mail)

    send_outbox = commands.add_parser(
        "send-outbox", help="deliver queued outgoing mail (SMTP, or .eml files without one)"
    )
    send_outbox.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    send_outbox.set_defaults(handler=_send_outbox)

    retention = commands.add_parser("retention", help="apply the retention policy once")
    retention.add_argument("--dry-run", action="store_true", help="only report what would go")
    retention.add_argument("--now", metavar="ISO-8601", help="apply the policy as of this time")
    retention.set_defaults(handler=_retention)
    return parser


def _run_with_runtime(
    settings: Settings, work: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Run one coroutine against a freshly built runtime and close it afterwards."""
    from helpdesk.bootstrap import build_runtime

    async def runner() -> Any:
        runtime = build_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return asyncio.run(runner())


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from helpdesk.migrate import upgrade_database

    if settings.is_sqlite:
        if args.workers > 1:
            # Each web process would run the embedded schedule; production mode is for that.
            print("helpdesk serve: --workers > 1 needs PostgreSQL and Redis "
                  "(HELPDESK_DATABASE_URL, HELPDESK_REDIS_URL)", file=sys.stderr)
            return 2
        asyncio.run(upgrade_database(settings.database_url))
    if args.workers > 1:
        _share_metrics_between_workers(settings, args.port)
    uvicorn.run(
        "helpdesk.asgi:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # uvicorn kills a worker that misses a 5 s health ping; a worker that is merely
        # busy on a starved CPU would lose its open requests and SSE streams, so wait longer.
        timeout_worker_healthcheck=30,
        proxy_headers=True,
        log_level="info",
        # Our own request log (path only, addresses redacted) replaces uvicorn's access log,
        # which would print query strings; uvicorn's other loggers go through our handler.
        access_log=False,
        log_config=None,
        # Open live-update streams (inbox and widget SSE) never finish by themselves; a
        # restart closes them after this many seconds and the browsers reconnect.
        timeout_graceful_shutdown=5,
    )
    return 0


def _share_metrics_between_workers(settings: Settings, port: int) -> None:
    """Worker processes write their counters to one directory that /metrics sums
    (prometheus_client's multiprocess mode); emptied at start so old counts don't linger."""
    import os
    import shutil

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = settings.data_dir / "metrics" / f"serve-{port}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from helpdesk.migrate import upgrade_database

    asyncio.run(upgrade_database(settings.database_url))
    print("database is at the latest revision", file=sys.stderr)
    return 0


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from helpdesk.inbound.cli_ingest import run_ingest

    return asyncio.run(run_ingest(settings, args.files, args.mbox))


def _operator_add(settings: Settings, args: argparse.Namespace) -> int:
    from helpdesk.db import transaction
    from helpdesk.operators import service

    password = _read_password(args.password_stdin)

    async def work(runtime: Any) -> None:
        async with transaction(runtime.sessions) as session:
            await service.create_operator(session, args.email, args.name, args.role, password)

    _run_with_runtime(settings, work)
    print(f"operator {args.email} added as {args.role}", file=sys.stderr)
    return 0


def _operator_setup_link(settings: Settings, args: argparse.Namespace) -> int:
    """For the first admin, or anyone locked out: a link only the console sees."""
    from helpdesk.db import transaction
    from helpdesk.operators import passwords, service

    async def work(runtime: Any) -> str:
        async with transaction(runtime.sessions) as session:
            operator = await service.find_operator(session, args.email)
            if operator is None or not operator.active:
                raise HelpdeskError("No active operator with that email.")
            token = await passwords.issue_setup_link(
                session, operator, by=None, now=runtime.clock.now()
            )
            return passwords.setup_link(settings.base_url, token)

    print(_run_with_runtime(settings, work))
    return 0


def _operator_reset_second_factor(settings: Settings, args: argparse.Namespace) -> int:
    from helpdesk.db import transaction
    from helpdesk.operators import second_factor, service

    async def work(runtime: Any) -> bool:
        async with transaction(runtime.sessions) as session:
            operator = await service.find_operator(session, args.email)
            if operator is None:
                raise HelpdeskError("No operator with that email.")
            return await second_factor.remove_second_factor(session, operator, by_system=True)

    removed = _run_with_runtime(settings, work)
    print(
        f"two-step sign-in of {args.email} {'turned off' if removed else 'was not on'}",
        file=sys.stderr,
    )
    return 0


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n") or None
    if sys.stdin.isatty():
        return getpass.getpass("Password (empty for none): ") or None
    return None


def _token_create(settings: Settings, args: argparse.Namespace) -> int:
    from helpdesk.db import transaction
    from helpdesk.operators import service

    async def work(runtime: Any) -> str:
        async with transaction(runtime.sessions) as session:
            return await service.issue_api_token(session, args.email)

    print(_run_with_runtime(settings, work))
    return 0


def _worker(settings: Settings, _: argparse.Namespace) -> int:
    from helpdesk.broker import run_worker

    return run_worker(settings)


def _scheduler(settings: Settings, _: argparse.Namespace) -> int:
    from helpdesk.broker import run_scheduler

    return run_scheduler(settings)


def _demo_data(settings: Settings, _: argparse.Namespace) -> int:
    from helpdesk.demo import load_demo_data

    created = _run_with_runtime(settings, load_demo_data)
    if created:
        print("demo data loaded; sign in as demo@helpdesk.local / demo", file=sys.stderr)
    else:
        print("database is not empty; demo data not loaded, nothing changed", file=sys.stderr)
    return 0


def _fetch_mail(settings: Settings, args: argparse.Namespace) -> int:
    """The only IMAP fetcher (DESIGN §5); exit 75 when the mailbox or database is unavailable."""
    import logging
    import signal

    from helpdesk.adapters.imap import AioImapMailbox, MailboxUnavailable
    from helpdesk.inbound.fetcher import MailFetcher, StorageUnavailable
    from helpdesk.redaction import configure_logging, redact_addresses

    imap = settings.imap
    if imap is None:
        print("HELPDESK_IMAP_URL: not set", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.log_format)
    # aioimaplib logs protocol lines (bodies, addresses) at DEBUG and INFO.
    logging.getLogger("aioimaplib").setLevel(logging.WARNING)

    async def work(runtime: Any) -> int | None:
        # Imported at call time: the pipeline is a separate piece of work.
        from helpdesk.inbound.pipeline import ingest_raw

        async def ingest(raw: bytes, source: str) -> object:
            return await ingest_raw(runtime, raw, source)

        fetcher = MailFetcher(imap, runtime.sessions, ingest, AioImapMailbox)
        if args.once:
            return await fetcher.run_once()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await fetcher.run_forever(stop)
        return None

    try:
        count = _run_with_runtime(settings, work)
    except (MailboxUnavailable, StorageUnavailable) as exc:
        print(f"helpdesk: fetch-mail: {redact_addresses(str(exc))}", file=sys.stderr)
        return EX_TEMPFAIL
    if args.once:
        print(f"{count} messages processed", file=sys.stderr)
    return 0


def _send_outbox(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver the outbox once (`--once`, prints the counts as JSON) or until SIGTERM."""
    import json
    import signal
    from dataclasses import asdict

    from helpdesk.adapters.smtp import build_transport
    from helpdesk.outbound.delivery import deliver_all_due, deliver_until_stopped
    from helpdesk.redaction import configure_logging

    configure_logging(settings.log_format)

    async def work(runtime: Any) -> Any:
        transport = build_transport(settings)
        if args.once:
            try:
                return await deliver_all_due(runtime, transport)
            finally:
                await transport.close()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await deliver_until_stopped(runtime, transport, stop)
        return None

    report = _run_with_runtime(settings, work)
    if report is not None:
        print(json.dumps(asdict(report)))
    return 0


def _retention(settings: Settings, args: argparse.Namespace) -> int:
    """One retention run (or `--dry-run`); the JSON report of DESIGN §5 on stdout."""
    from helpdesk.retention.command import run_command

    return asyncio.run(run_command(settings, args.dry_run, args.now))


if __name__ == "__main__":
    sys.exit(main())
