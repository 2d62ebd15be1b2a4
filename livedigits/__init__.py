"""Digits, learning live: the service as one package whose folders are its layers, from the top:

    web                               Flask blueprints: pages, the API, admin, the original apps' protocols
    serving | learning | exports | offline
    models | pipeline                 the networks and the "not a digit" detector; pure array functions
    state                             storage, the log, the database, the lease, figures, the snapshot format

Each layer imports only the layers under it (import-linter, pyproject.toml). `config`, `errors` and `threads`
sit under them all. docs/architecture.md draws the layers and follows a label through them.
"""

from livedigits.threads import serialise_ast_parse

serialise_ast_parse()
