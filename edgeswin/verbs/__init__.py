"""The verbs that have no room of their own, one module each (`run`, `check`, `bench`, ...).

Every verb, here or in its room (`watch.command`, `fleet.operator`, `review.command`,
`toolchain.finetune_command`), is a module with `HELP` (its line in `edgeswin --help`),
`add_arguments(parser)` and `run(args) -> int` (the exit status); `cli.VERBS` lists them all.
A verb's module imports what it needs inside `run`, so `edgeswin --help` loads none of it.
"""
