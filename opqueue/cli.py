"""The `opqueue` command: run jobs, and follow, list, cancel and delete their operations."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from opqueue.client import (
    Cancelled,
    Client,
    DeadlineExceeded,
    Operation,
    OpqueueError,
    Unavailable,
)

DEFAULT_URL = "http://127.0.0.1:8000"
# Each WaitOperation returns when the operation is done or after this long, so the display
# catches progress reports within a second without polling in between.
POLL_SECONDS = 1.0


class Exit(IntEnum):
    """The command's exit codes, one per outcome."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CANCELLED = 3
    REFUSED = 4
    UNREACHABLE = 5
    INTERRUPTED = 130


EXIT_CODES = """\b
Exit codes:
  0    success; with --wait or `wait`, the operation SUCCEEDED
  1    the operation FAILED (its CODE_NAME: message is on stderr)
  2    usage error: a bad option, --input that is not a JSON object, a bad --label
  3    the operation was CANCELLED
  4    the API refused the request (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED, ...)
  5    the API could not be reached, was UNAVAILABLE or did not answer in time
  130  interrupted by Ctrl-C (after asking whether to cancel the operation)
"""


def fail(message: str, code: Exit) -> NoReturn:
    """End the command with one line on stderr and `code`; never a traceback."""
    if message:
        click.echo(message, err=True)
    raise click.exceptions.Exit(code)


def usage_error(message: str) -> NoReturn:
    """A bad argument, reported on one line."""
    fail(f"Error: {message}", Exit.USAGE)


class _Group(click.Group):
    """Turns what the client raises into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpqueueError as exc:
            unreachable = isinstance(exc, Unavailable | DeadlineExceeded)
            fail(str(exc), Exit.UNREACHABLE if unreachable else Exit.REFUSED)
        except BrokenPipeError:
            # `opqueue list | head`: the reader took what it wanted; end quietly, and stop
            # Python's own flush at exit from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            fail("", Exit.OK)


@click.group(cls=_Group, epilog=EXIT_CODES,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="OPQUEUE_URL", default=DEFAULT_URL, show_default=True,
              help="The API's base URL [env OPQUEUE_URL].")
@click.option("--api-key", envvar="OPQUEUE_API_KEY",
              help="Sent as 'Authorization: Bearer KEY' [env OPQUEUE_API_KEY].")
@click.option("--project", envvar="OPQUEUE_PROJECT", default="demo", show_default=True,
              help="The project to run in, list, and complete bare operation ids with "
                   "[env OPQUEUE_PROJECT].")
@click.pass_context
def main(ctx: click.Context, url: str, api_key: str | None, project: str) -> None:
    """Run opqueue jobs and follow their operations.

    NAME is an operation's full name (projects/P/operations/ID) or just its ID.
    """
    if not project:
        usage_error("--project must not be empty")
    ctx.obj = ctx.with_resource(Client(url, api_key=api_key, project=project))


def parse_input(text: str) -> dict[str, Any]:
    """`--input`: a JSON object, or `@path` to a file holding one (`@-`: stdin)."""
    if text.startswith("@"):
        try:
            with click.open_file(text[1:], encoding="utf-8") as source:
                text = source.read()
        except OSError as exc:
            usage_error(f"cannot read --input file {text[1:]}: {exc.strerror or exc}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        usage_error(f"--input is not valid JSON: {exc}")
    if not isinstance(value, dict):
        usage_error("--input must be a JSON object, e.g. '{\"seconds\": 1}'")
    return value


def parse_labels(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--label k=v` options as a dict."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            usage_error(f"--label must be KEY=VALUE, not {pair!r}")
        labels[key] = value
    return labels


def parse_timeout(text: str | None) -> str | None:
    """`--timeout`: a Duration (`30s`, `1.5s`); a bare number counts as seconds."""
    if text is None:
        return None
    return f"{text}s" if re.fullmatch(r"\d+(\.\d+)?", text) else text


@main.command(epilog=EXIT_CODES)
@click.argument("job")
@click.option("--input", "input_text", default="{}", show_default=True, metavar="JSON|@FILE",
              help="The job's input: a JSON object, or @FILE holding one (@- reads stdin).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="A label for the operation; repeat for more.")
@click.option("--timeout", metavar="DURATION",
              help="The job's time limit, e.g. 30s (default: the job type's).")
@click.option("--wait", is_flag=True, help="Show progress until done; print the value.")
@click.option("--json", "as_json", is_flag=True, help="Print the Operation as JSON.")
@click.pass_obj
def run(client: Client, *, job: str, input_text: str, labels: tuple[str, ...],
        timeout: str | None, wait: bool, as_json: bool) -> None:
    """Run JOB; print the new operation's name, or with --wait its value."""
    operation = client.submit(job, parse_input(input_text), labels=parse_labels(labels),
                              timeout=parse_timeout(timeout))
    if wait:
        finish(follow(client, operation), as_json)
    else:
        click.echo(dump(operation) if as_json else operation.name)


