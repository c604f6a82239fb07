"""`accord`, the command line, in modules by audience: `app` (the root command and `main()`),
`operators`, `records`, `partners`, `neutrals` and `admins` (the commands, each module for
whom it says), `common` (what their commands share), `reference` (what `accord partners`,
`people` and `playbook` print) and `console` (the console script's entry).

Nothing is imported here: `accord.cli.console` loads the CLI inside its Ctrl-C guard, and
importing this package must not load it first."""
