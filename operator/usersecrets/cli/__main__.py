"""`python -m usersecrets.cli`, the same as the `usersecrets` command."""

from usersecrets.cli.main import main

main()
