"""What each command does, callable from Python and from tests; the CLI only parses options
and prints."""