@main.command(epilog=EXIT_CODES)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the final Operation as JSON.")
@click.pass_obj
def wait(client: Client, name: str, as_json: bool) -> None:
    """Show NAME's progress until it is done; print its value."""
    finish(follow(client, client.get(name)), as_json)


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the Operation as JSON.")
@click.pass_obj
def get(client: Client, name: str, as_json: bool) -> None:
    """Show operation NAME: its state and progress, and its value or error once done."""
    operation = client.get(name)
    if as_json:
        click.echo(dump(operation))
        return
    click.echo(f"{row(operation)}  {operation.status_message}".rstrip())
    if operation.done:
        try:
            click.echo(json.dumps(operation.result()))
        except OpqueueError as exc:
            click.echo(str(exc))


@main.command("list")
@click.option("--filter", "filter_", default="", metavar="AIP-160",
              help="e.g. 'metadata.state = FAILED AND metadata.labels.team = ml'.")
@click.option("--page-size", type=click.IntRange(min=1), help="Operations per API call.")
@click.option("--json", "as_json", is_flag=True, help="One Operation JSON per line.")
@click.pass_obj
def list_(client: Client, filter_: str, page_size: int | None, as_json: bool) -> None:
    """List the project's operations, newest first."""
    for operation in client.list(filter=filter_, page_size=page_size):
        click.echo(dump(operation) if as_json else row(operation))


@main.command()
@click.argument("name")
@click.pass_obj
def cancel(client: Client, name: str) -> None:
    """Ask operation NAME to stop (`wait` then tells how it ended)."""
    client.cancel(name)
    click.echo(f"cancel requested: {client.operation_name(name)}")


@main.command()
@click.argument("name")
@click.pass_obj
def delete(client: Client, name: str) -> None:
    """Forget operation NAME (a running job is not cancelled)."""
    client.delete(name)
    click.echo(f"deleted: {client.operation_name(name)}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One job type JSON per line.")
@click.pass_obj
def jobs(client: Client, as_json: bool) -> None:
    """List the job types the API runs."""
    for job in client.jobs():
        click.echo(json.dumps(job) if as_json else f"{job['name']:<16} {job['description']}")


def row(operation: Operation) -> str:
    """The operation on one line: id, job, state, progress and when it was created."""
    created = operation.create_time.isoformat(timespec="seconds") \
        if operation.create_time else ""
    return (f"{operation.id}  {operation.job:<16} {operation.state:<10} "
            f"{operation.progress_percent:>3}%  {created}")


def dump(operation: Operation) -> str:
    """The Operation's JSON as the API sent it, on one line."""
    return json.dumps(operation.raw)


def follow(client: Client, operation: Operation) -> Operation:
    """Show the operation's progress on stderr until it is done; Ctrl-C offers to cancel."""
    click.echo(f"operation {operation.name}", err=True)
    try:
        with progress_view() as show:
            show(operation)
            while not operation.done:
                operation = client.wait(operation.name, timeout=POLL_SECONDS)
                show(operation)
    except KeyboardInterrupt:
        interrupted(client, operation.name)
    return operation


@contextmanager
def progress_view() -> Iterator[Callable[[Operation], None]]:
    """A rich bar when stderr is a terminal, else one line per change (for logs, pipes).
    Progress goes to stderr so that stdout holds only the result, e.g. for `| jq`."""
    if not sys.stderr.isatty():
        shown: list[tuple[str, int, str]] = []

        def line(operation: Operation) -> None:
            now = (operation.state, operation.progress_percent, operation.status_message)
            if not shown or shown[-1] != now:
                shown.append(now)
                click.echo(f"{now[0]:<10} {now[1]:>3}%  {now[2]}".rstrip(), err=True)

        yield line
        return
    # markup=False: a job's statusMessage is text, even if it holds "[brackets]".
    columns = (TextColumn("{task.fields[state]:<10}", markup=False), BarColumn(),
               TaskProgressColumn(), TextColumn("{task.description}", markup=False),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("", total=100, state="")

        def update(operation: Operation) -> None:
            bar.update(task, completed=operation.progress_percent,
                       description=operation.status_message, state=operation.state)

        yield update


def interrupted(client: Client, name: str) -> None:
    """Ctrl-C while following: offer to cancel, then exit 130 either way."""
    try:
        confirmed = click.confirm(f"\nCancel operation {name}?", default=False, err=True)
        if not sys.stdin.isatty():
            click.echo(err=True)  # the answer came from a pipe, not typed with its newline
    except click.Abort:  # a second Ctrl-C, or no stdin to answer from
        click.echo(err=True)
        confirmed = False
    if confirmed:
        client.cancel(name)
        click.echo(f"cancel requested: {name}", err=True)
    raise click.exceptions.Exit(Exit.INTERRUPTED)


def finish(operation: Operation, as_json: bool) -> None:
    """Print a done operation's value (or its JSON); a failure exits with its code."""
    if as_json:
        click.echo(dump(operation))
    try:
        value = operation.result()
    except Cancelled as exc:
        fail(str(exc), Exit.CANCELLED)
    except OpqueueError as exc:
        fail(str(exc), Exit.FAILED)
    if not as_json:
        click.echo(json.dumps(value))


if __name__ == "__main__":
    main(prog_name="opqueue")
