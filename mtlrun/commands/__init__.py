"""One module per `mtlrun` subcommand, each with a `main()` that reads sys.argv."""
