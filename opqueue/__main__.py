"""`python -m opqueue`: the `opqueue` command."""

from opqueue.cli import main

main(prog_name="opqueue")
